//! Progress reporting and cancellation. The library never prints: it calls a [`Progress`] that
//! the caller renders (the CLI draws a progress bar), and polls a cancellation flag.

use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress of a long operation. Called from several threads at once.
pub trait Progress: Sync {
    /// The operation starts; `total` is the number of units (bytes of guest memory).
    fn start(&self, _phase: &str, _total: u64) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// The operation ended (successfully or not).
    fn finish(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A cancellation flag shared with the caller (set it from a Ctrl-C handler, say).
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    /// A flag not yet set.
    pub const fn new() -> Self {
        Self(AtomicBool::new(false))
    }
    /// Sets the flag: an operation polling it stops with
    /// [`Error::Cancelled`](crate::Error::Cancelled) at its next check. Setting it again does
    /// nothing.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// True once [`Cancel::cancel`] has been called. Never cleared.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
