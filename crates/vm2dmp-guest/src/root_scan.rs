//! A scan of guest RAM for page-table roots that map kernel space, for guests whose
//! processors' CR3 values do not lead to the kernel.

use vm2dmp_source::{le, ChunkSpan, MemorySource, MAX_CHUNK_PAGES, PAGE_SIZE};

use crate::translate::{
    check_dtb, pae_self_map, CachedMem, Dtb, Paging, SourceMem, ADDR_MASK, PRESENT,
};

/// Roots kept by a scan.
const MAX_SCAN_CANDIDATES: usize = 8;
/// Candidate roots kept per RAM block during the scan (lowest addresses first).
const MAX_CANDIDATES_PER_BLOCK: usize = 64;
/// Guest RAM looked at by a scan (Windows allocates the System process's tables early, in
/// low memory).
const MAX_SCAN_PAGES: u64 = 8 << 18;

/// A scan of guest RAM for page-table roots of one paging mode that map kernel space: a
/// table whose kernel half has a self-map entry (32-bit, x64) or a PDPT whose page
/// directories map themselves (PAE), checked with [`check_dtb`]. Only the first 8 GiB of guest
/// RAM (in address order) are looked at: Windows allocates the System process's tables early,
/// in low memory.
///
/// The scan looks at chunks as someone else decodes them ([`RootScan::observe`]), so a
/// conversion that decodes every chunk anyway finds the roots in the same pass; [`scan_for_dtbs`]
/// decodes them itself.
#[derive(Debug)]
pub struct RootScan {
    paging: Paging,
    /// Guest pages from this one on are not looked at.
    limit_page: u64,
    candidates: std::sync::Mutex<Vec<u64>>,
}

impl RootScan {
    /// A scan of `state`'s RAM for roots of `paging`.
    pub fn new(state: &dyn MemorySource, paging: Paging) -> Self {
        let mut left = MAX_SCAN_PAGES;
        let mut limit_page = 0;
        for r in state.ram_ranges() {
            let take = r.page_count.min(left);
            limit_page = r.gpa_page_start + take;
            left -= take;
            if left == 0 {
                break;
            }
        }
        Self {
            paging,
            limit_page,
            candidates: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// True when some page of `spans` is one the scan looks at.
    pub fn wants(&self, spans: &[ChunkSpan]) -> bool {
        spans.iter().any(|s| s.gpa_page < self.limit_page)
    }

    /// Looks for candidate roots in a decoded chunk: `data` holds its pages (page `i` at
    /// `i * PAGE_SIZE`), `spans` say where they are in guest memory.
    pub fn observe(&self, data: &[u8], spans: &[ChunkSpan]) {
        let mut out = Vec::new();
        for span in spans {
            for i in 0..span.pages {
                let pfn = span.gpa_page + i as u64;
                if pfn >= self.limit_page {
                    break;
                }
                let p = (span.page_in_chunk + i) * PAGE_SIZE;
                if let Some(page) = data.get(p..p + PAGE_SIZE) {
                    page_candidates(page, pfn << 12, self.paging, &mut out);
                }
            }
        }
        // Bounded: a block of PAE-like garbage could otherwise offer 32K candidates.
        out.truncate(MAX_CANDIDATES_PER_BLOCK);
        if !out.is_empty() {
            self.candidates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(out);
        }
    }

    /// The roots found: at most 8, lowest address first, each mapping kernel space.
    pub fn roots(self, state: &dyn MemorySource) -> Vec<Dtb> {
        let mut cands = self
            .candidates
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        cands.sort_unstable();
        let src = SourceMem(state);
        let mem = CachedMem::new(&src);
        let mut found = Vec::new();
        for root in cands {
            if found.len() >= MAX_SCAN_CANDIDATES {
                break;
            }
            let dtb = Dtb {
                paging: self.paging,
                root,
            };
            if check_dtb(&mem, dtb).valid
                && (self.paging != Paging::Pae || pae_self_map(&mem, root))
            {
                found.push(dtb);
            }
        }
        found
    }
}

/// Scans guest RAM for page-table roots of `paging` that map kernel space ([`RootScan`]),
/// decoding the chunks it looks at in parallel. Returns at most 8 roots, lowest address
/// first, from the first 8 GiB of guest RAM.
pub fn scan_for_dtbs(state: &dyn MemorySource, paging: Paging) -> Vec<Dtb> {
    use rayon::prelude::*;
    let scan = RootScan::new(state, paging);
    (0..state.chunk_count()).into_par_iter().for_each_init(
        || vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE],
        |buf, n| {
            let spans = state.chunk_spans(n);
            if scan.wants(&spans) && state.decode_chunk(n, buf).is_ok() {
                scan.observe(buf, &spans);
            }
        },
    );
    scan.roots(state)
}

/// Roots of page tables that page `bytes` (at `gpa`) could be: a top-level table that maps
/// itself (x64, 32-bit) or PAE page-directory-pointer tables (any 32-byte slot).
fn page_candidates(bytes: &[u8], gpa: u64, paging: Paging, out: &mut Vec<u64>) {
    match paging {
        Paging::Long4 | Paging::Long5 => {
            // The kernel half (entries 256..512), without a branch per entry so that the
            // compiler vectorises it: this runs on every page of the first 8 GiB of RAM.
            let want = gpa | 3;
            let self_ref = bytes.get(2048..4096).is_some_and(|half| {
                half.chunks_exact(8).fold(false, |found, c| {
                    let e = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                    found | (e & (ADDR_MASK | 3) == want)
                })
            });
            if self_ref {
                out.push(gpa);
            }
        }
        Paging::Bit32 => {
            let e = le::u32(bytes, 0x300 * 4).map_or(0, u64::from);
            if e & 3 == 3 && e & 0xFFFF_F000 == gpa {
                out.push(gpa);
            }
        }
        Paging::Pae => {
            if gpa >> 32 != 0 {
                return;
            }
            for slot in 0..128 {
                let pdpte_ok = |i: usize| {
                    le::u64(bytes, slot * 32 + i * 8)
                        .is_some_and(|e| e & PRESENT != 0 && e & 0x1E6 == 0 && e >> 52 == 0)
                };
                if (0..4).all(pdpte_ok) {
                    out.push(gpa + slot as u64 * 32);
                }
            }
        }
    }
}
