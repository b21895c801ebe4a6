//! Page bit sets: [`PageBitmap`] (built concurrently by the converter) and the frozen,
//! rank-indexed form used to locate pages in a bitmap dump.

use std::sync::atomic::{AtomicU64, Ordering};

/// Words per rank block: one prefix count per 512 bits.
const BLOCK_WORDS: usize = 8;

/// A fixed-size set of PFNs `0..limit`. All mutating methods take `&self` and use
/// atomic word operations, so any number of threads may mark pages at the same time
/// (e.g. from rayon workers); read the result after the workers have joined.
#[derive(Debug, Default)]
pub struct PageBitmap {
    words: Vec<AtomicU64>,
    limit: u64,
}

impl Clone for PageBitmap {
    fn clone(&self) -> Self {
        Self {
            words: self
                .words
                .iter()
                .map(|w| AtomicU64::new(w.load(Ordering::Relaxed)))
                .collect(),
            limit: self.limit,
        }
    }
}

impl PartialEq for PageBitmap {
    fn eq(&self, other: &Self) -> bool {
        self.limit == other.limit
            && self
                .words
                .iter()
                .zip(&other.words)
                .all(|(a, b)| a.load(Ordering::Relaxed) == b.load(Ordering::Relaxed))
    }
}

impl Eq for PageBitmap {}

impl PageBitmap {
    /// An empty set able to hold PFNs `0..limit` (uses `limit / 8` bytes).
    pub fn new(limit: u64) -> Self {
        let words = usize::try_from(limit.div_ceil(64)).unwrap_or(usize::MAX);
        Self {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            limit,
        }
    }

    /// A set holding PFNs `0..limit` with the given members; PFNs `>= limit` are ignored.
    pub fn from_pfns(limit: u64, pfns: impl IntoIterator<Item = u64>) -> Self {
        let b = Self::new(limit);
        for pfn in pfns {
            b.set(pfn);
        }
        b
    }

    /// One past the largest PFN the set can hold.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn word(&self, pfn: u64) -> Option<&AtomicU64> {
        if pfn >= self.limit {
            return None;
        }
        self.words.get(usize::try_from(pfn / 64).ok()?)
    }

    /// Adds `pfn`. Returns `false` (and changes nothing) if `pfn >= limit`.
    pub fn set(&self, pfn: u64) -> bool {
        match self.word(pfn) {
            Some(w) => {
                w.fetch_or(1 << (pfn % 64), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Removes `pfn`. Returns `false` if `pfn >= limit`.
    pub fn clear(&self, pfn: u64) -> bool {
        match self.word(pfn) {
            Some(w) => {
                w.fetch_and(!(1 << (pfn % 64)), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Adds `first..first + count` a word at a time. Returns `false` (and changes
    /// nothing) if the range does not fit below `limit`.
    pub fn set_range(&self, first: u64, count: u64) -> bool {
        let Some(end) = first.checked_add(count) else {
            return false;
        };
        if end > self.limit {
            return false;
        }
        let mut pfn = first;
        while pfn < end {
            let bit = pfn % 64;
            let n = (64 - bit).min(end - pfn);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            if let Some(w) = self.word(pfn) {
                w.fetch_or(mask, Ordering::Relaxed);
            }
            pfn += n;
        }
        true
    }

    /// Whether `pfn` is in the set (`false` for `pfn >= limit`).
    pub fn get(&self, pfn: u64) -> bool {
        self.word(pfn)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (pfn % 64)) != 0)
    }

    /// Number of PFNs in the set.
    pub fn count(&self) -> u64 {
        self.words
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| w.load(Ordering::Relaxed) == 0)
    }

    /// Adds every member of `other` that is below this set's limit (e.g. to merge
    /// per-thread sets).
    pub fn union_with(&self, other: &PageBitmap) {
        let limit = self.limit.min(other.limit);
        for (i, (dst, src)) in self.words.iter().zip(&other.words).enumerate() {
            let mut v = src.load(Ordering::Relaxed);
            let first = (i as u64) * 64;
            if first + 64 > limit {
                let keep = limit.saturating_sub(first);
                v &= if keep >= 64 {
                    u64::MAX
                } else {
                    (1u64 << keep) - 1
                };
            }
            if v != 0 {
                dst.fetch_or(v, Ordering::Relaxed);
            }
        }
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, w)| BitIter {
            word: w.load(Ordering::Relaxed),
            base: i as u64 * 64,
        })
    }

    /// Consumes the set into plain words (bit `n` = word `n / 64`, bit `n % 64`).
    pub(crate) fn into_words(self) -> Vec<u64> {
        self.words.into_iter().map(AtomicU64::into_inner).collect()
    }
}

/// Iterates the set bits of one word.
struct BitIter {
    word: u64,
    base: u64,
}

impl Iterator for BitIter {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.word == 0 {
            return None;
        }
        let tz = self.word.trailing_zeros();
        self.word &= self.word - 1;
        Some(self.base + u64::from(tz))
    }
}

/// A frozen bit set of `bits` bits with a rank table: one cumulative count per block of
/// 512 bits, so `rank` costs at most eight popcounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RankIndex {
    words: Vec<u64>,
    block_ranks: Vec<u64>,
    bits: u64,
    ones: u64,
}

impl RankIndex {
    /// Builds the index over `bits` bits of `words`; missing words read as zero and
    /// bits at or beyond `bits` are cleared.
    pub(crate) fn new(mut words: Vec<u64>, bits: u64) -> Self {
        let nwords = usize::try_from(bits.div_ceil(64)).unwrap_or(usize::MAX);
        words.resize(nwords, 0);
        if bits % 64 != 0 {
            if let Some(last) = words.last_mut() {
                *last &= (1u64 << (bits % 64)) - 1;
            }
        }
        let mut block_ranks = Vec::with_capacity(words.len().div_ceil(BLOCK_WORDS));
        let mut acc = 0u64;
        for block in words.chunks(BLOCK_WORDS) {
            block_ranks.push(acc);
            acc += block.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }
        Self {
            words,
            block_ranks,
            bits,
            ones: acc,
        }
    }

    /// Number of bits.
    pub(crate) fn bits(&self) -> u64 {
        self.bits
    }

    /// Number of set bits.
    pub(crate) fn ones(&self) -> u64 {
        self.ones
    }

    /// The words (bits beyond `bits` are zero).
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether bit `n` is set.
    pub(crate) fn get(&self, n: u64) -> bool {
        if n >= self.bits {
            return false;
        }
        usize::try_from(n / 64)
            .ok()
            .and_then(|i| self.words.get(i))
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    /// Number of set bits below `n` (`n` is clamped to `bits`).
    pub(crate) fn rank(&self, n: u64) -> u64 {
        let n = n.min(self.bits);
        let Ok(word_idx) = usize::try_from(n / 64) else {
            return self.ones;
        };
        let block = word_idx / BLOCK_WORDS;
        let mut r = self.block_ranks.get(block).copied().unwrap_or(self.ones);
        let start = block * BLOCK_WORDS;
        if let Some(ws) = self.words.get(start..word_idx) {
            r += ws.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }
        if n % 64 != 0 {
            if let Some(w) = self.words.get(word_idx) {
                r += u64::from((w & ((1u64 << (n % 64)) - 1)).count_ones());
            }
        }
        r
    }

    /// Set bits in ascending order.
    pub(crate) fn iter_ones(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| BitIter {
            word: w,
            base: i as u64 * 64,
        })
    }

    /// Maximal runs of set bits, as `(first, count)`, ascending.
    pub(crate) fn spans(&self) -> SpanIter<'_> {
        SpanIter {
            words: &self.words,
            pos: 0,
            bits: self.bits,
        }
    }

    /// First set bit in `start..end`, if any.
    pub(crate) fn first_one_in(&self, start: u64, end: u64) -> Option<u64> {
        first_one_in(&self.words, start, end.min(self.bits))
    }
}

/// First set bit of `words` in `start..end`, if any (bits past the words are zero).
pub(crate) fn first_one_in(words: &[u64], start: u64, end: u64) -> Option<u64> {
    let mut n = start;
    while n < end {
        let w = *words.get(usize::try_from(n / 64).ok()?)? >> (n % 64);
        if w != 0 {
            let hit = n + u64::from(w.trailing_zeros());
            return (hit < end).then_some(hit);
        }
        n = (n / 64 + 1) * 64;
    }
    None
}

/// Iterator over maximal runs of set bits.
pub(crate) struct SpanIter<'a> {
    words: &'a [u64],
    pos: u64,
    bits: u64,
}

impl SpanIter<'_> {
    fn word_from(&self, n: u64) -> u64 {
        usize::try_from(n / 64)
            .ok()
            .and_then(|i| self.words.get(i))
            .map_or(0, |w| w >> (n % 64))
    }
}

impl Iterator for SpanIter<'_> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        // Skip zeros.
        while self.pos < self.bits {
            let w = self.word_from(self.pos);
            if w != 0 {
                self.pos += u64::from(w.trailing_zeros());
                break;
            }
            self.pos = (self.pos / 64 + 1) * 64;
        }
        if self.pos >= self.bits {
            return None;
        }
        let first = self.pos;
        // Count ones; `word_from` shifts zeros in from the top, so a count never
        // crosses the current word.
        while self.pos < self.bits {
            let avail = 64 - self.pos % 64;
            let ones = u64::from((!self.word_from(self.pos)).trailing_zeros()).min(avail);
            self.pos += ones;
            if ones < avail {
                break;
            }
        }
        let end = self.pos.min(self.bits);
        self.pos = end;
        Some((first, end - first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count() {
        let b = PageBitmap::new(130);
        assert!(b.set(0) && b.set(64) && b.set(129));
        assert!(!b.set(130));
        assert!(b.get(64) && !b.get(65) && !b.get(1000));
        assert_eq!(b.count(), 3);
        assert!(b.clear(64));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 129]);
    }

    #[test]
    fn set_range_spans_words() {
        let b = PageBitmap::new(300);
        assert!(b.set_range(60, 140));
        assert!(!b.set_range(290, 11));
        assert!(!b.set_range(u64::MAX, 2));
        assert_eq!(b.count(), 140);
        assert!(!b.get(59) && b.get(60) && b.get(199) && !b.get(200));
        assert!(b.set_range(0, 300));
        assert_eq!(b.count(), 300);
    }

    #[test]
    fn concurrent_marking() {
        let b = PageBitmap::new(1 << 16);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let b = &b;
                s.spawn(move || {
                    for pfn in (t..1 << 16).step_by(4) {
                        if pfn % 3 == 0 {
                            b.set(pfn);
                        }
                    }
                });
            }
        });
        assert_eq!(
            b.count(),
            (0..1u64 << 16).filter(|p| p % 3 == 0).count() as u64
        );
    }

    #[test]
    fn union_respects_limit() {
        let a = PageBitmap::new(70);
        let b = PageBitmap::from_pfns(200, [1, 69, 70, 150]);
        a.union_with(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![1, 69]);
    }

    #[test]
    fn rank_matches_naive() {
        let pfns: Vec<u64> = (0..5000u64).filter(|p| (p * 7919) % 11 < 4).collect();
        let b = PageBitmap::from_pfns(5000, pfns.iter().copied());
        let idx = RankIndex::new(b.into_words(), 5000);
        assert_eq!(idx.ones(), pfns.len() as u64);
        for n in [0, 1, 63, 64, 65, 511, 512, 513, 1024, 4999, 5000, 9999] {
            let naive = pfns.iter().filter(|&&p| p < n).count() as u64;
            assert_eq!(idx.rank(n), naive, "rank({n})");
        }
        assert_eq!(idx.iter_ones().collect::<Vec<_>>(), pfns);
    }

    #[test]
    fn spans_are_maximal() {
        let mut expect = vec![(3u64, 1u64), (63, 2), (100, 200), (511, 1), (600, 64)];
        let b = PageBitmap::new(700);
        for &(f, c) in &expect {
            b.set_range(f, c);
        }
        let idx = RankIndex::new(b.into_words(), 700);
        assert_eq!(idx.spans().collect::<Vec<_>>(), expect);
        let full = PageBitmap::new(128);
        full.set_range(0, 128);
        let idx = RankIndex::new(full.into_words(), 100);
        assert_eq!(idx.spans().collect::<Vec<_>>(), vec![(0, 100)]);
        expect.clear();
        let idx = RankIndex::new(vec![], 0);
        assert_eq!(idx.spans().count(), 0);
    }

    #[test]
    fn first_one_in_ranges() {
        let idx = RankIndex::new(PageBitmap::from_pfns(300, [5, 130]).into_words(), 300);
        assert_eq!(idx.first_one_in(0, 5), None);
        assert_eq!(idx.first_one_in(0, 6), Some(5));
        assert_eq!(idx.first_one_in(6, 130), None);
        assert_eq!(idx.first_one_in(6, 300), Some(130));
        assert_eq!(idx.first_one_in(131, 1000), None);
    }
}
