//! Integration tests of vm2dmp-synth: the files it writes, read back by independent walkers.
//!
//! One binary for all of them (one build and link instead of one per file), with the
//! shared helpers in `common`.

mod common;
mod encode;
mod large;
mod legacy;
mod lz;
mod partition;
mod vmrs;
