//! One kdump-compressed page through its decompressor (zlib, LZO1X, snappy, zstd). See
//! `vm2dmp_fuzz_harness::diskdump_page`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vm2dmp_fuzz_harness::diskdump_page(data);
});
