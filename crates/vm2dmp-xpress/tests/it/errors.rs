//! Hand-built streams: one or more for every error variant, plus the
//! trickier valid constructs (shared length nibble, end mark, escapes).

use crate::common::reference;
use vm2dmp_xpress::{decompress_bounded, decompress_into, decompress_page, XpressError, PAGE_SIZE};

/// Flag word from a string of item kinds, most significant bit first:
/// `l` literal, `m` match; the remaining bits are set.
fn flags(items: &str) -> [u8; 4] {
    assert!(items.len() <= 32);
    let mut f = u32::MAX.checked_shr(items.len() as u32).unwrap_or(0);
    for (k, c) in items.chars().enumerate() {
        if c == 'm' {
            f |= 1 << (31 - k);
        }
    }
    f.to_le_bytes()
}

/// Match descriptor for a distance and a 3-bit length field.
fn desc(distance: usize, field: u16) -> [u8; 2] {
    ((((distance - 1) as u16) << 3) | field).to_le_bytes()
}

fn stream(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes with an output of `want` bytes, checks the reference decoder
/// agrees, and returns the result.
fn run(src: &[u8], want: usize) -> Result<Vec<u8>, XpressError> {
    let mut out = vec![0u8; want];
    let ours = decompress_into(src, &mut out).map(|()| out);
    assert_eq!(ours, reference::decode(src, want), "reference disagrees");
    if want == PAGE_SIZE {
        let mut page = [0u8; PAGE_SIZE];
        let paged = decompress_page(src, &mut page).map(|()| page.to_vec());
        assert_eq!(paged, ours, "page decoder disagrees");
    }
    ours
}

#[test]
fn empty_stream_is_valid() {
    assert_eq!(run(&flags(""), 0), Ok(vec![]));
    assert_eq!(run(&[0xFF, 0xFF, 0xFF, 0xFF], 0), Ok(vec![]));
}

#[test]
fn literals_and_short_match() {
    let s = stream(&[&flags("lllm"), b"abc", &desc(3, 3)]);
    assert_eq!(run(&s, 9), Ok(b"abcabcabc".to_vec()));
}

#[test]
fn distance_one_run() {
    let s = stream(&[&flags("lm"), b"z", &desc(1, 6)]);
    assert_eq!(run(&s, 10), Ok(vec![b'z'; 10]));
}

#[test]
fn shared_length_nibble() {
    // Two long matches share one extension byte: low half 2 (length
    // 2 + 7 + 3 = 12), high half 5 (length 15); a third long match takes a
    // new byte.
    let s = stream(&[
        &flags("lmmlm"),
        b"a",
        &desc(1, 7),
        &[0x52],
        &desc(1, 7),
        b"b",
        &desc(1, 7),
        &[0x00],
    ]);
    let mut want = vec![b'a'; 1 + 12 + 15];
    want.push(b'b');
    want.extend_from_slice(&[b'b'; 10]);
    assert_eq!(run(&s, want.len()), Ok(want));
}

#[test]
fn byte_u16_and_u32_length_escapes() {
    // Nibble 15 then a byte: 7 + 15 + 40 + 3 = 65.
    let s = stream(&[&flags("lm"), b"x", &desc(1, 7), &[0x0F, 40]]);
    assert_eq!(run(&s, 66), Ok(vec![b'x'; 66]));
    // u16 escape holds length - 3.
    let s = stream(&[
        &flags("lm"),
        b"x",
        &desc(1, 7),
        &[0x0F, 255],
        &1000u16.to_le_bytes(),
    ]);
    assert_eq!(run(&s, 1004), Ok(vec![b'x'; 1004]));
    // u16 zero then u32.
    let s = stream(&[
        &flags("lm"),
        b"x",
        &desc(1, 7),
        &[0x0F, 255, 0, 0],
        &70_000u32.to_le_bytes(),
    ]);
    assert_eq!(run(&s, 70_004), Ok(vec![b'x'; 70_004]));
    // The smallest escaped value, 22, is length 25.
    let s = stream(&[
        &flags("lm"),
        b"x",
        &desc(1, 7),
        &[0x0F, 255],
        &22u16.to_le_bytes(),
    ]);
    assert_eq!(run(&s, 26), Ok(vec![b'x'; 26]));
}

#[test]
fn second_flag_word() {
    let mut s = flags(&"l".repeat(32)).to_vec();
    s.extend((0..32u8).map(|b| b + 1));
    s.extend_from_slice(&flags("lm"));
    s.push(0);
    s.extend_from_slice(&desc(33, 0));
    let mut want: Vec<u8> = (1..=32).collect();
    want.push(0);
    want.extend_from_slice(&[1, 2, 3]);
    assert_eq!(run(&s, want.len()), Ok(want));
}

#[test]
fn truncated_flags() {
    assert_eq!(run(&[], 4), Err(XpressError::TruncatedFlags { offset: 0 }));
    assert_eq!(
        run(&[0, 0, 0], 4),
        Err(XpressError::TruncatedFlags { offset: 0 })
    );
    // 32 literals, then only 2 bytes of the next flag word.
    let mut s = flags(&"l".repeat(32)).to_vec();
    s.extend_from_slice(&[7; 32]);
    s.extend_from_slice(&[0xFF, 0xFF]);
    assert_eq!(run(&s, 64), Err(XpressError::TruncatedFlags { offset: 36 }));
    // 32 literals and the input ends: a flag word is still required.
    s.truncate(36);
    assert_eq!(run(&s, 32), Err(XpressError::TruncatedFlags { offset: 36 }));
}

#[test]
fn truncated_match() {
    let base = stream(&[&flags("lm"), b"a"]);
    // Half a descriptor.
    let s = stream(&[&base, &[0x00]]);
    assert_eq!(run(&s, 64), Err(XpressError::TruncatedMatch { offset: 5 }));
    // Missing nibble byte.
    let s = stream(&[&base, &desc(1, 7)]);
    assert_eq!(run(&s, 64), Err(XpressError::TruncatedMatch { offset: 7 }));
    // Missing length byte after a nibble of 15.
    let s = stream(&[&base, &desc(1, 7), &[0x0F]]);
    assert_eq!(run(&s, 64), Err(XpressError::TruncatedMatch { offset: 8 }));
    // Half of the u16.
    let s = stream(&[&base, &desc(1, 7), &[0x0F, 0xFF, 0x00]]);
    assert_eq!(run(&s, 64), Err(XpressError::TruncatedMatch { offset: 9 }));
    // Three bytes of the u32.
    let s = stream(&[&base, &desc(1, 7), &[0x0F, 0xFF, 0, 0, 1, 2, 3]]);
    assert_eq!(run(&s, 64), Err(XpressError::TruncatedMatch { offset: 11 }));
}

#[test]
fn literal_past_end() {
    let s = stream(&[&flags("lll"), b"ab"]);
    assert_eq!(
        run(&s, 64),
        Err(XpressError::LiteralPastEnd {
            offset: 6,
            out_pos: 2
        })
    );
    // A flag word of literals with nothing after it.
    assert_eq!(
        run(&[0, 0, 0, 0], 64),
        Err(XpressError::LiteralPastEnd {
            offset: 4,
            out_pos: 0
        })
    );
}

#[test]
fn distance_before_start() {
    let s = stream(&[&flags("m"), &desc(1, 0)]);
    assert_eq!(
        run(&s, 64),
        Err(XpressError::DistanceBeforeStart {
            offset: 4,
            out_pos: 0,
            distance: 1
        })
    );
    let s = stream(&[&flags("llm"), b"ab", &desc(8192, 0)]);
    assert_eq!(
        run(&s, 64),
        Err(XpressError::DistanceBeforeStart {
            offset: 6,
            out_pos: 2,
            distance: 8192
        })
    );
    // Also after a long length extension: the offset is the descriptor's.
    let s = stream(&[
        &flags("llm"),
        b"ab",
        &desc(3, 7),
        &[0x0F, 0xFF, 0, 0, 100, 0, 0, 0],
    ]);
    assert_eq!(
        run(&s, 64),
        Err(XpressError::DistanceBeforeStart {
            offset: 6,
            out_pos: 2,
            distance: 3
        })
    );
}

#[test]
fn output_overrun() {
    // A literal with the output full.
    let s = stream(&[&flags("ll"), b"ab"]);
    assert_eq!(
        run(&s, 1),
        Err(XpressError::OutputOverrun {
            offset: 5,
            out_pos: 1,
            length: 1,
            capacity: 1
        })
    );
    // A match one byte too long.
    let s = stream(&[&flags("lm"), b"a", &desc(1, 1)]);
    assert_eq!(
        run(&s, 4),
        Err(XpressError::OutputOverrun {
            offset: 5,
            out_pos: 1,
            length: 4,
            capacity: 4
        })
    );
    // The largest u32 length: no arithmetic overflow, exact length reported.
    let s = stream(&[
        &flags("lm"),
        b"a",
        &desc(1, 7),
        &[0x0F, 0xFF, 0, 0],
        &u32::MAX.to_le_bytes(),
    ]);
    assert_eq!(
        run(&s, PAGE_SIZE),
        Err(XpressError::OutputOverrun {
            offset: 5,
            out_pos: 1,
            length: u64::from(u32::MAX) + 3,
            capacity: PAGE_SIZE
        })
    );
}

#[test]
fn long_length_too_small() {
    let s = stream(&[
        &flags("lm"),
        b"a",
        &desc(1, 7),
        &[0x0F, 0xFF],
        &21u16.to_le_bytes(),
    ]);
    assert_eq!(
        run(&s, 64),
        Err(XpressError::LongLengthTooSmall {
            offset: 9,
            value: 21
        })
    );
    let s = stream(&[
        &flags("lm"),
        b"a",
        &desc(1, 7),
        &[0x0F, 0xFF, 0, 0],
        &0u32.to_le_bytes(),
    ]);
    assert_eq!(
        run(&s, 64),
        Err(XpressError::LongLengthTooSmall {
            offset: 11,
            value: 0
        })
    );
}

#[test]
fn output_too_short() {
    let s = stream(&[&flags("l"), b"a"]);
    assert_eq!(
        run(&s, PAGE_SIZE),
        Err(XpressError::OutputTooShort {
            offset: 5,
            out_pos: 1,
            expected: PAGE_SIZE
        })
    );
    let mut out = [0u8; 16];
    assert_eq!(decompress_bounded(&s, &mut out), Ok(1));
    assert_eq!(out[0], b'a');
}

#[test]
fn offset_accessor_and_display() {
    let e = XpressError::DistanceBeforeStart {
        offset: 6,
        out_pos: 2,
        distance: 8192,
    };
    assert_eq!(e.offset(), 6);
    let text = e.to_string();
    assert!(text.contains("8192") && text.contains("offset 6"), "{text}");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(!boxed.to_string().is_empty());
}
