//! Opens a `.vsv` + `.bin` pair held in memory. Input: u32 (little-endian) length of the
//! `.vsv` image, the `.vsv` image, then the `.bin` image. See
//! `vm2dmp_fuzz_harness::vsv_bin_open`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The return value is for the replay test (crates/vm2dmp/tests/it/fuzz_regressions.rs).
    let _ = vm2dmp_fuzz_harness::vsv_bin_open(data);
});
