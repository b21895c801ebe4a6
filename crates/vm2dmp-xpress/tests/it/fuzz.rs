//! Arbitrary and mutated streams: the decoder never panics, agrees with the
//! byte-at-a-time reference (output and error), and agrees with `xpress_rs`
//! whenever that decoder succeeds.

use crate::common::{ours_compress, reference, xpress_rs_decode};
use proptest::prelude::*;
use vm2dmp_xpress::{decompress_bounded, decompress_into, decompress_page, XpressError, PAGE_SIZE};

/// Output cap for the comparison with `xpress_rs`, whose decoder has no
/// size limit: streams that would write more are not given to it.
const CAP: usize = 1 << 16;

fn check(src: &[u8]) {
    // Exact-size decoding equals the reference, error variant included.
    for want in [0usize, 7, 100, PAGE_SIZE] {
        let mut out = vec![0u8; want];
        let ours = decompress_into(src, &mut out).map(|()| out);
        assert_eq!(ours, reference::decode(src, want), "want {want}");
    }

    // The page-sized decoder is a separate specialisation.
    let mut page = [0u8; PAGE_SIZE];
    let ours = decompress_page(src, &mut page).map(|()| page.to_vec());
    assert_eq!(ours, reference::decode(src, PAGE_SIZE), "page");

    let mut out = vec![0u8; CAP];
    let ours = decompress_bounded(src, &mut out);
    if matches!(ours, Err(XpressError::OutputOverrun { .. })) {
        return;
    }
    let theirs = xpress_rs_decode(src);
    match (ours, theirs) {
        (Ok(n), Some(v)) => assert!(out[..n] == v[..], "output differs from xpress_rs"),
        (Err(_), None) => {}
        (ours, theirs) => panic!("ours {:?}, xpress_rs {:?}", ours, theirs.map(|v| v.len())),
    }
}

/// A valid stream of compressible data, then a few bytes overwritten,
/// inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(0u8..4, 0..600),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    )
        .prop_map(|(data, edits)| {
            let mut s = ours_compress(&data);
            for (at, b, kind) in edits {
                let i = at.index(s.len() + 1);
                match kind {
                    0 if i < s.len() => s[i] = b,
                    1 => s.insert(i, b),
                    _ if i < s.len() => {
                        s.remove(i);
                    }
                    _ => {}
                }
            }
            s
        })
}

#[derive(Debug, Clone)]
enum Item {
    Literal(u8),
    Match { dist: u16, len: u32 },
}

/// Encodes items as a Plain LZ77 stream (flag words, shared length nibbles,
/// all escapes), without checking that distances are in range.
fn encode_items(items: &[Item]) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    let (mut slot, mut flags, mut count) = (0usize, 0u32, 0u32);
    let mut nibble_at: Option<usize> = None;
    for item in items {
        let bit = match *item {
            Item::Literal(b) => {
                out.push(b);
                0
            }
            Item::Match { dist, len } => {
                let code = (dist - 1) << 3;
                let extra = len - 3;
                if extra < 7 {
                    out.extend_from_slice(&(code | extra as u16).to_le_bytes());
                } else {
                    out.extend_from_slice(&(code | 7).to_le_bytes());
                    let rest = extra - 7;
                    let half = rest.min(15) as u8;
                    match nibble_at.take() {
                        Some(at) => out[at] |= half << 4,
                        None => {
                            nibble_at = Some(out.len());
                            out.push(half);
                        }
                    }
                    if rest >= 15 {
                        if rest - 15 < 255 {
                            out.push((rest - 15) as u8);
                        } else if extra <= 0xFFFF {
                            out.push(255);
                            out.extend_from_slice(&(extra as u16).to_le_bytes());
                        } else {
                            out.extend_from_slice(&[255, 0, 0]);
                            out.extend_from_slice(&extra.to_le_bytes());
                        }
                    }
                }
                1
            }
        };
        flags = flags << 1 | bit;
        count += 1;
        if count == 32 {
            out[slot..slot + 4].copy_from_slice(&flags.to_le_bytes());
            slot = out.len();
            out.extend_from_slice(&[0; 4]);
            (flags, count) = (0, 0);
        }
    }
    let f = flags.checked_shl(32 - count).unwrap_or(0) | (u32::MAX >> count);
    out[slot..slot + 4].copy_from_slice(&f.to_le_bytes());
    out
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        120 => any::<u8>().prop_map(Item::Literal),
        90 => (1u16..=40, 3u32..=12).prop_map(|(dist, len)| Item::Match { dist, len }),
        45 => (1u16..=8192, 3u32..=300).prop_map(|(dist, len)| Item::Match { dist, len }),
        12 => (1u16..=16, 300u32..=3000).prop_map(|(dist, len)| Item::Match { dist, len }),
        1 => (1u16..=8, 60_000u32..=70_000).prop_map(|(dist, len)| Item::Match { dist, len }),
    ]
}

/// Streams of random items with small distances and all length forms,
/// sometimes cut short or with one byte changed.
fn structured() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(item(), 0..120),
        any::<prop::sample::Index>(),
        0u8..4,
        any::<u8>(),
    )
        .prop_map(|(mut items, at, kind, b)| {
            // Bring distances into range so that most streams decode far.
            let mut pos = 0u64;
            for it in &mut items {
                match it {
                    Item::Literal(_) => pos += 1,
                    Item::Match { dist, len } => {
                        if pos == 0 {
                            *it = Item::Literal(0);
                            pos += 1;
                            continue;
                        }
                        *dist = (*dist).min(pos.min(8192) as u16);
                        pos += u64::from(*len);
                    }
                }
            }
            let mut s = encode_items(&items);
            let i = at.index(s.len());
            match kind {
                0 => s.truncate(i),
                1 => s[i] ^= b | 1,
                _ => {}
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes(src in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&src);
    }

    #[test]
    fn mostly_literal_flags(
        flags in any::<u32>().prop_map(|f| f & 0x0101_0101),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut src = flags.to_le_bytes().to_vec();
        src.extend_from_slice(&body);
        check(&src);
    }

    #[test]
    fn mutated_streams(src in mutated()) {
        check(&src);
    }

    #[test]
    fn structured_streams(src in structured()) {
        check(&src);
    }
}
