//! Integration tests of vm2dmp-kdump: written dumps read back by this crate and by kdmp-parser, hostile input, and dumps written by Windows.
//!
//! All integration tests of this crate in one binary; each former `tests/<name>.rs`
//! is the module `<name>`, and `common` holds the helpers they share.

mod common;
mod hostile;
mod kdmp_parser;
mod reader;
mod windows_dumps;
