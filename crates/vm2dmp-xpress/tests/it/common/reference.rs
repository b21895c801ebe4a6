//! A direct, byte-at-a-time transcription of the Plain LZ77 decoding
//! procedure, used as an oracle for the optimised decoder (output and
//! error variants).

use vm2dmp_xpress::XpressError;

fn need(src: &[u8], i: usize, k: usize) -> Result<&[u8], XpressError> {
    src.get(i..i + k)
        .ok_or(XpressError::TruncatedMatch { offset: i })
}

/// Decodes `src`, which must produce exactly `want` bytes.
pub fn decode(src: &[u8], want: usize) -> Result<Vec<u8>, XpressError> {
    let n = src.len();
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0usize;
    let mut flags = 0u32;
    let mut flag_bits = 0u32;
    let mut nibble_at: Option<usize> = None;
    loop {
        if flag_bits == 0 {
            let w = src
                .get(i..i + 4)
                .ok_or(XpressError::TruncatedFlags { offset: i })?;
            flags = u32::from_le_bytes(w.try_into().unwrap());
            i += 4;
            flag_bits = 32;
        }
        flag_bits -= 1;
        if flags & (1 << flag_bits) == 0 {
            if i == n {
                return Err(XpressError::LiteralPastEnd {
                    offset: n,
                    out_pos: out.len(),
                });
            }
            if out.len() == want {
                return Err(XpressError::OutputOverrun {
                    offset: i,
                    out_pos: out.len(),
                    length: 1,
                    capacity: want,
                });
            }
            out.push(src[i]);
            i += 1;
            continue;
        }
        if i == n {
            break;
        }
        let start = i;
        let m = u16::from_le_bytes(need(src, i, 2)?.try_into().unwrap());
        i += 2;
        let distance = (m >> 3) as usize + 1;
        let mut length = u64::from(m & 7);
        if length == 7 {
            match nibble_at.take() {
                None => {
                    length = u64::from(need(src, i, 1)?[0] & 0x0F);
                    nibble_at = Some(i);
                    i += 1;
                }
                Some(at) => length = u64::from(src[at] >> 4),
            }
            if length == 15 {
                length = u64::from(need(src, i, 1)?[0]);
                i += 1;
                if length == 255 {
                    let mut at = i;
                    let mut v = u32::from(u16::from_le_bytes(need(src, i, 2)?.try_into().unwrap()));
                    i += 2;
                    if v == 0 {
                        at = i;
                        v = u32::from_le_bytes(need(src, i, 4)?.try_into().unwrap());
                        i += 4;
                    }
                    if v < 22 {
                        return Err(XpressError::LongLengthTooSmall {
                            offset: at,
                            value: v,
                        });
                    }
                    length = u64::from(v) - 22;
                }
                length += 15;
            }
            length += 7;
        }
        length += 3;
        if distance > out.len() {
            return Err(XpressError::DistanceBeforeStart {
                offset: start,
                out_pos: out.len(),
                distance,
            });
        }
        if out.len() as u64 + length > want as u64 {
            return Err(XpressError::OutputOverrun {
                offset: start,
                out_pos: out.len(),
                length,
                capacity: want,
            });
        }
        for _ in 0..length {
            out.push(out[out.len() - distance]);
        }
    }
    if out.len() != want {
        return Err(XpressError::OutputTooShort {
            offset: n,
            out_pos: out.len(),
            expected: want,
        });
    }
    Ok(out)
}
