//! A [`Progress`] that calls a Python callable every few MiB and lets Ctrl-C or an exception
//! from the callable cancel the operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pyo3::prelude::*;
use vm2dmp::{Cancel, Progress};

/// Bytes of guest memory between two calls into Python.
pub const STEP: u64 = 16 << 20;

/// Reports to `callback(done, total)` (bytes) every [`STEP`] bytes and at the end, holding the
/// GIL only for that call; checks for Ctrl-C at the same points. The first exception raised
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

    /// The exception that cancelled the operation, if one did.
    pub fn take_error(&self) -> Option<PyErr> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    fn report(&self, done: u64) {
        if self.cancel.is_cancelled() {
            return;
        }
        let total = self.total.load(Ordering::Relaxed);
        Python::attach(|py| {
            let result = py.check_signals().and_then(|()| match self.callback {
                Some(cb) => cb.call1(py, (done.min(total), total)).map(drop),
                None => Ok(()),
            });
            if let Err(e) = result {
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert(e);
                }
                self.cancel.cancel();
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
