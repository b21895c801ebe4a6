//! Property: every policy encodes any block into a stream that decodes back to it and
//! stays below 1 MiB (or is a raw block).

use crate::common;

use proptest::prelude::*;
use vm2dmp_synth::encode::{encode_block, BLOCK_BYTES};
use vm2dmp_synth::{BlockEncoding, Compressor, PagePolicy};

fn page(kind: u8, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    match kind % 5 {
        0 => vec![0; 4096],
        1 => seed.to_le_bytes().repeat(512),
        2 => (0..4096).map(|_| next() as u8).collect(),
        3 => b"abcdefgh-words-"
            .iter()
            .copied()
            .cycle()
            .take(4096)
            .collect(),
        _ => {
            let mut p = vec![0u8; 4096];
            p[(seed % 4000) as usize] = 1;
            p
        }
    }
}

fn policy(i: u8, k: u16) -> BlockEncoding {
    use PagePolicy::*;
    match i % 10 {
        0 => BlockEncoding::Tokens(HyperV),
        1 => BlockEncoding::Tokens(Auto),
        2 => BlockEncoding::Tokens(Mixed),
        3 => BlockEncoding::Tokens(Raw),
        4 => BlockEncoding::Tokens(Compressed),
        5 => BlockEncoding::Tokens(FillOne),
        6 => BlockEncoding::Tokens(FillRun),
        7 => BlockEncoding::Tokens(MultiPage {
            pages: k % 300,
            compress: true,
        }),
        8 => BlockEncoding::Tokens(MultiPage {
            pages: k % 300,
            compress: false,
        }),
        _ => BlockEncoding::RawBlock,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn encode_decode(kinds in proptest::collection::vec((0u8..5, any::<u64>(), 1usize..40), 1..12),
                     p in 0u8..10, k in any::<u16>(), block in 0u64..12, greedy in any::<bool>()) {
        // Runs of pages of each kind, repeated to fill 256 pages.
        let mut data = Vec::with_capacity(BLOCK_BYTES);
        'fill: loop {
            for &(kind, seed, run) in &kinds {
                for _ in 0..run {
                    if data.len() == BLOCK_BYTES { break 'fill; }
                    data.extend_from_slice(&page(kind, seed));
                }
            }
        }
        let z = if greedy { Compressor::Greedy } else { Compressor::Xpress };
        let e = encode_block(&data, policy(p, k), block, z, true);
        if e.raw {
            prop_assert_eq!(e.bytes.len(), BLOCK_BYTES);
        } else {
            prop_assert!(e.bytes.len() < BLOCK_BYTES);
        }
        let mut seen = common::Seen::default();
        let got = common::decode_block(&e.bytes, &mut seen).unwrap();
        prop_assert!(got == data);
        let pages: u32 = e.tokens.iter().map(|t| t.pages as u32).sum();
        if !e.raw {
            prop_assert_eq!(pages, 256);
            prop_assert_eq!(e.tokens.last().unwrap().offset as usize + 4, e.bytes.len());
        }
    }
}
