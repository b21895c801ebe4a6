//! The integration tests of the `vm2dmp` command, in one test binary (one link, one run).
//!
//! The tests run in parallel threads of this one process: each works in its own temporary
//! folder, and none changes process-wide state (current directory, environment); what a
//! child process needs is set on its command.

mod batch;
mod cli;
mod common;
mod fleet;
mod folders;
mod formats;
#[cfg(target_os = "linux")]
mod interrupt;
