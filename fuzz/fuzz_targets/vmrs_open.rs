//! Opens the input as an in-memory `.vmrs` and reads everything it offers, keys included;
//! even-length inputs get their HVS checksums recomputed first. See
//! `vm2dmp_fuzz_harness::vmrs_open`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The return value is for the replay test (crates/vm2dmp/tests/it/fuzz_regressions.rs).
    let _ = vm2dmp_fuzz_harness::vmrs_open(data);
});
