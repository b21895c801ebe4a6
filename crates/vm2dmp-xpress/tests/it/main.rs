//! Integration tests of vm2dmp-xpress: hand-built streams, round trips, fuzzing against a reference decoder and xpress_rs, the real sample's pages and the firmware-memory corpus.
//!
//! One binary for all of them (one build and link instead of one per file), with the
//! shared helpers in `common`.

mod common;
mod errors;
mod fuzz;
mod ovmf;
mod roundtrip;
mod sample;
