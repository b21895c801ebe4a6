//! Plain LZ77 decoder, and a round trip through the encoder. Input: a mode byte, then a u16
//! output length and a compressed stream (bit 0 clear) or plain bytes (bit 0 set). See
//! `vm2dmp_fuzz_harness::xpress`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vm2dmp_fuzz_harness::xpress(data));
