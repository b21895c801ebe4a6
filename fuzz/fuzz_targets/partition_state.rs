//! A `partition_state` value: envelope, chunk stream, per-VP register chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vm2dmp::hyperv::fuzzing::parse_partition_state(data);
});
