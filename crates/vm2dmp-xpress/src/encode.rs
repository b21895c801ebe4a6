//! Plain LZ77 encoder.
//!
//! A hash table maps the 3 bytes at each position to the last position
//! where they were seen; a candidate within 8192 bytes is extended as far
//! as the input matches. Matching is lazy by one byte: a match is deferred
//! when the next position starts a longer one.

/// Largest distance a match descriptor can hold.
const MAX_DISTANCE: usize = 8192;
/// Shortest match the format can express.
const MIN_MATCH: usize = 3;
/// Longest match emitted (the 32-bit length escape holds `length - 3`).
const MAX_MATCH: usize = 0xFFFF_0000;
/// Matches at least this long are taken without looking one byte ahead.
const GOOD_MATCH: usize = 32;
const HASH_BITS: u32 = 13;
const HASH_SIZE: usize = 1 << HASH_BITS;

/// Upper bound of the size of [`compress`]'s output for `input_len` bytes
/// of input: every byte a literal, plus one flag word per 32 items and the
/// final flag word.
pub fn max_compressed_len(input_len: usize) -> usize {
    input_len
        .saturating_add(4)
        .saturating_add((input_len / 32).saturating_mul(4))
}

/// Compresses `input` as a Plain LZ77 stream and appends it to `out`.
///
/// The stream decodes to exactly `input` with [`crate::decompress_into`]
/// given an output of `input.len()` bytes. Any input length works,
/// including 0 (the stream is then a single flag word). The output is never
/// larger than [`max_compressed_len`]`(input.len())`.
pub fn compress(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(max_compressed_len(input.len()));
    let mut table = [0u32; HASH_SIZE];
    let mut w = Writer::new(out);
    let n = input.len();
    let mut p = 0usize;

    // The best match at `p`, found while looking ahead from `p - 1`.
    let mut pending: Option<(usize, usize)> = None;
    while p < n {
        let here = pending.take().or_else(|| find_match(input, p, &mut table));
        let Some((len, dist)) = here else {
            w.literal(input[p]);
            p += 1;
            continue;
        };
        if len < GOOD_MATCH && p + 1 < n {
            if let Some(next) = find_match(input, p + 1, &mut table) {
                if next.0 > len {
                    w.literal(input[p]);
                    p += 1;
                    pending = Some(next);
                    continue;
                }
            }
        }
        w.matched(len, dist);
        // Index the positions the match covers (the first one is already
        // in the table).
        let end = p + len;
        let mut q = p + 1;
        while q < end {
            insert(input, q, &mut table);
            q += 1;
        }
        p = end;
    }
    w.finish();
}

/// Hash of the 3 bytes at `p` (requires `p + 3 <= input.len()`).
#[inline(always)]
fn hash3(input: &[u8], p: usize) -> usize {
    let v = u32::from(input[p]) | u32::from(input[p + 1]) << 8 | u32::from(input[p + 2]) << 16;
    (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

#[inline(always)]
fn insert(input: &[u8], p: usize, table: &mut [u32; HASH_SIZE]) {
    if p + MIN_MATCH <= input.len() {
        table[hash3(input, p)] = p as u32;
    }
}

/// Looks up the match candidate at `p`, records `p` in the table, and
/// returns `(length, distance)` if the candidate matches at least 3 bytes.
#[inline]
fn find_match(input: &[u8], p: usize, table: &mut [u32; HASH_SIZE]) -> Option<(usize, usize)> {
    if p + MIN_MATCH > input.len() {
        return None;
    }
    let h = hash3(input, p);
    // Positions are stored modulo 2^32; the distance is recovered with
    // wrapping arithmetic and every candidate is verified byte by byte.
    let dist = (p as u32).wrapping_sub(table[h]) as usize;
    table[h] = p as u32;
    if dist == 0 || dist > MAX_DISTANCE || dist > p {
        return None;
    }
    let len = match_length(input, p - dist, p);
    (len >= MIN_MATCH).then_some((len, dist))
}

/// Number of equal bytes at `a` and `b` (`a < b`), up to the end of the
/// input and at most [`MAX_MATCH`].
#[inline]
fn match_length(input: &[u8], a: usize, b: usize) -> usize {
    let limit = (input.len() - b).min(MAX_MATCH);
    let mut k = 0;
    while k + 8 <= limit {
        let x = read_u64(input, a + k);
        let y = read_u64(input, b + k);
        let diff = x ^ y;
        if diff != 0 {
            return k + (diff.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    while k < limit && input[a + k] == input[b + k] {
        k += 1;
    }
    k
}

#[inline(always)]
fn read_u64(input: &[u8], p: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&input[p..p + 8]);
    u64::from_le_bytes(b)
}

/// Output state: the flag word being filled and where it goes.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    flags: u32,
    count: u32,
    /// Offset in `out` reserved for the current flag word.
    slot: usize,
    /// Offset in `out` of a length byte whose high half is still free.
    nibble_at: Option<usize>,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        let slot = out.len();
        out.extend_from_slice(&[0; 4]);
        Writer {
            out,
            flags: 0,
            count: 0,
            slot,
            nibble_at: None,
        }
    }

    #[inline]
    fn flag(&mut self, bit: u32) {
        self.flags = self.flags << 1 | bit;
        self.count += 1;
        if self.count == 32 {
            self.out[self.slot..self.slot + 4].copy_from_slice(&self.flags.to_le_bytes());
            self.slot = self.out.len();
            self.out.extend_from_slice(&[0; 4]);
            self.flags = 0;
            self.count = 0;
        }
    }

    #[inline]
    fn literal(&mut self, b: u8) {
        self.out.push(b);
        self.flag(0);
    }

    fn matched(&mut self, len: usize, dist: usize) {
        debug_assert!((MIN_MATCH..=MAX_MATCH).contains(&len));
        debug_assert!((1..=MAX_DISTANCE).contains(&dist));
        let code = ((dist - 1) << 3) as u16;
        let extra = len - MIN_MATCH;
        if extra < 7 {
            self.out
                .extend_from_slice(&(code | extra as u16).to_le_bytes());
        } else {
            self.out.extend_from_slice(&(code | 7).to_le_bytes());
            let rest = extra - 7;
            let half = rest.min(15) as u8;
            match self.nibble_at.take() {
                Some(at) => self.out[at] |= half << 4,
                None => {
                    self.nibble_at = Some(self.out.len());
                    self.out.push(half);
                }
            }
            if rest >= 15 {
                let rest = rest - 15;
                if rest < 255 {
                    self.out.push(rest as u8);
                } else {
                    self.out.push(255);
                    // The escaped value is the whole length minus 3.
                    match u16::try_from(extra) {
                        Ok(v) => self.out.extend_from_slice(&v.to_le_bytes()),
                        Err(_) => {
                            self.out.extend_from_slice(&0u16.to_le_bytes());
                            self.out.extend_from_slice(&(extra as u32).to_le_bytes());
                        }
                    }
                }
            }
        }
        self.flag(1);
    }

    /// Fills the unused flag bits with ones (the end mark: a match flag
    /// with no input left) and writes the last flag word.
    fn finish(self) {
        let free = 32 - self.count; // 1..=32: a full word is flushed at once
        let flags = self.flags.checked_shl(free).unwrap_or(0) | (u32::MAX >> self.count);
        self.out[self.slot..self.slot + 4].copy_from_slice(&flags.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_one_flag_word() {
        let mut out = Vec::new();
        compress(&[], &mut out);
        assert_eq!(out, [0xFF; 4]);
    }

    #[test]
    fn incompressible_input_meets_the_bound() {
        for n in [1usize, 31, 32, 33, 64, 4096] {
            let input: Vec<u8> = (0..n as u32)
                .map(|i| (i.wrapping_mul(0x9E37_79B1) >> 24) as u8)
                .collect();
            let mut out = Vec::new();
            compress(&input, &mut out);
            assert!(out.len() <= max_compressed_len(n));
            let mut back = vec![0u8; n];
            crate::decode::decompress_into(&out, &mut back).unwrap();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn match_length_stops_at_difference_and_end() {
        let v = b"abcdefghijabcdefghiX";
        assert_eq!(match_length(v, 0, 10), 9);
        let w = [5u8; 30];
        assert_eq!(match_length(&w, 0, 1), 29);
    }

    #[test]
    fn thirty_two_items_then_end_mark() {
        // 32 literals fill a flag word exactly; a new word holds the end mark.
        let input: Vec<u8> = (0..32u8).collect();
        let mut out = Vec::new();
        compress(&input, &mut out);
        assert_eq!(out.len(), 4 + 32 + 4);
        assert_eq!(out[..4], [0; 4]);
        assert_eq!(out[36..], [0xFF; 4]);
    }
}
