//! Integration tests of vm2dmp-kdump: written dumps read back by this crate and by kdmp-parser, hostile input, and dumps written by Windows.
//!
//! One binary for all of them (one build and link instead of one per file), with the
//! shared helpers in `common`.

mod common;
mod hostile;
mod kdmp_parser;
mod reader;
mod windows_dumps;
