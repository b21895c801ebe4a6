//! Kernel discovery, conversion and verification of a tiny guest held in memory: a layout
//! byte, five registers, then guest memory. See `vm2dmp_fuzz_harness::convert`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The return value is for the replay test (crates/vm2dmp/tests/it/fuzz_regressions.rs).
    let _ = vm2dmp_fuzz_harness::convert(data);
});
