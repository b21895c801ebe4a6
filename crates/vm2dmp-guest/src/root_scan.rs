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

/// Scans guest RAM for page-table roots of `paging` that map kernel space: a table whose
/// kernel half has a self-map entry (32-bit, x64) or a PDPT whose page directories map
/// themselves (PAE), then [`check_dtb`]. Returns at most 8 roots, lowest address first,
/// from the first 8 GiB of guest RAM.
pub fn scan_for_dtbs(state: &dyn MemorySource, paging: Paging) -> Vec<Dtb> {
    use rayon::prelude::*;
    // Candidates are gathered from the first MAX_SCAN_PAGES guest pages in address order, with
    // blocks decoded in parallel (decoding is the cost), then checked in address order.
    let mut spans: Vec<(u64, usize, ChunkSpan)> = (0..state.chunk_count())
        .flat_map(|n| {
            state
                .chunk_spans(n)
                .into_iter()
                .map(move |s| (s.gpa_page, n, s))
        })
        .collect();
    spans.sort_unstable_by_key(|s| s.0);
    let mut budget = MAX_SCAN_PAGES;
    spans.retain_mut(|(_, _, span)| {
        if budget == 0 {
            return false;
        }
        let take = (span.pages as u64).min(budget);
        span.pages = take as usize;
        budget -= take;
        true
    });
    let mut blocks: Vec<usize> = spans.iter().map(|s| s.1).collect();
    blocks.sort_unstable();
    blocks.dedup();
    let mut cands: Vec<u64> = blocks
        .par_iter()
        .map_init(
            || vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE],
            |buf, &n| {
                let mut out = Vec::new();
                if state.decode_chunk(n, buf).is_err() {
                    return out;
                }
                for (_, _, span) in spans.iter().filter(|s| s.1 == n) {
                    for i in 0..span.pages {
                        let p = (span.page_in_chunk + i) * 4096;
                        page_candidates(
                            &buf[p..p + 4096],
                            (span.gpa_page + i as u64) << 12,
                            paging,
                            &mut out,
                        );
                    }
                }
                // Bounded: a block of PAE-like garbage could otherwise offer 32K candidates.
                out.truncate(MAX_CANDIDATES_PER_BLOCK);
                out
            },
        )
        .flatten()
        .collect();
    cands.sort_unstable();
    let src = SourceMem(state);
    let mem = CachedMem::new(&src);
    let mut found = Vec::new();
    for root in cands {
        if found.len() >= MAX_SCAN_CANDIDATES {
            break;
        }
        let dtb = Dtb { paging, root };
        if check_dtb(&mem, dtb).valid && (paging != Paging::Pae || pae_self_map(&mem, root)) {
            found.push(dtb);
        }
    }
    found
}

/// Roots of page tables that page `bytes` (at `gpa`) could be: a top-level table that maps
/// itself (x64, 32-bit) or PAE page-directory-pointer tables (any 32-byte slot).
fn page_candidates(bytes: &[u8], gpa: u64, paging: Paging, out: &mut Vec<u64>) {
    match paging {
        Paging::Long4 | Paging::Long5 => {
            let self_ref = (256..512)
                .any(|i| le::u64(bytes, i * 8).is_some_and(|e| e & 3 == 3 && e & ADDR_MASK == gpa));
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
