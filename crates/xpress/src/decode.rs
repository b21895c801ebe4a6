//! Plain LZ77 decoder.
//!
//! The decoder writes into a caller-supplied slice. The main loop reads one
//! 32-bit flag word at a time and handles a whole run of literal flags at
//! once (`leading_zeros` of the pending flag bits). While the input and the
//! output both have room to spare, literal runs and matches are copied in
//! fixed-size chunks that may write a few bytes past the end of the item;
//! those bytes lie inside the output buffer and are overwritten by the items
//! that follow. Near the end of either buffer every item takes an exact path
//! that checks each byte against the rules of the format.

use crate::error::XpressError;
use crate::PAGE_SIZE;

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
#[inline]
pub fn decompress_page(src: &[u8], page: &mut [u8; PAGE_SIZE]) -> Result<(), XpressError> {
    decompress_into(src, page)
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
    let n = src.len();
    let cap = out.len();
    // Invariants: i <= n, o <= cap.
    let mut i = 0usize;
    let mut o = 0usize;
    // Pending flag bits, the next one at bit 63; `bits` of them are valid.
    let mut flags: u64 = 0;
    let mut bits: u32 = 0;
    // High half of a length byte whose low half served an earlier match.
    let mut nibble: Option<u8> = None;

    loop {
        if bits == 0 {
            let Some(&[a, b, c, d]) = src.get(i..i.saturating_add(4)) else {
                return Err(XpressError::TruncatedFlags { offset: i });
            };
            flags = u64::from(u32::from_le_bytes([a, b, c, d])) << 32;
            bits = 32;
            i += 4;
        }

        // A run of literal flags (at most the `bits` still pending).
        let run = flags.leading_zeros().min(bits);
        if run != 0 {
            let r = run as usize;
            if n - i >= LITERAL_CHUNK && cap - o >= LITERAL_CHUNK {
                out[o..o + LITERAL_CHUNK].copy_from_slice(&src[i..i + LITERAL_CHUNK]);
            } else {
                literals_exact(src, out, i, o, r)?;
            }
            i += r;
            o += r;
            flags <<= run;
            bits -= run;
            if bits == 0 {
                continue;
            }
        }

        // The next flag is set: a match, or the end of the stream.
        flags <<= 1;
        bits -= 1;
        if i == n {
            return Ok(o);
        }
        let start = i;
        let Some(&[lo, hi]) = src.get(i..i.saturating_add(2)) else {
            return Err(XpressError::TruncatedMatch { offset: i });
        };
        i += 2;
        let m = u16::from_le_bytes([lo, hi]);
        let dist = usize::from(m >> 3) + 1;
        let short = usize::from(m & 7);
        let (len, wanted) = if short != 7 {
            (short + 3, (short + 3) as u64)
        } else {
            let long = long_length(src, &mut i, &mut nibble)?;
            (usize::try_from(long).unwrap_or(usize::MAX), long)
        };
        if dist > o {
            return Err(XpressError::DistanceBeforeStart {
                offset: start,
                out_pos: o,
                distance: dist,
            });
        }
        if len > cap - o {
            return Err(XpressError::OutputOverrun {
                offset: start,
                out_pos: o,
                length: wanted,
                capacity: cap,
            });
        }
        copy_match(out, o, dist, len);
        o += len;
    }
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

/// Reads the extension of a match whose 3-bit length field is 7 and returns
/// the full match length (at least 10). `i` points just past the match
/// descriptor and is advanced past the extension bytes.
#[inline(never)]
fn long_length(src: &[u8], i: &mut usize, nibble: &mut Option<u8>) -> Result<u64, XpressError> {
    let mut len: u64 = match nibble.take() {
        Some(high) => u64::from(high),
        None => {
            let b = *src
                .get(*i)
                .ok_or(XpressError::TruncatedMatch { offset: *i })?;
            *nibble = Some(b >> 4);
            *i += 1;
            u64::from(b & 0x0F)
        }
    };
    if len == 15 {
        let b = *src
            .get(*i)
            .ok_or(XpressError::TruncatedMatch { offset: *i })?;
        *i += 1;
        len = u64::from(b);
        if b == 255 {
            let at = *i;
            let Some(&[lo, hi]) = src.get(at..at.saturating_add(2)) else {
                return Err(XpressError::TruncatedMatch { offset: at });
            };
            *i += 2;
            let mut value = u32::from(u16::from_le_bytes([lo, hi]));
            let mut value_at = at;
            if value == 0 {
                value_at = *i;
                let Some(&[a, b, c, d]) = src.get(value_at..value_at.saturating_add(4)) else {
                    return Err(XpressError::TruncatedMatch { offset: value_at });
                };
                *i += 4;
                value = u32::from_le_bytes([a, b, c, d]);
            }
            let Some(rest) = value.checked_sub(22) else {
                return Err(XpressError::LongLengthTooSmall {
                    offset: value_at,
                    value,
                });
            };
            len = u64::from(rest);
        }
        len += 15;
    }
    Ok(len + 7 + 3)
}

/// Appends the `len` bytes of a match at `o`, copying from `dist` bytes back.
///
/// Preconditions (checked by the caller): `1 <= dist <= o` and
/// `len <= out.len() - o`.
#[inline(always)]
fn copy_match(out: &mut [u8], o: usize, dist: usize, len: usize) {
    let slack = out.len() - o - len;
    let from = o - dist;
    if dist >= 16 && slack >= 16 {
        // Each 16-byte chunk reads only bytes already final.
        let mut k = 0;
        loop {
            out.copy_within(from + k..from + k + 16, o + k);
            k += 16;
            if k >= len {
                break;
            }
        }
    } else if dist >= 8 && slack >= 8 {
        let mut k = 0;
        loop {
            out.copy_within(from + k..from + k + 8, o + k);
            k += 8;
            if k >= len {
                break;
            }
        }
    } else if dist < 8 && slack >= 8 && len <= 64 {
        // Short period: build 8 bytes of the repeating pattern and store them
        // every `step` bytes, `step` being a multiple of `dist`.
        let mut pat = [0u8; 8];
        pat[..dist].copy_from_slice(&out[from..o]);
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
    } else if dist == 1 {
        let b = out[from];
        out[o..o + len].fill(b);
    } else if dist >= len {
        out.copy_within(from..from + len, o);
    } else {
        copy_overlapping(out, from, dist, len);
    }
}

/// Byte-by-byte copy of an overlapping match (`dist < len`).
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
                    copy_match(&mut a, o, dist, len);
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
