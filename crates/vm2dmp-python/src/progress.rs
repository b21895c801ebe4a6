//! A [`Progress`] that calls a Python callable every few MiB and lets Ctrl-C or an exception
//! from the callable cancel the operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pyo3::prelude::*;
use vm2dmp::{Cancel, Progress};

/// Bytes of guest memory between two calls into Python.
pub const STEP: u64 = 16 << 20;

/// Reports to `callback(done, total)` (bytes) every [`STEP`] bytes and at the end, holding the
/// GIL only for that call; [`PyProgress::run`] watches for Ctrl-C meanwhile. The first exception raised
/// there sets the cancellation flag and is kept for [`PyProgress::take_error`].
pub struct PyProgress<'a> {
    callback: Option<&'a Py<PyAny>>,
    cancel: &'a Cancel,
    total: AtomicU64,
    done: AtomicU64,
    next: AtomicU64,
    error: Mutex<Option<PyErr>>,
}

impl<'a> PyProgress<'a> {
    /// A reporter calling `callback` (when given) and cancelling through `cancel`.
    pub fn new(callback: Option<&'a Py<PyAny>>, cancel: &'a Cancel) -> Self {
        Self {
            callback,
            cancel,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            next: AtomicU64::new(STEP),
            error: Mutex::new(None),
        }
    }

    /// Runs `work` on a thread of its own while this thread waits with the GIL released,
    /// checking for Ctrl-C every 50 ms (only the main thread sees Python's signals): a
    /// `KeyboardInterrupt` cancels the operation and is kept for [`PyProgress::take_error`].
    pub fn run<T: Send>(&self, py: Python<'_>, work: impl FnOnce() -> T + Send) -> T {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                let r = work();
                done.store(true, Ordering::Release);
                r
            });
            loop {
                let finished = py.detach(|| {
                    for _ in 0..50 {
                        if done.load(Ordering::Acquire) {
                            return true;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    done.load(Ordering::Acquire)
                });
                if finished {
                    break;
                }
                if let Err(e) = py.check_signals() {
                    self.keep(e);
                }
            }
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn keep(&self, e: PyErr) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        self.cancel.cancel();
    }

    /// The exception that cancelled the operation, if one did.
    pub fn take_error(&self) -> Option<PyErr> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    fn report(&self, done: u64) {
        if self.cancel.is_cancelled() || self.callback.is_none() {
            return;
        }
        let total = self.total.load(Ordering::Relaxed);
        Python::attach(|py| {
            let result = match self.callback {
                Some(cb) => cb.call1(py, (done.min(total), total)).map(drop),
                None => Ok(()),
            };
            if let Err(e) = result {
                self.keep(e);
            }
        });
    }
}

impl Progress for PyProgress<'_> {
    fn start(&self, _phase: &str, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.next.store(STEP, Ordering::Relaxed);
        self.report(0);
    }

    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let next = self.next.load(Ordering::Relaxed);
        // One thread reports each step; the others go on.
        if done >= next
            && self
                .next
                .compare_exchange(next, done + STEP, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.report(done);
        }
    }

    fn finish(&self) {
        self.report(self.done.load(Ordering::Relaxed));
    }
}
