//! Where a dump stores its pages: the run list of `PhysicalMemoryBlock`, the bitmap
//! summary and bitmap of bitmap dumps, and the lookup of a PFN's file offset from them.
//!
//! Every count and offset read here is checked against the input length and file size.

use crate::bitmap::RankIndex;
use crate::consts::{
    DUMP_FULL_SIGNATURE, DUMP_SUMMARY_SIGNATURE, DUMP_SUMMARY_VALID, DUMP_TYPE_BITMAP_FULL,
    DUMP_TYPE_BITMAP_KERNEL, DUMP_TYPE_FULL, PAGE_SHIFT, PAGE_SIZE,
};
use crate::error::DumpError;
use crate::layout::MemoryRun;
use crate::le::{u32_at, u64_at};
use crate::structs::BitmapSummaryHeader;

/// First PFN whose byte address would not fit in 64 bits.
const PFN_ADDRESS_LIMIT: u64 = 1 << (64 - PAGE_SHIFT);

/// Most bits of a bitmap read: RAM up to 16 TiB (a 512 MiB bitmap, held while the dump is
/// open). The file size alone is no bound: a sparse file holds any bitmap in a few blocks.
pub(super) const MAX_BITMAP_PAGES: u64 = 1 << 32;

/// Highest `DumpType` with a known meaning: the SDK's 1..=7 (0 is "unknown"), and 8..=0xA (kernel, kernel and
/// user, complete memory) of newer systems as kdmp-parser lists them.
const LAST_KNOWN_DUMP_TYPE: u32 = 0xA;

/// Offset of `PhysicalMemoryBlock` in `DUMP_HEADER64` / `DUMP_HEADER32`.
const PMB64: u64 = 0x088;
const PMB32: u64 = 0x064;
/// Offset of `ContextRecord`: run entries may use the bytes up to it (43 runs fit on
/// x64 when the 4 padding bytes at 0x344 are included, as some readers do).
pub(super) const CTX64: u64 = 0x348;
pub(super) const CTX32: u64 = 0x320;

/// Bitmap summary of a bitmap dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitmapInfo {
    /// `'FDMP'` or `'SDMP'`.
    pub signature: u32,
    /// `FirstPage`: file offset of the first present page.
    pub first_page: u64,
    /// `TotalPresentPages` as written in the header.
    pub total_present_pages: u64,
    /// `Pages`: number of bits in the bitmap.
    pub pages: u64,
    /// Set bits actually counted in the bitmap (what the reader uses).
    pub present_count: u64,
}

/// Where the stored pages of a dump are in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PageMap {
    /// Runs sorted by base page, each with the index of its first stored page.
    Full {
        sorted: Vec<(MemoryRun, u64)>,
        data_offset: u64,
        total: u64,
    },
    Bitmap {
        first_page: u64,
        index: RankIndex,
    },
    /// A dump type whose physical memory is not read (triage, summary, header only, ...).
    None,
}

impl PageMap {
    /// False for a dump type whose physical memory is not read.
    pub(super) fn has_page_data(&self) -> bool {
        !matches!(self, PageMap::None)
    }

    /// File offset of the first stored page.
    pub(super) fn data_offset(&self) -> u64 {
        match self {
            PageMap::Full { data_offset, .. } => *data_offset,
            PageMap::Bitmap { first_page, .. } => *first_page,
            PageMap::None => 0,
        }
    }

    /// Number of stored pages.
    pub(super) fn present_page_count(&self) -> u64 {
        match self {
            PageMap::Full { total, .. } => *total,
            PageMap::Bitmap { index, .. } => index.ones(),
            PageMap::None => 0,
        }
    }

    /// File offset of page `pfn`, or `None` if the dump does not contain it.
    pub(super) fn page_file_offset(&self, pfn: u64) -> Option<u64> {
        match self {
            PageMap::Full {
                sorted,
                data_offset,
                ..
            } => {
                let i = sorted
                    .partition_point(|(r, _)| r.base_page <= pfn)
                    .checked_sub(1)?;
                let (run, first) = sorted.get(i)?;
                if !run.contains(pfn) {
                    return None;
                }
                // Bounded by the file size at parse time, so no overflow.
                Some(data_offset + (first + (pfn - run.base_page)) * PAGE_SIZE)
            }
            PageMap::Bitmap { first_page, index } => index
                .get(pfn)
                .then(|| first_page + index.rank(pfn) * PAGE_SIZE),
            PageMap::None => None,
        }
    }

    /// File offset of page `pfn` when pages `pfn..pfn + count` are all stored, one after
    /// another in the file; `None` otherwise.
    pub(super) fn stored_run(&self, pfn: u64, count: u64) -> Option<u64> {
        let last = pfn.checked_add(count.checked_sub(1)?)?;
        let first_off = self.page_file_offset(pfn)?;
        match self {
            // Pages of one run are stored in order; runs may be stored in any order, so the
            // pages must share a run.
            PageMap::Full { sorted, .. } => {
                let i = sorted
                    .partition_point(|(r, _)| r.base_page <= pfn)
                    .checked_sub(1)?;
                let (run, _) = sorted.get(i)?;
                run.contains(last).then_some(first_off)
            }
            // Present pages are stored in PFN order: `count` set bits from `pfn` to `last`
            // means every bit between is set.
            PageMap::Bitmap { index, .. } => (index.get(last)
                && index.rank(last) - index.rank(pfn) == count - 1)
                .then_some(first_off),
            PageMap::None => None,
        }
    }

    /// Stored PFNs in ascending order.
    pub(super) fn present_pfns(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match self {
            PageMap::Full { sorted, .. } => Box::new(
                sorted
                    .iter()
                    .flat_map(|(r, _)| r.base_page..r.base_page + r.page_count),
            ),
            PageMap::Bitmap { index, .. } => Box::new(index.iter_ones()),
            PageMap::None => Box::new(std::iter::empty()),
        }
    }
}

/// A [`DumpError::Truncated`] for `needed` bytes of `structure` at `offset` in an input of
/// `len` bytes.
pub(super) fn truncated(
    structure: &'static str,
    offset: u64,
    needed: u64,
    len: usize,
) -> DumpError {
    DumpError::Truncated {
        structure,
        offset,
        needed,
        available: (len as u64).saturating_sub(offset),
    }
}

/// Layout of a `PHYSICAL_MEMORY_DESCRIPTOR` in the header.
#[derive(Clone, Copy)]
pub(super) enum RunFormat {
    X64,
    X86,
}

impl RunFormat {
    fn structure(self) -> &'static str {
        match self {
            RunFormat::X64 => "PHYSICAL_MEMORY_DESCRIPTOR64",
            RunFormat::X86 => "PHYSICAL_MEMORY_DESCRIPTOR32",
        }
    }
    /// (descriptor offset, head size, run size, end of the usable area).
    fn geometry(self) -> (u64, u64, u64, u64) {
        match self {
            RunFormat::X64 => (PMB64, 0x10, 0x10, CTX64),
            RunFormat::X86 => (PMB32, 0x8, 0x8, CTX32),
        }
    }
    fn max_runs(self) -> u64 {
        let (base, head, run, end) = self.geometry();
        (end - base - head) / run
    }
}

/// Reads the run list. `strict`: errors for an unusable list (full dumps); otherwise an
/// unusable list reads as empty.
pub(super) fn parse_runs(
    bytes: &[u8],
    fmt: RunFormat,
    strict: bool,
) -> Result<Vec<MemoryRun>, DumpError> {
    match parse_runs_strict(bytes, fmt) {
        Ok(r) => Ok(r),
        Err(e) if strict => Err(e),
        Err(_) => Ok(Vec::new()),
    }
}

fn parse_runs_strict(bytes: &[u8], fmt: RunFormat) -> Result<Vec<MemoryRun>, DumpError> {
    let structure = fmt.structure();
    let (base, head, run_size, _) = fmt.geometry();
    let max = fmt.max_runs();
    let count = u64::from(
        u32_at(bytes, base as usize)
            .ok_or_else(|| truncated(structure, base, head, bytes.len()))?,
    );
    if count > max {
        return Err(DumpError::TooManyRuns {
            structure,
            offset: base,
            count,
            max,
        });
    }
    let mut runs = Vec::with_capacity(count as usize);
    for i in 0..count {
        let off = base + head + i * run_size;
        let (b, c) = match fmt {
            RunFormat::X64 => (u64_at(bytes, off as usize), u64_at(bytes, off as usize + 8)),
            RunFormat::X86 => (
                u32_at(bytes, off as usize).map(u64::from),
                u32_at(bytes, off as usize + 4).map(u64::from),
            ),
        };
        let (Some(base_page), Some(page_count)) = (b, c) else {
            return Err(truncated(structure, off, run_size, bytes.len()));
        };
        match base_page.checked_add(page_count) {
            Some(end) if end <= PFN_ADDRESS_LIMIT => {}
            _ => {
                return Err(DumpError::Overflow {
                    structure,
                    offset: off,
                    what: "run end address",
                })
            }
        }
        runs.push(MemoryRun::new(base_page, page_count));
    }
    Ok(runs)
}

pub(super) type PageMapResult = (PageMap, Option<BitmapInfo>);

/// Maps the stored pages of a dump of `dump_type` (full: from `runs`; bitmap: from the
/// summary and bitmap after the header). Any other documented type maps no pages.
pub(super) fn build_page_map(
    bytes: &[u8],
    file_size: u64,
    dump_type: u32,
    header_size: u64,
    runs: &[MemoryRun],
    fmt: RunFormat,
) -> Result<PageMapResult, DumpError> {
    if !matches!(
        dump_type,
        DUMP_TYPE_FULL | DUMP_TYPE_BITMAP_FULL | DUMP_TYPE_BITMAP_KERNEL
    ) {
        // The header of a documented type is still worth reading; any other value means
        // this is not a dump header at all (e.g. a 64-bit header labelled 'DUMP').
        return if (1..=LAST_KNOWN_DUMP_TYPE).contains(&dump_type) {
            Ok((PageMap::None, None))
        } else {
            Err(DumpError::UnsupportedDumpType(dump_type))
        };
    }
    if dump_type == DUMP_TYPE_FULL {
        let structure = fmt.structure();
        let (base, head, run_size, _) = fmt.geometry();
        let mut sorted = Vec::with_capacity(runs.len());
        let mut total = 0u64;
        for (i, r) in runs.iter().enumerate() {
            if r.page_count > 0 {
                sorted.push((*r, total, base + head + i as u64 * run_size));
            }
            total = total.checked_add(r.page_count).ok_or(DumpError::Overflow {
                structure,
                offset: base,
                what: "total page count",
            })?;
        }
        let end = total
            .checked_mul(PAGE_SIZE)
            .and_then(|b| b.checked_add(header_size))
            .ok_or(DumpError::Overflow {
                structure,
                offset: base,
                what: "page data size",
            })?;
        if end > file_size {
            return Err(DumpError::DataPastEnd {
                structure,
                offset: base,
                end,
                file_size,
            });
        }
        sorted.sort_unstable_by_key(|(r, _, _)| r.base_page);
        for w in sorted.windows(2) {
            if let [(a, _, _), (b, _, off)] = w {
                if a.base_page + a.page_count > b.base_page {
                    return Err(DumpError::OverlappingRuns {
                        structure,
                        offset: *off,
                        pfn: b.base_page,
                    });
                }
            }
        }
        let sorted = sorted.into_iter().map(|(r, first, _)| (r, first)).collect();
        return Ok((
            PageMap::Full {
                sorted,
                data_offset: header_size,
                total,
            },
            None,
        ));
    }

    // Bitmap dump.
    const STRUCTURE: &str = "bitmap summary header";
    let tail = bytes.get(header_size as usize..).unwrap_or(&[]);
    let s = BitmapSummaryHeader::parse(tail, header_size)?;
    if s.signature != DUMP_FULL_SIGNATURE && s.signature != DUMP_SUMMARY_SIGNATURE {
        return Err(DumpError::BadSignature {
            structure: STRUCTURE,
            offset: header_size,
            found: s.signature,
            expected: "'FDMP' or 'SDMP'",
        });
    }
    if s.valid_dump != DUMP_SUMMARY_VALID {
        return Err(DumpError::BadSignature {
            structure: STRUCTURE,
            offset: header_size + 4,
            found: s.valid_dump,
            expected: "'DUMP'",
        });
    }
    if s.pages > MAX_BITMAP_PAGES {
        return Err(DumpError::Overflow {
            structure: STRUCTURE,
            offset: header_size + 0x30,
            what: "Pages (bitmap bit count): RAM beyond 16 TiB is not read",
        });
    }
    let bitmap_offset = header_size + BitmapSummaryHeader::SIZE as u64;
    let nbytes = s.pages.div_ceil(8);
    let bitmap = usize::try_from(bitmap_offset)
        .ok()
        .zip(usize::try_from(nbytes).ok())
        .and_then(|(start, n)| bytes.get(start..start.checked_add(n)?))
        .ok_or_else(|| truncated("page bitmap", bitmap_offset, nbytes, bytes.len()))?;
    let header_end = bitmap_offset + nbytes;
    if s.first_page < header_end {
        return Err(DumpError::PagesOverlapHeader {
            structure: STRUCTURE,
            offset: header_size + 0x20,
            first_page: s.first_page,
            header_end,
        });
    }
    let words: Vec<u64> = bitmap
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            for (d, s) in w.iter_mut().zip(c) {
                *d = *s;
            }
            u64::from_le_bytes(w)
        })
        .collect();
    let index = RankIndex::new(words, s.pages);
    let end = index
        .ones()
        .checked_mul(PAGE_SIZE)
        .and_then(|b| b.checked_add(s.first_page))
        .ok_or(DumpError::Overflow {
            structure: STRUCTURE,
            offset: header_size + 0x20,
            what: "FirstPage + present pages",
        })?;
    if end > file_size {
        return Err(DumpError::DataPastEnd {
            structure: STRUCTURE,
            offset: header_size + 0x20,
            end,
            file_size,
        });
    }
    let info = BitmapInfo {
        signature: s.signature,
        first_page: s.first_page,
        total_present_pages: s.total_present_pages,
        pages: s.pages,
        present_count: index.ones(),
    };
    Ok((
        PageMap::Bitmap {
            first_page: s.first_page,
            index,
        },
        Some(info),
    ))
}
