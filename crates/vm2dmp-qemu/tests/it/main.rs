//! Integration tests of vm2dmp-qemu, one binary.

mod kdump_common;
mod kdump_malformed;
mod kdump_roundtrip;
