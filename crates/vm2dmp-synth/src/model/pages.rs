//! Page contents: the [`PageSource`] trait and its ready-made sources.

use std::collections::BTreeMap;

/// Bytes in a guest page.
pub const PAGE_SIZE: u64 = 4096;

/// Supplies the contents of guest pages. Called once for every page that is written,
/// possibly from several threads at once.
pub trait PageSource: Send + Sync {
    /// Fill `buf` with the contents of guest-physical page `gpa_page`.
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]);
}

impl<F> PageSource for F
where
    F: Fn(u64, &mut [u8; 4096]) + Send + Sync,
{
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        self(gpa_page, buf)
    }
}

/// Every page is zero.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroPages;

impl PageSource for ZeroPages {
    fn read_page(&self, _gpa_page: u64, buf: &mut [u8; 4096]) {
        buf.fill(0);
    }
}

/// A flat image of guest-physical memory starting at GPA 0; pages beyond its end read as zero.
#[derive(Debug, Clone, Default)]
pub struct FlatImage {
    /// Guest-physical bytes from GPA 0.
    pub bytes: Vec<u8>,
}

impl FlatImage {
    /// An image of `bytes` (any length; a partial last page is zero-filled).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }
}

impl PageSource for FlatImage {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        buf.fill(0);
        let start = gpa_page.saturating_mul(PAGE_SIZE);
        if start < self.bytes.len() as u64 {
            let start = start as usize;
            let end = (start + 4096).min(self.bytes.len());
            buf[..end - start].copy_from_slice(&self.bytes[start..end]);
        }
    }
}

/// A few explicit pages (by guest page number); every other page is zero.
#[derive(Clone, Default)]
pub struct SparsePages {
    /// Page contents by guest-physical page number (GPA / 4096).
    pub pages: BTreeMap<u64, Box<[u8; 4096]>>,
}

impl std::fmt::Debug for SparsePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparsePages")
            .field("pages", &self.pages.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SparsePages {
    /// No explicit pages: every page reads as zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the whole page `gpa_page`.
    pub fn set_page(&mut self, gpa_page: u64, data: [u8; 4096]) -> &mut Self {
        self.pages.insert(gpa_page, Box::new(data));
        self
    }

    /// Write `data` at guest-physical address `gpa` (may cross pages).
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> &mut Self {
        let mut done = 0usize;
        while done < data.len() {
            let addr = gpa + done as u64;
            let page = addr / PAGE_SIZE;
            let off = (addr % PAGE_SIZE) as usize;
            let n = (4096 - off).min(data.len() - done);
            let p = self
                .pages
                .entry(page)
                .or_insert_with(|| Box::new([0u8; 4096]));
            p[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self
    }

    /// Fill page `gpa_page` with an 8-byte pattern repeated.
    pub fn fill_pattern(&mut self, gpa_page: u64, pattern: u64) -> &mut Self {
        let mut p = [0u8; 4096];
        for c in p.chunks_exact_mut(8) {
            c.copy_from_slice(&pattern.to_le_bytes());
        }
        self.set_page(gpa_page, p)
    }
}

impl PageSource for SparsePages {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        match self.pages.get(&gpa_page) {
            Some(p) => buf.copy_from_slice(&p[..]),
            None => buf.fill(0),
        }
    }
}

/// Deterministic pseudo-random page contents mixing zero pages, pattern pages,
/// compressible text-like pages and incompressible noise (useful for benchmarks).
#[derive(Debug, Clone, Copy)]
pub struct MixedContent {
    /// Seed of the generator; the same seed gives the same contents for every page.
    pub seed: u64,
}

impl MixedContent {
    fn mix(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

impl PageSource for MixedContent {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        let h = Self::mix(gpa_page ^ self.seed.rotate_left(17));
        match h % 8 {
            0..=3 => buf.fill(0),
            4 => {
                let pat = Self::mix(h) | 1;
                for c in buf.chunks_exact_mut(8) {
                    c.copy_from_slice(&pat.to_le_bytes());
                }
            }
            5 | 6 => {
                // Compressible: repeated words with a page-specific header.
                let words: [&[u8]; 6] = [
                    b"nt!KiSystemStartup ",
                    b"PAGE_SIZE ",
                    b"0123456789abcdef",
                    b"\0\0\0\0\xff\xff",
                    b"MmPfnDatabase ",
                    b"KDBG",
                ];
                let mut s = h;
                let mut i = 0;
                while i < 4096 {
                    s = Self::mix(s);
                    let w = words[(s % 6) as usize];
                    let n = w.len().min(4096 - i);
                    buf[i..i + n].copy_from_slice(&w[..n]);
                    i += n;
                }
                buf[..8].copy_from_slice(&gpa_page.to_le_bytes());
            }
            _ => {
                let mut s = h;
                for c in buf.chunks_exact_mut(8) {
                    s = Self::mix(s.wrapping_add(0x9e37_79b9_7f4a_7c15));
                    c.copy_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
}
