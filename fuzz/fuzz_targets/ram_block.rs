//! One stored RAM block: raw 1 MiB or a token stream with Plain-LZ77 pages.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vm2dmp::hyperv::fuzzing::decode_ram_block(data);
});
