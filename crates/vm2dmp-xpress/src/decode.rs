//! Plain LZ77 decoder.
//!
//! The decoder writes into a caller-supplied slice. The main loop keeps the
//! pending flag bits left-aligned in a `u64` with a marker bit after the
//! last one, so that a whole run of literal flags is measured with one
//! `leading_zeros`. While the input and the output both have room to spare,
//! a literal run is copied as one fixed 32-byte block and a match as 16- or
//! 8-byte chunks (or a repeated 8-byte pattern for distances below 8); these
//! may write a few bytes past the end of the item, inside the output buffer,
//! and the items that follow overwrite them. Near the end of either buffer
//! every item takes an exact path that checks each byte against the rules
//! of the format. Long length extensions and the exact paths are out of
//! line. [`decompress_page`] has its own copy of the loop, specialised for a
//! 4096-byte output.

use crate::error::XpressError;

/// Size of a guest page, the output size of a compressed page token.
pub const PAGE_SIZE: usize = 4096;

/// Bytes a literal run may copy at once on the fast path (the longest run
/// of literal flags in one flag word is 32).
const LITERAL_CHUNK: usize = 32;

/// For a match distance below 8: the largest multiple of it not above 8.
const PATTERN_STEP: [usize; 8] = [8, 8, 8, 6, 8, 5, 6, 7];

/// Decompresses one page: `src` must decode to exactly 4096 bytes.
///
/// The page is written directly into `page`; nothing is allocated. On error
/// the contents of `page` are unspecified.
///
/// # Errors
///
/// Any [`XpressError`]; [`XpressError::OutputTooShort`] if the stream ends
/// before 4096 bytes and [`XpressError::OutputOverrun`] if it would produce
/// more.
pub fn decompress_page(src: &[u8], page: &mut [u8; PAGE_SIZE]) -> Result<(), XpressError> {
    // A copy of the decoder specialised for a 4096-byte output.
    let produced = decode(src, page)?;
    if produced == PAGE_SIZE {
        Ok(())
    } else {
        Err(XpressError::OutputTooShort {
            offset: src.len(),
            out_pos: produced,
            expected: PAGE_SIZE,
        })
    }
}

/// Decompresses `src` into `out`, which the stream must fill exactly.
///
/// On error the contents of `out` are unspecified.
///
/// # Errors
///
/// Any [`XpressError`]; [`XpressError::OutputTooShort`] if the stream ends
/// before `out.len()` bytes and [`XpressError::OutputOverrun`] if it would
/// produce more.
pub fn decompress_into(src: &[u8], out: &mut [u8]) -> Result<(), XpressError> {
    let produced = decompress_bounded(src, out)?;
    if produced == out.len() {
        Ok(())
    } else {
        Err(XpressError::OutputTooShort {
            offset: src.len(),
            out_pos: produced,
            expected: out.len(),
        })
    }
}

/// Decompresses `src` into the start of `out` and returns the number of
/// bytes produced, which may be less than `out.len()`.
///
/// Bytes of `out` past the returned length are unspecified, and so is the
/// whole of `out` on error.
///
/// # Errors
///
/// Any [`XpressError`] except [`XpressError::OutputTooShort`];
/// [`XpressError::OutputOverrun`] if the stream would produce more than
/// `out.len()` bytes.
pub fn decompress_bounded(src: &[u8], out: &mut [u8]) -> Result<usize, XpressError> {
    decode(src, out)
}

/// The decoder; see [`decompress_bounded`].
#[inline(always)]
fn decode(src: &[u8], out: &mut [u8]) -> Result<usize, XpressError> {
    let n = src.len();
    let cap = out.len();
    // Invariants: i <= n, o <= cap.
    let mut i = 0usize;
    let mut o = 0usize;
    // Pending flag bits, the next one at bit 63, followed by a marker bit:
    // a flag word `f` is loaded as `f << 32 | 1 << 31`. The marker stops
    // `leading_zeros` at the end of the word, and `flags == EMPTY` once
    // all 32 bits are used.
    const EMPTY: u64 = 1 << 63;
    let mut flags: u64 = EMPTY;
    // High half of a length byte whose low half served an earlier match.
    let mut nibble: Option<u8> = None;

    loop {
        if flags == EMPTY {
            let Some(&[a, b, c, d]) = chunk::<4>(src, i) else {
                return Err(XpressError::TruncatedFlags { offset: i });
            };
            flags = u64::from(u32::from_le_bytes([a, b, c, d])) << 32 | 1 << 31;
            i += 4;
        }

        // A run of literal flags, possibly empty.
        let run = flags.leading_zeros();
        let r = run as usize;
        if let (Some(from), Some(to)) = (
            chunk::<LITERAL_CHUNK>(src, i),
            out.get_mut(o..)
                .and_then(<[u8]>::first_chunk_mut::<LITERAL_CHUNK>),
        ) {
            *to = *from;
        } else if r != 0 {
            literals_exact(src, out, i, o, r)?;
        }
        i += r;
        o += r;
        flags <<= run;
        if flags == EMPTY {
            continue;
        }

        // The next flag is set: a match, or the end of the stream.
        flags <<= 1;
        if i == n {
            return Ok(o);
        }
        let start = i;
        let Some(&[lo, hi]) = chunk::<2>(src, i) else {
            return Err(XpressError::TruncatedMatch { offset: i });
        };
        i += 2;
        let m = u16::from_le_bytes([lo, hi]);
        let dist = usize::from(m >> 3) + 1;
        let short = usize::from(m & 7);
        let (len, wanted) = if short != 7 {
            (short + 3, (short + 3) as u64)
        } else {
            let half = match nibble.take() {
                Some(high) => high,
                None => {
                    let Some(&b) = src.get(i) else {
                        return Err(XpressError::TruncatedMatch { offset: i });
                    };
                    i += 1;
                    nibble = Some(b >> 4);
                    b & 0x0F
                }
            };
            if half != 15 {
                let len = usize::from(half) + 10;
                (len, len as u64)
            } else {
                let (long, next) = extended_length(src, i)?;
                i = next;
                (usize::try_from(long).unwrap_or(usize::MAX), long)
            }
        };
        if dist > o {
            return Err(XpressError::DistanceBeforeStart {
                offset: start,
                out_pos: o,
                distance: dist,
            });
        }
        let room = cap - o;
        if len < room.saturating_sub(15) {
            copy_match_fast(out, o, dist, len);
        } else if len <= room {
            copy_match_exact(out, o, dist, len);
        } else {
            return Err(XpressError::OutputOverrun {
                offset: start,
                out_pos: o,
                length: wanted,
                capacity: cap,
            });
        }
        o += len;
    }
}

/// The `N` bytes of `s` at `at`, if there are that many.
#[inline(always)]
fn chunk<const N: usize>(s: &[u8], at: usize) -> Option<&[u8; N]> {
    s.get(at..)?.first_chunk::<N>()
}

/// Copies a run of `r` literals one by one with the exact checks of the
/// format, near the end of the input or of the output.
#[cold]
#[inline(never)]
fn literals_exact(
    src: &[u8],
    out: &mut [u8],
    i: usize,
    o: usize,
    r: usize,
) -> Result<(), XpressError> {
    let avail_in = src.len() - i;
    let avail_out = out.len() - o;
    let k = r.min(avail_in).min(avail_out);
    out[o..o + k].copy_from_slice(&src[i..i + k]);
    if k == r {
        Ok(())
    } else if k == avail_in {
        // The input check comes first for each literal.
        Err(XpressError::LiteralPastEnd {
            offset: src.len(),
            out_pos: o + k,
        })
    } else {
        Err(XpressError::OutputOverrun {
            offset: i + k,
            out_pos: o + k,
            length: 1,
            capacity: out.len(),
        })
    }
}

/// Reads the length bytes that follow a 4-bit length field of 15, starting
/// at `i`, and returns the full match length (at least 25) and the input
/// offset past them.
#[inline(never)]
fn extended_length(src: &[u8], mut i: usize) -> Result<(u64, usize), XpressError> {
    let Some(&b) = src.get(i) else {
        return Err(XpressError::TruncatedMatch { offset: i });
    };
    i += 1;
    let mut len = u64::from(b);
    if b == 255 {
        let Some(&[lo, hi]) = chunk::<2>(src, i) else {
            return Err(XpressError::TruncatedMatch { offset: i });
        };
        let mut value_at = i;
        let mut value = u32::from(u16::from_le_bytes([lo, hi]));
        i += 2;
        if value == 0 {
            let Some(&[a, b, c, d]) = chunk::<4>(src, i) else {
                return Err(XpressError::TruncatedMatch { offset: i });
            };
            value_at = i;
            value = u32::from_le_bytes([a, b, c, d]);
            i += 4;
        }
        let Some(rest) = value.checked_sub(22) else {
            return Err(XpressError::LongLengthTooSmall {
                offset: value_at,
                value,
            });
        };
        len = u64::from(rest);
    }
    // 15 for the byte, 7 for the 3-bit field, 3 for the minimum length.
    Ok((len + 15 + 7 + 3, i))
}

/// Appends the `len` bytes of a match at `o`, copying from `dist` bytes back.
///
/// Preconditions (checked by the caller): `1 <= dist <= o` and
/// `len + 16 <= out.len() - o`: up to 15 bytes past the match may be
/// written.
#[inline(always)]
fn copy_match_fast(out: &mut [u8], o: usize, dist: usize, len: usize) {
    let from = o - dist;
    if dist >= 16 || len <= dist {
        // Each 16-byte chunk reads only bytes already final, except when a
        // match no longer than its distance reads past `o`: `copy_within`
        // reads before it writes, and only the first `len` bytes count.
        out.copy_within(from..from + 16, o);
        if len > 16 {
            copy_chunks::<16>(out, from, o, len);
        }
    } else if dist >= 8 {
        out.copy_within(from..from + 8, o);
        if len > 8 {
            copy_chunks::<8>(out, from, o, len);
        }
    } else if dist == 1 {
        let fill = [out[from]; 16];
        if len <= 64 {
            let mut k = 0;
            loop {
                out[o + k..o + k + 16].copy_from_slice(&fill);
                k += 16;
                if k >= len {
                    break;
                }
            }
        } else {
            out[o..o + len].fill(fill[0]);
        }
    } else if len <= 64 {
        // Short period: build 8 bytes of the repeating pattern and store them
        // every `step` bytes, `step` being a multiple of `dist`.
        let mut pat = [0u8; 8];
        pat.copy_from_slice(&out[from..from + 8]);
        for j in dist..8 {
            pat[j] = pat[j - dist];
        }
        let step = PATTERN_STEP[dist];
        let mut k = 0;
        loop {
            out[o + k..o + k + 8].copy_from_slice(&pat);
            k += step;
            if k >= len {
                break;
            }
        }
    } else {
        copy_overlapping(out, from, dist, len);
    }
}

/// The chunks after the first of a match copy with `dist >= N`.
#[inline(never)]
fn copy_chunks<const N: usize>(out: &mut [u8], from: usize, o: usize, len: usize) {
    let mut k = N;
    while k < len {
        out.copy_within(from + k..from + k + N, o + k);
        k += N;
    }
}

/// Match copy near the end of the output, writing nothing past the match.
#[cold]
#[inline(never)]
fn copy_match_exact(out: &mut [u8], o: usize, dist: usize, len: usize) {
    let from = o - dist;
    if dist >= len {
        out.copy_within(from..from + len, o);
    } else if dist == 1 {
        let b = out[from];
        out[o..o + len].fill(b);
    } else {
        copy_overlapping(out, from, dist, len);
    }
}

/// Copy of an overlapping match (`dist < len`), writing nothing past it.
#[inline(never)]
fn copy_overlapping(out: &mut [u8], from: usize, dist: usize, len: usize) {
    let w = &mut out[from..from + dist + len];
    // Double the copied span each round: the region from `from` is periodic
    // with period `dist`, so any multiple of `dist` can be copied at once.
    let mut have = dist;
    let total = dist + len;
    while have < total {
        let take = have.min(total - have);
        w.copy_within(0..take, have);
        have += take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], o: usize, dist: usize, len: usize) {
        for k in 0..len {
            buf[o + k] = buf[o + k - dist];
        }
    }

    #[test]
    fn copy_match_all_paths() {
        // Every distance class, lengths around the chunk sizes, and output
        // positions leaving 0 to 40 bytes of slack after the match.
        let cap = 400;
        for dist in 1..=40 {
            for len in 3..=150 {
                for slack in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
                    let o = cap - len - slack;
                    if o < dist {
                        continue;
                    }
                    let mut a: Vec<u8> = (0..cap).map(|i| (i * 7 + i / 5) as u8).collect();
                    let mut b = a.clone();
                    if slack >= 16 {
                        copy_match_fast(&mut a, o, dist, len);
                    } else {
                        copy_match_exact(&mut a, o, dist, len);
                    }
                    naive(&mut b, o, dist, len);
                    assert_eq!(
                        a[..o + len],
                        b[..o + len],
                        "dist {dist} len {len} slack {slack}"
                    );
                }
            }
        }
    }

    #[test]
    fn pattern_steps_are_multiples() {
        for (d, &step) in PATTERN_STEP.iter().enumerate().skip(1) {
            assert_eq!(step % d, 0);
            assert!(step <= 8 && step + d > 8);
        }
    }

    #[test]
    fn page_wrapper() {
        // 4096 literals of a counter in 128 flag words.
        let mut s = Vec::new();
        for w in 0..128u32 {
            s.extend_from_slice(&0u32.to_le_bytes());
            s.extend((0..32u32).map(|k| (w * 32 + k) as u8));
        }
        s.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut page = [0u8; PAGE_SIZE];
        decompress_page(&s, &mut page).unwrap();
        assert!(page.iter().enumerate().all(|(i, &b)| b == i as u8));
    }
}
