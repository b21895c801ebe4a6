//! Integration tests of the QEMU / VirtualBox readers (ELF cores, kdump-compressed files), on
//! files the test writers build, in one binary.

mod cpus;
mod kdump_common;
mod kdump_malformed;
mod kdump_roundtrip;
mod malformed;
mod memory;
mod writer;
