//! Integration tests of the `vm2dmp` library, in one test binary: the real Hyper-V sample,
//! synthetic saved states, hostile inputs, conversion checked by kdmp-parser, kernel discovery,
//! and the source-agnostic pipeline on a flat memory image.

mod convert;
mod flat;
mod fuzz_regressions;
mod guest;
mod hostile_sample;
mod kernel;
mod malformed_kernel_discovery;
mod malformed_truncated_while_open;
mod qemu_real;
mod raw;
mod sample;
mod synth_roundtrip;
mod vmware;
