//! The Plain LZ77 encoder round-trips through an independent decoder.

use crate::common;

fn roundtrip(data: &[u8]) {
    for z in [
        vm2dmp_synth::Compressor::Greedy,
        vm2dmp_synth::Compressor::Xpress,
    ] {
        let c = z.compress(data);
        let d = common::lz77(&c, data.len()).unwrap();
        assert!(d == data, "{z:?} round trip of {} bytes", data.len());
    }
}

fn noise(n: usize, mut s: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

#[test]
fn pages() {
    roundtrip(&[0u8; 4096]);
    roundtrip(&[0xCC; 4096]);
    roundtrip(&noise(4096, 1));
    let mut text = Vec::new();
    while text.len() < 4096 {
        text.extend_from_slice(b"the quick brown fox jumps over the lazy dog; ");
    }
    text.truncate(4096);
    roundtrip(&text);
}

#[test]
fn every_length_escape() {
    // Match lengths around the 3-bit, nibble, byte, u16 and u32 boundaries, several long
    // matches in a row (shared nibble bytes), and short literals between them.
    for len in [
        3usize, 9, 10, 11, 24, 25, 26, 40, 276, 277, 278, 300, 4000, 65_537, 70_000,
    ] {
        let mut v = noise(7, len as u64);
        v.extend(std::iter::repeat_n(0x41u8, len));
        v.extend(noise(5, 99));
        v.extend(std::iter::repeat_n(0x42u8, len));
        v.extend(std::iter::repeat_n(0x43u8, len + 1));
        roundtrip(&v);
    }
    roundtrip(&vec![0u8; 1 << 20]);
}

#[test]
fn flag_word_boundaries() {
    // Inputs whose item counts fall exactly on 32-item flag words.
    for n in 28..70 {
        roundtrip(&noise(n, n as u64));
    }
    roundtrip(&[]);
}

#[test]
fn compressed_pages_are_small() {
    use vm2dmp_synth::Compressor::*;
    for z in [Greedy, Xpress] {
        assert!(z.compress(&[0u8; 4096]).len() < 32);
        assert!(z.compress(&noise(4096, 5)).len() > 4096);
    }
}
