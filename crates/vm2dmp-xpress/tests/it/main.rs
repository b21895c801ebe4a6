//! Integration tests of vm2dmp-xpress: hand-built streams, round trips, fuzzing against a reference decoder and xpress_rs, and the real sample's pages.
//!
//! All integration tests of this crate in one binary; each former `tests/<name>.rs`
//! is the module `<name>`, and `common` holds the helpers they share.

mod common;
mod errors;
mod fuzz;
mod roundtrip;
mod sample;
