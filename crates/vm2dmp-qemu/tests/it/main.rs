//! Integration tests of the QEMU / VirtualBox readers, on files the test writer builds.

mod cpus;
mod malformed;
mod memory;
mod writer;
