//! A `partition_state` value: envelope, chunk stream, per-VP register chunks. See
//! `vm2dmp_fuzz_harness::partition_state`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The return value is for the replay test (crates/vm2dmp/tests/it/fuzz_regressions.rs).
    let _ = vm2dmp_fuzz_harness::partition_state(data);
});
