//! Guest page-table walks. Input: a mode byte (paging mode in bits 0-1), u64 CR3, u64 virtual
//! address, then guest memory from physical address 0. See `vm2dmp_fuzz_harness::page_tables`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The return value is for the replay test (crates/vm2dmp/tests/it/fuzz_regressions.rs).
    let _ = vm2dmp_fuzz_harness::page_tables(data);
});
