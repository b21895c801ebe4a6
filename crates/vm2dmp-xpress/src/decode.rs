//! Plain LZ77 decoder.
//!
//! The decoder writes into a caller-supplied slice, in two loops. The fast
//! loop runs while the input has [`IN_MARGIN`] bytes left and the output
//! [`OUT_MARGIN`] bytes of room: each iteration decodes a run of literals
//! (possibly empty) and the match that follows it, reads the input through
//! a fixed window, and writes fixed-size blocks: the literal run as one
//! 32-byte block and a match of at most 16 bytes as one 16-byte block.
//! Those may write past the end of the item, inside the output buffer; the
//! items that follow overwrite the extra bytes. The exact loop decodes the
//! rest, checking every item against the ends of both buffers. Both report
//! the same errors at the same offsets.
//!
//! Pending flag bits are kept left-aligned in a `u64` with a marker bit
//! after the last one, so that a run of literal flags is measured with one
//! `leading_zeros`.
//!
//! Memory pages are mostly short items: in the OVMF pages of the benchmark,
//! literal runs of 3 bytes and matches of 7 on average, a fifth of them
//! "one literal, then 7 bytes from 8 back" (arrays of 8-byte entries such
//! as page tables). A match then reads bytes written a few nanoseconds
//! earlier, and a load that overlaps a store still in flight without being
//! contained in it is not forwarded the data: it waits until the store
//! reaches the cache. So when the source of a match lies before the literal
//! run that precedes it, the fast loop reads the source before it stores
//! the literals, and the load meets only the stores of earlier items (for
//! the 8-byte entries, the previous match's block, which contains it).

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
    // The decoder inlined with a constant output size.
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

/// Input bytes one iteration of the fast loop reads through its window: a
/// flag word, 32 literals, a match descriptor and a length byte (the bytes
/// of the longest lengths are read with their own checks).
const IN_MARGIN: usize = 4 + LITERAL_CHUNK + 3;

/// Output bytes one iteration of the fast loop may write: a 32-byte literal
/// block, then a 16-byte match block at most 32 bytes further.
const OUT_MARGIN: usize = LITERAL_CHUNK + 16;

/// `flags` once all 32 bits of a flag word are used. Pending flag bits are
/// left-aligned in a `u64`, followed by a marker bit: a flag word `f` is
/// loaded as `f << 32 | 1 << 31`. The marker stops `leading_zeros` at the
/// end of the word.
const EMPTY: u64 = 1 << 63;

/// Where the fast loop stopped.
struct State {
    /// Input offset.
    i: usize,
    /// Output offset.
    o: usize,
    /// Pending flag bits (see [`EMPTY`]).
    flags: u64,
    /// High half of a length byte whose low half served an earlier match.
    nibble: Option<u8>,
}

/// The decoder; see [`decompress_bounded`].
#[inline(always)]
fn decode(src: &[u8], out: &mut [u8]) -> Result<usize, XpressError> {
    let st = decode_fast(src, out)?;
    decode_exact(src, out, st)
}

/// Decodes while both buffers have room for a whole iteration to spare and
/// returns the state for [`decode_exact`].
#[inline(always)]
fn decode_fast(src: &[u8], out: &mut [u8]) -> Result<State, XpressError> {
    // The input not yet read (fewer live registers than an offset).
    let mut rest: &[u8] = src;
    let mut o = 0usize;
    let mut flags = EMPTY;
    // 0, or 16 plus the high half of a length byte whose low half served an
    // earlier match.
    let mut nibble = 0u32;
    // Output offsets an iteration may start from; none for an output
    // smaller than the margin.
    let o_lim = out.len().checked_sub(OUT_MARGIN);
    while o_lim.is_some_and(|lim| o <= lim) {
        let Some(w) = rest.first_chunk::<IN_MARGIN>() else {
            break;
        };
        // Offset in `w`.
        let mut p = 0usize;
        if flags == EMPTY {
            flags = u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])) << 32 | 1 << 31;
            p = 4;
        }
        // A run of literal flags, possibly empty (at most 32: the marker is
        // at bit 31 or above).
        let run = (flags | 1 << 31).leading_zeros();
        let r = run as usize;
        let lits: &[u8; LITERAL_CHUNK] = w[p..].first_chunk().unwrap_or(&[0; LITERAL_CHUNK]);
        flags <<= run;
        p += r;
        if flags == EMPTY {
            store(out, o, *lits);
            rest = rest.get(p..).unwrap_or_default();
            o += r;
            continue;
        }

        // A match (not the end of the stream: input is left).
        flags <<= 1;
        let at = p;
        let m = u16::from_le_bytes([w[p], w[p + 1]]);
        let dist = usize::from(m >> 3) + 1;
        // Length 3 to 9 from the descriptor; or 10 to 24 from a half byte:
        // the pending high half, else the low half of the next byte; or
        // longer. The selects compile to branches, which keeps the input
        // position free of a dependency on the loaded bytes.
        let short = u32::from(m & 7);
        let ext = short == 7;
        let b = u32::from(w[p + 2]);
        let has = nibble != 0;
        let half = if has { nibble & 15 } else { b & 15 };
        let take = usize::from(ext & !has);
        nibble = if ext {
            if has {
                0
            } else {
                16 | b >> 4
            }
        } else {
            nibble
        };
        let mut len = (if ext { half + 10 } else { short + 3 }) as usize;
        p += 2 + take;
        if len == 25 {
            let i = src.len() - rest.len();
            let (long, next) = extended_length(src, i + p)?;
            p = next - i;
            len = match usize::try_from(long) {
                Ok(len) => len,
                // Only with a 32-bit `usize`: the match cannot fit, and the
                // error reports the length as read.
                Err(_) => {
                    let offset = src.len() - rest.len() + at;
                    let out_pos = o + r;
                    return Err(if dist > out_pos {
                        XpressError::DistanceBeforeStart {
                            offset,
                            out_pos,
                            distance: dist,
                        }
                    } else {
                        XpressError::OutputOverrun {
                            offset,
                            out_pos,
                            length: long,
                            capacity: out.len(),
                        }
                    });
                }
            };
        }

        let lits_at = o;
        o += r;
        if dist > o {
            return Err(XpressError::DistanceBeforeStart {
                offset: src.len() - rest.len() + at,
                out_pos: o,
                distance: dist,
            });
        }
        let from = o - dist;
        if len <= 16 && r + len <= dist {
            // The source lies before the literals: read it first (see the
            // module documentation). `o + 16 <= out.len()`. Two 8-byte
            // halves stay in registers (one 16-byte load and store all the
            // same); a `[u8; 16]` value held across the literal store goes
            // through the stack.
            let a = u64::from_le_bytes(load::<8>(out, from));
            let b = u64::from_le_bytes(load::<8>(out, from + 8));
            store(out, lits_at, *lits);
            store(out, o, a.to_le_bytes());
            store(out, o + 8, b.to_le_bytes());
        } else {
            store(out, lits_at, *lits);
            copy_match_checked(out, o, dist, len, src.len() - rest.len() + at)?;
        }
        rest = rest.get(p..).unwrap_or_default();
        o += len;
    }
    Ok(State {
        i: src.len() - rest.len(),
        o,
        flags,
        nibble: (nibble != 0).then_some((nibble & 15) as u8),
    })
}

/// The `N` bytes of `s` at `at` (zeros if there are fewer, which the
/// callers rule out).
#[inline(always)]
fn load<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    chunk::<N>(s, at).copied().unwrap_or([0; N])
}

/// Writes `v` at `at` (nothing if it does not fit, which the callers rule
/// out).
#[inline(always)]
fn store<const N: usize>(s: &mut [u8], at: usize, v: [u8; N]) {
    if let Some(to) = s.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<N>) {
        *to = v;
    }
}

/// Appends a match of any length at `o` (`1 <= dist <= o`), or reports
/// that it does not fit; `start` is the input offset of its descriptor.
#[inline(always)]
fn copy_match_checked(
    out: &mut [u8],
    o: usize,
    dist: usize,
    len: usize,
    start: usize,
) -> Result<(), XpressError> {
    let room = out.len() - o;
    if len < room.saturating_sub(15) {
        copy_match_fast(out, o, dist, len);
    } else if len <= room {
        copy_match_exact(out, o, dist, len);
    } else {
        return Err(XpressError::OutputOverrun {
            offset: start,
            out_pos: o,
            length: len as u64,
            capacity: out.len(),
        });
    }
    Ok(())
}

/// Decodes the rest of the stream from `st`, checking every item against
/// the ends of both buffers.
#[inline(never)]
fn decode_exact(src: &[u8], out: &mut [u8], st: State) -> Result<usize, XpressError> {
    let n = src.len();
    let cap = out.len();
    let State {
        mut i,
        mut o,
        mut flags,
        mut nibble,
    } = st;

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
#[inline(always)]
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

    /// The exact loop alone, from the start of the stream.
    fn exact_only(src: &[u8], out: &mut [u8]) -> Result<usize, XpressError> {
        let st = State {
            i: 0,
            o: 0,
            flags: EMPTY,
            nibble: None,
        };
        decode_exact(src, out, st)
    }

    /// Small deterministic generator (xorshift64*).
    fn next(x: &mut u64) -> u64 {
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn fast_loop_agrees_with_exact_loop() {
        // Pages of short items like real memory (8-byte entries with a few
        // bytes changing, short words, runs), their streams, and the same
        // streams with bytes changed, cut or inserted: the fast loop hands
        // over at many different points, with and without errors. Output
        // and error must be those of the exact loop alone.
        let mut x = 0x0123_4567_89AB_CDEF_u64;
        for case in 0..400 {
            let len = 64 + (next(&mut x) % 4096) as usize;
            let mut data = Vec::with_capacity(len);
            while data.len() < len {
                match next(&mut x) % 4 {
                    0 => {
                        let base = next(&mut x) & 0xFFFF_FFFF_0000;
                        for k in 0..next(&mut x) % 40 {
                            data.extend_from_slice(&(base + (k << 12) + 0x63).to_le_bytes());
                        }
                    }
                    1 => data.extend(
                        (0..next(&mut x) % 40).map(|_| b"etaoin "[(next(&mut x) % 7) as usize]),
                    ),
                    2 => data.resize(data.len() + (next(&mut x) % 300) as usize, 0),
                    _ => data.extend((0..next(&mut x) % 24).map(|_| next(&mut x) as u8)),
                }
            }
            data.truncate(len);
            let mut src = Vec::new();
            crate::encode::compress(&data, &mut src);
            match case % 4 {
                0 => {}
                1 => {
                    let at = (next(&mut x) as usize) % src.len();
                    src[at] = next(&mut x) as u8;
                }
                2 => src.truncate((next(&mut x) as usize) % src.len()),
                _ => {
                    let at = (next(&mut x) as usize) % src.len();
                    src.insert(at, next(&mut x) as u8);
                }
            }
            for cap in [len, len - 1, len + 100, 47, 48, 200] {
                let mut a = vec![0u8; cap];
                let mut b = vec![0u8; cap];
                let ra = decode(&src, &mut a);
                let rb = exact_only(&src, &mut b);
                assert_eq!(ra, rb, "case {case} cap {cap}");
                if let Ok(n) = ra {
                    assert_eq!(a[..n], b[..n], "case {case} cap {cap}");
                }
            }
            if case % 4 == 0 {
                let mut back = vec![0u8; len];
                assert_eq!(decode(&src, &mut back), Ok(len));
                assert_eq!(back, data);
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
