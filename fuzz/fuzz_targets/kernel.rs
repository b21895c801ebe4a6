//! Guest kernel discovery over guest memory and registers the input provides, in a 1 MiB
//! template saved state; a found kernel is converted and the dump verified. Input: see
//! `vm2dmp_fuzz_harness::KernelTemplate::build`. See `vm2dmp_fuzz_harness::kernel`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The return value is for the replay test (crates/vm2dmp/tests/it/fuzz_regressions.rs).
    let _ = vm2dmp_fuzz_harness::kernel(data);
});
