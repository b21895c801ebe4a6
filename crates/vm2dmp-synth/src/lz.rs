//! Plain LZ77 (MS-XCA section 2.3) compression used for compressed page tokens.
//!
//! A small greedy encoder: one hash-table candidate per position, distances up to
//! 8192, the shared length nibble, and the 255 / u16 / u32 length escapes.

const MAX_DISTANCE: usize = 8192;
const MIN_MATCH: usize = 3;
const HASH_BITS: u32 = 13;

struct FlagWriter {
    flags: u32,
    count: u32,
    slot: usize,
}

impl FlagWriter {
    fn new(out: &mut Vec<u8>) -> Self {
        let slot = out.len();
        out.extend_from_slice(&[0; 4]);
        Self {
            flags: 0,
            count: 0,
            slot,
        }
    }

    fn push(&mut self, out: &mut Vec<u8>, bit: bool) {
        if self.count == 32 {
            out[self.slot..self.slot + 4].copy_from_slice(&self.flags.to_le_bytes());
            self.slot = out.len();
            out.extend_from_slice(&[0; 4]);
            self.flags = 0;
            self.count = 0;
        }
        self.flags = (self.flags << 1) | bit as u32;
        self.count += 1;
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        if self.count == 32 {
            out[self.slot..self.slot + 4].copy_from_slice(&self.flags.to_le_bytes());
            self.slot = out.len();
            out.extend_from_slice(&[0; 4]);
            self.flags = 0;
            self.count = 0;
        }
        // Unused bits are ones: the decoder sees a "match" with no input left and stops.
        let unused = 32 - self.count;
        let flags = if unused == 32 {
            u32::MAX
        } else {
            (self.flags << unused) | ((1u32 << unused) - 1)
        };
        out[self.slot..self.slot + 4].copy_from_slice(&flags.to_le_bytes());
    }
}

fn hash3(b: &[u8]) -> usize {
    let v = (b[0] as u32) | ((b[1] as u32) << 8) | ((b[2] as u32) << 16);
    (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// Compress `input`, appending the Plain LZ77 stream to `out`.
pub fn compress(input: &[u8], out: &mut Vec<u8>) {
    let mut flags = FlagWriter::new(out);
    let mut head = vec![usize::MAX; 1 << HASH_BITS];
    let mut nibble_at: Option<usize> = None;
    let mut i = 0usize;
    while i < input.len() {
        let mut best_len = 0usize;
        let mut best_dist = 0usize;
        if i + MIN_MATCH <= input.len() {
            let h = hash3(&input[i..]);
            let cand = head[h];
            head[h] = i;
            let mut try_cand = |c: usize| {
                if c < i && i - c <= MAX_DISTANCE {
                    let mut l = 0;
                    while i + l < input.len() && input[c + l] == input[i + l] {
                        l += 1;
                    }
                    if l > best_len {
                        best_len = l;
                        best_dist = i - c;
                    }
                }
            };
            if cand != usize::MAX {
                try_cand(cand);
            }
            // Short distances catch runs and small periodic patterns.
            for d in 1..=8usize {
                if d <= i {
                    try_cand(i - d);
                }
            }
        }
        if best_len >= MIN_MATCH {
            flags.push(out, true);
            let mut len = best_len - MIN_MATCH;
            let m = ((best_dist - 1) << 3) as u16;
            if len < 7 {
                out.extend_from_slice(&(m | len as u16).to_le_bytes());
            } else {
                out.extend_from_slice(&(m | 7).to_le_bytes());
                len -= 7;
                let nib = len.min(15) as u8;
                match nibble_at.take() {
                    None => {
                        nibble_at = Some(out.len());
                        out.push(nib);
                    }
                    Some(at) => out[at] |= nib << 4,
                }
                if len >= 15 {
                    len -= 15;
                    if len < 255 {
                        out.push(len as u8);
                    } else {
                        out.push(255);
                        let full = len + 15 + 7;
                        if full <= 0xFFFF {
                            out.extend_from_slice(&(full as u16).to_le_bytes());
                        } else {
                            out.extend_from_slice(&0u16.to_le_bytes());
                            out.extend_from_slice(&(full as u32).to_le_bytes());
                        }
                    }
                }
            }
            // Index the skipped positions cheaply (every position, bounded by input).
            let end = i + best_len;
            let mut j = i + 1;
            while j < end && j + MIN_MATCH <= input.len() {
                head[hash3(&input[j..])] = j;
                j += 1;
            }
            i = end;
        } else {
            flags.push(out, false);
            out.push(input[i]);
            i += 1;
        }
    }
    flags.finish(out);
}

/// Compressed size of `input` (convenience for policies).
pub fn compressed(input: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(input.len() / 2 + 8);
    compress(input, &mut v);
    v
}
