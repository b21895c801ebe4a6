//! Plain LZ77 decoder, and a round trip through the encoder.
//!
//! Input: a mode byte, then
//! - mode bit 0 clear: u16 (little-endian) output length, then a compressed stream, decoded
//!   with `decompress_into` and `decompress_bounded` (and `decompress_page` when the length
//!   is 4096 or mode bit 1 is set);
//! - mode bit 0 set: plain bytes, compressed then decompressed, which must give them back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm2dmp_xpress::{
    compress, decompress_bounded, decompress_into, decompress_page, max_compressed_len, PAGE_SIZE,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Some((len, src)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let want = usize::from(u16::from_le_bytes(*len));
        let mut out = vec![0u8; want];
        let exact = decompress_into(src, &mut out).is_ok();
        if let Ok(n) = decompress_bounded(src, &mut out) {
            assert!(n <= want);
            assert_eq!(n == want, exact, "bounded and exact decoders disagree");
        } else {
            assert!(
                !exact,
                "exact decode succeeded where the bounded one failed"
            );
        }
        if want == PAGE_SIZE || mode & 2 != 0 {
            let mut page = [0u8; PAGE_SIZE];
            let _ = decompress_page(src, &mut page);
        }
    } else {
        let mut stream = Vec::new();
        compress(rest, &mut stream);
        assert!(stream.len() <= max_compressed_len(rest.len()));
        let mut back = vec![0u8; rest.len()];
        decompress_into(&stream, &mut back).expect("a compressed stream must decode");
        assert_eq!(back, rest, "round trip changed the data");
    }
});
