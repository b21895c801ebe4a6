//! A safe LZO1X decompressor with a bounded output.
//!
//! Written from the public description of the LZO1X stream (the Linux kernel's
//! `Documentation/staging/lzo.rst`, which documents what liblzo's `lzo1x_decompress_safe`
//! accepts): no crate we could use decodes it safely. `lzo1x` and `rust-lzo` are GPL (this
//! project is MIT OR Apache-2.0) and `lzokay-native`'s decoder panics on a distance that
//! reaches before the output and grows its output without bound, so a hostile page could kill
//! the process or exhaust memory. Here every length and distance is checked against the input
//! left and the caller's buffer, and the stream must end with the end-of-stream marker exactly
//! at the end of the input, as `lzo1x_decompress_safe` requires.
//!
//! The stream is a sequence of instructions; `state` is the number of literals the previous
//! instruction copied (0..=3, or 4 for a run of 4 or more):
//!
//! | first byte | meaning |
//! |---|---|
//! | `0000LLLL`, state 0 | literal run of `3 + L` bytes (L = 0: extended length) |
//! | `0000DDSS`, state 1..3 | 2-byte match, distance `(H << 2) + D + 1`, then S literals |
//! | `0000DDSS`, state 4 | 3-byte match, distance `(H << 2) + D + 2049`, then S literals |
//! | `0001HLLL` | match of `2 + L` bytes (L = 0: extended), LE16 `DS`: distance `16384 + (H << 14) + (D >> 2)`; distance 16384 ends the stream |
//! | `001LLLLL` | match of `2 + L` bytes (L = 0: extended), LE16 `DS`: distance `(D >> 2) + 1` |
//! | `01LDDDSS` | match of `3 + L` bytes, distance `(H << 3) + D + 1` |
//! | `1LLDDDSS` | match of `5 + L` bytes, distance `(H << 3) + D + 1` |
//!
//! A first byte of 18..=21 copies `byte - 17` literals; 22..=255 copies `byte - 17` literals
//! and sets state 4. An extended length is a run of zero bytes (255 each) and one non-zero
//! byte added to the base (15, 7 or 31).

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LzoError {
    /// The input ended inside an instruction.
    InputOverrun,
    /// The stream would write past the end of the output buffer.
    OutputOverrun,
    /// A match reaches before the start of the output.
    LookBehind,
    /// Bytes follow the end-of-stream marker.
    InputNotConsumed,
}

impl std::fmt::Display for LzoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LzoError::InputOverrun => "LZO stream ends inside an instruction",
            LzoError::OutputOverrun => "LZO stream decodes to more bytes than a page",
            LzoError::LookBehind => "LZO match reaches before the start of the page",
            LzoError::InputNotConsumed => "bytes follow the LZO end-of-stream marker",
        })
    }
}

struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, LzoError> {
        let b = *self.src.get(self.pos).ok_or(LzoError::InputOverrun)?;
        self.pos += 1;
        Ok(b)
    }

    fn le16(&mut self) -> Result<usize, LzoError> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(usize::from(u16::from_le_bytes([lo, hi])))
    }

    /// `base` plus a run of zero bytes (255 each) and the non-zero byte that ends it.
    fn extended(&mut self, base: usize, limit: usize) -> Result<usize, LzoError> {
        let mut len = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return Ok(len + usize::from(b));
            }
            len += 255;
            // Longer than anything the output can take: stop before the sum can overflow.
            if len > limit {
                return Err(LzoError::OutputOverrun);
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], LzoError> {
        let end = self.pos.checked_add(n).ok_or(LzoError::InputOverrun)?;
        let s = self.src.get(self.pos..end).ok_or(LzoError::InputOverrun)?;
        self.pos = end;
        Ok(s)
    }
}

/// Decompresses `src` into `out`; returns the number of bytes written.
pub(crate) fn decompress(src: &[u8], out: &mut [u8]) -> Result<usize, LzoError> {
    let mut r = Reader { src, pos: 0 };
    let mut op = 0usize;
    let limit = out.len();

    let copy_literals = |r: &mut Reader<'_>, out: &mut [u8], op: &mut usize, n: usize| {
        let lit = r.take(n)?;
        let dst = out.get_mut(*op..*op + n).ok_or(LzoError::OutputOverrun)?;
        dst.copy_from_slice(lit);
        *op += n;
        Ok::<(), LzoError>(())
    };

    let mut state = 0usize;
    match src.first() {
        Some(&b) if b >= 22 => {
            r.pos = 1;
            copy_literals(&mut r, out, &mut op, usize::from(b - 17))?;
            state = 4;
        }
        Some(&b) if b >= 18 => {
            r.pos = 1;
            state = usize::from(b - 17);
            copy_literals(&mut r, out, &mut op, state)?;
        }
        _ => {}
    }

    loop {
        let inst = usize::from(r.byte()?);
        let (len, dist, next);
        if inst >= 64 {
            let h = usize::from(r.byte()?);
            len = (inst >> 5) + 1;
            dist = (h << 3) + ((inst >> 2) & 7) + 1;
            next = inst & 3;
        } else if inst >= 32 {
            len = match inst & 31 {
                0 => r.extended(31, limit)? + 2,
                l => l + 2,
            };
            let ds = r.le16()?;
            dist = (ds >> 2) + 1;
            next = ds & 3;
        } else if inst >= 16 {
            len = match inst & 7 {
                0 => r.extended(7, limit)? + 2,
                l => l + 2,
            };
            let ds = r.le16()?;
            let d = ((inst & 8) << 11) + (ds >> 2);
            if d == 0 {
                // End of stream: 0x11 0x00 0x00.
                if r.pos != src.len() {
                    return Err(LzoError::InputNotConsumed);
                }
                return Ok(op);
            }
            dist = 16384 + d;
            next = ds & 3;
        } else if state == 0 {
            let n = match inst {
                0 => r.extended(15, limit)? + 3,
                l => l + 3,
            };
            copy_literals(&mut r, out, &mut op, n)?;
            state = 4;
            continue;
        } else {
            let h = usize::from(r.byte()?);
            if state == 4 {
                len = 3;
                dist = (h << 2) + (inst >> 2) + 2049;
            } else {
                len = 2;
                dist = (h << 2) + (inst >> 2) + 1;
            }
            next = inst & 3;
        }

        // The match: byte by byte, as source and destination may overlap.
        let from = op.checked_sub(dist).ok_or(LzoError::LookBehind)?;
        if len > limit - op {
            return Err(LzoError::OutputOverrun);
        }
        for i in 0..len {
            out[op + i] = out[from + i];
        }
        op += len;
        copy_literals(&mut r, out, &mut op, next)?;
        state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_then_end() {
        // 22 + 3 = 25 -> 8 literals, then the end marker.
        let src = [
            25, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', 0x11, 0, 0,
        ];
        let mut out = [0u8; 16];
        assert_eq!(decompress(&src, &mut out), Ok(8));
        assert_eq!(&out[..8], b"abcdefgh");
    }

    #[test]
    fn overlapping_match() {
        // 4 literals "abcd", then M2 `01LDDDSS` L=1 (4 bytes), distance 4: "abcd" again.
        let d = 3; // distance - 1 = (H << 3) + D
                   // First byte 21: 4 literals (state 4).
        let src = [
            21,
            b'a',
            b'b',
            b'c',
            b'd',
            0x40 | 0x20 | (d << 2),
            0,
            0x11,
            0,
            0,
        ];
        let mut out = [0u8; 16];
        let n = decompress(&src, &mut out).unwrap();
        assert_eq!(&out[..n], b"abcdabcd");
    }

    #[test]
    fn hostile_streams_are_refused() {
        let mut out = [0u8; 4096];
        assert_eq!(decompress(&[], &mut out), Err(LzoError::InputOverrun));
        // One literal, then a match 8 bytes back.
        assert_eq!(
            decompress(&[18, b'x', 0x40 | (7 << 2), 0], &mut out),
            Err(LzoError::LookBehind)
        );
        // An endless extended length.
        let mut long = vec![0u8; 64];
        long.extend(std::iter::repeat_n(0, 100));
        assert!(decompress(&long, &mut out).is_err());
        // Trailing garbage after the end marker.
        assert_eq!(
            decompress(&[18, b'x', 0x11, 0, 0, 7], &mut out),
            Err(LzoError::InputNotConsumed)
        );
        // More output than the buffer: 200 literals into 16 bytes.
        let mut big = vec![0u8, 200 - 18];
        big.extend(std::iter::repeat_n(b'z', 200));
        let mut small = [0u8; 16];
        assert_eq!(decompress(&big, &mut small), Err(LzoError::OutputOverrun));
    }

    /// liblzo2's own output (tests/data/lzo/make_vectors.py): lzo1x_1 as QEMU and
    /// makedumpfile write it, and lzo1x_999, which uses every instruction kind.
    #[test]
    fn liblzo2_vectors() {
        macro_rules! vector {
            ($name:literal) => {
                (
                    $name,
                    &include_bytes!(concat!("../../tests/data/lzo/", $name, ".page"))[..],
                    &include_bytes!(concat!("../../tests/data/lzo/", $name, ".lzo1x_1"))[..],
                    &include_bytes!(concat!("../../tests/data/lzo/", $name, ".lzo1x_999"))[..],
                )
            };
        }
        for (name, page, fast, best) in [
            vector!("text"),
            vector!("random"),
            vector!("sparse"),
            vector!("zero"),
            vector!("mixed"),
        ] {
            for stream in [fast, best] {
                let mut out = [0u8; 4096];
                assert_eq!(decompress(stream, &mut out), Ok(4096), "{name}");
                assert_eq!(&out[..], page, "{name}");
                // Every proper prefix is refused, never a panic.
                for cut in 0..stream.len() {
                    assert!(
                        decompress(&stream[..cut], &mut out).is_err(),
                        "{name} cut {cut}"
                    );
                }
                // A page buffer one byte short overruns.
                let mut short = [0u8; 4095];
                assert_eq!(decompress(stream, &mut short), Err(LzoError::OutputOverrun));
            }
        }
    }
}
