//! compress -> decompress round trips, checked with our decoder and with
//! `xpress_rs`.

use crate::common::{ours_compress, reference, xpress_rs_decode};
use proptest::prelude::*;
use vm2dmp_xpress::{decompress_into, decompress_page, max_compressed_len, PAGE_SIZE};

fn check_round_trip(input: &[u8]) {
    let stream = ours_compress(input);
    assert!(stream.len() <= max_compressed_len(input.len()));
    let mut out = vec![0x5Au8; input.len()];
    decompress_into(&stream, &mut out).expect("our decoder");
    assert!(out == input, "our decoder: round trip differs");
    let theirs = xpress_rs_decode(&stream).expect("xpress_rs decoder");
    assert!(theirs == input, "xpress_rs: round trip differs");
}

/// Bytes from a small alphabet.
fn low_entropy() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=6).prop_flat_map(|k| proptest::collection::vec(0..k, 0..=8192))
}

/// A short pattern repeated, with a few bytes changed.
fn repeated() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), 1..=24),
        0usize..=8192,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    )
        .prop_map(|(pat, len, edits)| {
            let mut v: Vec<u8> = pat.iter().copied().cycle().take(len).collect();
            if !v.is_empty() {
                for (at, b) in edits {
                    let i = at.index(v.len());
                    v[i] = b;
                }
            }
            v
        })
}

/// Zeros with a few random runs of data, like a sparsely used page.
fn sparse() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..=8192,
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                proptest::collection::vec(any::<u8>(), 1..64),
            ),
            0..12,
        ),
    )
        .prop_map(|(len, runs)| {
            let mut v = vec![0u8; len];
            if len > 0 {
                for (at, data) in runs {
                    let i = at.index(len);
                    let n = data.len().min(len - i);
                    v[i..i + n].copy_from_slice(&data[..n]);
                }
            }
            v
        })
}

proptest! {
    #[test]
    fn random_bytes(input in proptest::collection::vec(any::<u8>(), 0..=8192)) {
        check_round_trip(&input);
    }

    #[test]
    fn low_entropy_bytes(input in low_entropy()) {
        check_round_trip(&input);
    }

    #[test]
    fn repeated_patterns(input in repeated()) {
        check_round_trip(&input);
    }

    #[test]
    fn sparse_pages(input in sparse()) {
        check_round_trip(&input);
    }
}

#[test]
fn every_short_length() {
    for len in 0..=300usize {
        let text: Vec<u8> = (0..len)
            .map(|i| b"abcab dcba "[i % 11] ^ (i / 97) as u8)
            .collect();
        check_round_trip(&text);
        check_round_trip(&vec![0u8; len]);
        let noise: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        check_round_trip(&noise);
    }
}

#[test]
fn long_runs_use_every_length_escape() {
    // 255-byte and u16 escapes inside a page, a u32 escape beyond 64 KiB.
    for len in [
        24, 25, 26, 276, 277, 278, 279, 4096, 65_537, 65_538, 65_539, 200_000,
    ] {
        let mut v = vec![0u8; len];
        v[0] = 1;
        check_round_trip(&v);
    }
}

#[test]
fn zero_page_is_tiny() {
    let page = [0u8; PAGE_SIZE];
    let stream = ours_compress(&page);
    assert!(stream.len() <= 12, "{} bytes", stream.len());
    let mut out = [1u8; PAGE_SIZE];
    decompress_page(&stream, &mut out).unwrap();
    assert!(out == page);
}

#[test]
fn text_compresses() {
    let text = b"The quick brown fox jumps over the lazy dog. ".repeat(100);
    let stream = ours_compress(&text);
    assert!(stream.len() < text.len() / 10);
    check_round_trip(&text);
    assert_eq!(reference::decode(&stream, text.len()).unwrap(), text);
}

#[test]
fn appends_to_existing_output() {
    let mut out = b"header".to_vec();
    vm2dmp_xpress::compress(b"abcabcabcabc", &mut out);
    assert_eq!(&out[..6], b"header");
    let mut back = [0u8; 12];
    decompress_into(&out[6..], &mut back).unwrap();
    assert_eq!(&back, b"abcabcabcabc");
}
