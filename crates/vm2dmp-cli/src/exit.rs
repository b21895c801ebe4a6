//! Exit codes (documented in README), and the one place that ends the process.
//!
//! Two paths may want to end a run: the main thread when its command returns, and the signal
//! handler on a second signal (or on any signal to a command that cannot be cancelled). Both
//! call [`finish`]; the first caller owns the final error line and the exit code, and a later
//! caller waits there until the process has ended. So an interrupted run prints exactly one
//! error line and exits with exactly one code, whatever the timing of the signals.

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

/// Success.
pub const OK: u8 = 0;
/// Some inputs failed, or the output could not be written.
pub const FAILED: u8 = 1;
/// Bad usage, or an input that cannot be read.
pub const BAD_INPUT: u8 = 2;
/// Stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP: 128 + SIGINT, as shells report it.
pub const INTERRUPTED: u8 = 130;

/// Held, never released, by the caller of [`finish`] that ends the process.
static EXITING: Mutex<()> = Mutex::new(());

/// Writes `error` (if any) as the line `vm2dmp: error: ERROR` on standard error and ends the
/// process with `code`. The first caller wins; any other caller blocks here, neither printing
/// nor exiting, until the first one has ended the process.
pub(crate) fn finish(error: Option<&str>, code: u8) -> ! {
    // The guard is never dropped: `exit` below does not return.
    let _owner = EXITING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(message) = error {
        // One write of the whole line; a closed standard error is not worth a panic.
        let line = format!("vm2dmp: error: {message}\n");
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes()).and_then(|()| err.flush());
    }
    std::process::exit(i32::from(code))
}
