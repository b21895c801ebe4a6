//! Writer-side planning: where every part of a dump goes in the file.
//!
//! A [`DumpLayout`] is computed once from the guest's memory runs (and, for bitmap
//! dumps, the set of pages to store). It then answers, without further allocation,
//! the file offset of any page, so that pages can be written in parallel at fixed
//! offsets, and produces the header bytes.
//!
//! The tests are in `layout/tests.rs`, the large-layout ones in `layout/large_tests.rs`.

use crate::bitmap::{first_one_in, PageBitmap, RankIndex, SpanIter};
use crate::consts::{
    DUMP_FULL_SIGNATURE, DUMP_SIGNATURE32, DUMP_SIGNATURE64, DUMP_SUMMARY_VALID,
    DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_FULL, DUMP_VALID_DUMP32, DUMP_VALID_DUMP64, PAGE_SIZE,
};
use crate::error::LayoutError;
use crate::info::{comment_bytes, lo32, Arch, DumpHeaderInfo};
use crate::le::fill_dword;
use crate::structs::{
    BitmapSummaryHeader, DumpHeader32, DumpHeader64, ExceptionRecord32, ExceptionRecord64,
    PhysicalMemoryDescriptor32, PhysicalMemoryDescriptor64, PhysicalMemoryRun32,
    PhysicalMemoryRun64,
};

/// A range of guest physical pages: PFNs `base_page .. base_page + page_count`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemoryRun {
    /// First PFN.
    pub base_page: u64,
    /// Number of pages.
    pub page_count: u64,
}

impl MemoryRun {
    /// A run of `page_count` pages starting at PFN `base_page`.
    pub const fn new(base_page: u64, page_count: u64) -> Self {
        Self {
            base_page,
            page_count,
        }
    }

    /// One past the last PFN, or `None` on overflow.
    pub const fn end_page(&self) -> Option<u64> {
        self.base_page.checked_add(self.page_count)
    }

    /// Whether `pfn` lies in the run.
    pub const fn contains(&self, pfn: u64) -> bool {
        pfn >= self.base_page && pfn - self.base_page < self.page_count
    }
}

/// Checks a run list for a dump of `arch` and merges runs that touch.
///
/// Requirements: at least one run, no empty run, strictly ascending without overlap,
/// every run below [`Arch::pfn_limit`].
pub fn normalize_runs(arch: Arch, runs: &[MemoryRun]) -> Result<Vec<MemoryRun>, LayoutError> {
    if runs.is_empty() {
        return Err(LayoutError::NoRuns);
    }
    let limit = arch.pfn_limit();
    let mut out: Vec<MemoryRun> = Vec::with_capacity(runs.len());
    for (index, run) in runs.iter().enumerate() {
        if run.page_count == 0 {
            return Err(LayoutError::EmptyRun { index });
        }
        let end = run.end_page().unwrap_or(u64::MAX);
        if end > limit {
            return Err(LayoutError::RunBeyondLimit { index, end, limit });
        }
        match out.last_mut() {
            Some(prev) if prev.base_page + prev.page_count > run.base_page => {
                return Err(LayoutError::RunsNotAscending {
                    index,
                    base_page: run.base_page,
                });
            }
            Some(prev) if prev.base_page + prev.page_count == run.base_page => {
                prev.page_count += run.page_count;
            }
            _ => out.push(*run),
        }
    }
    Ok(out)
}

/// Reduces a run list to at most `max` runs for the header's `PhysicalMemoryBlock` by
/// closing the smallest gaps (merged runs then also cover those gaps). Used only for
/// bitmap dumps, whose readers locate pages through the bitmap.
pub fn coalesce_runs(runs: &[MemoryRun], max: usize) -> Vec<MemoryRun> {
    if runs.len() <= max {
        return runs.to_vec();
    }
    if max == 0 {
        return Vec::new();
    }
    let mut gaps: Vec<(u64, usize)> = runs
        .windows(2)
        .enumerate()
        .map(|(i, w)| match w {
            [a, b] => (
                b.base_page
                    .saturating_sub(a.base_page.saturating_add(a.page_count)),
                i,
            ),
            _ => (u64::MAX, i),
        })
        .collect();
    gaps.sort_unstable();
    let mut close = vec![false; runs.len()];
    for &(_, i) in gaps.iter().take(runs.len() - max) {
        if let Some(c) = close.get_mut(i) {
            *c = true;
        }
    }
    let mut out: Vec<MemoryRun> = Vec::with_capacity(max);
    let mut merge_next = false;
    for (run, &closed) in runs.iter().zip(&close) {
        match out.last_mut() {
            Some(prev) if merge_next => {
                prev.page_count = run
                    .base_page
                    .saturating_add(run.page_count)
                    .saturating_sub(prev.base_page);
            }
            _ => out.push(*run),
        }
        merge_next = closed;
    }
    out
}

/// A maximal range of consecutive present PFNs and the file offset of its first page;
/// the other pages follow contiguously (page `first_pfn + i` at `file_offset + i * 4096`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSpan {
    /// First PFN.
    pub first_pfn: u64,
    /// Number of pages.
    pub page_count: u64,
    /// File offset of the first page.
    pub file_offset: u64,
}

/// File layout of a kernel dump to be written.
///
/// Pages are stored in ascending PFN order, so two present PFNs `p` and `p + 1` are
/// always in adjacent file pages: for any span of present pages, the offset of the
/// first page determines the others ([`DumpLayout::span_offset`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpLayout {
    arch: Arch,
    runs: Vec<MemoryRun>,
    /// Full dumps: pages stored before run `i`.
    run_starts: Vec<u64>,
    bitmap: Option<RankIndex>,
    data_offset: u64,
    file_size: u64,
}

impl DumpLayout {
    /// Full (run-list, `DumpType` 1) dump of every page of `runs`. Touching runs are
    /// merged; if more runs remain than the header holds (42 x64, 86 x86) this fails
    /// with [`LayoutError::TooManyRuns`] and a bitmap dump should be used instead.
    pub fn full(arch: Arch, runs: &[MemoryRun]) -> Result<Self, LayoutError> {
        let runs = normalize_runs(arch, runs)?;
        if runs.len() > arch.max_runs() {
            return Err(LayoutError::TooManyRuns {
                runs: runs.len(),
                max: arch.max_runs(),
            });
        }
        let mut run_starts = Vec::with_capacity(runs.len());
        let mut total = 0u64;
        for r in &runs {
            run_starts.push(total);
            total += r.page_count;
        }
        let data_offset = arch.header_size();
        Ok(Self {
            arch,
            runs,
            run_starts,
            bitmap: None,
            data_offset,
            file_size: data_offset + total * PAGE_SIZE,
        })
    }

    /// Bitmap (`DumpType` 5) dump of the pages in `present`, which must all lie inside
    /// `runs` (e.g. all of RAM minus all-zero pages). The bitmap has one bit per PFN up
    /// to the end of the last run, rounded up to a multiple of 8; page data starts at
    /// the next 4 KiB boundary after it.
    pub fn bitmap(
        arch: Arch,
        runs: &[MemoryRun],
        present: PageBitmap,
    ) -> Result<Self, LayoutError> {
        let runs = normalize_runs(arch, runs)?;
        let end = runs.last().map_or(0, |r| r.base_page + r.page_count);
        let bits = end.div_ceil(8) * 8;
        let words = present.into_words();
        if let Some(pfn) = first_one_in(&words, end, u64::MAX) {
            return Err(LayoutError::PresentPageOutsideRuns { pfn });
        }
        let index = RankIndex::new(words, bits);
        let mut prev_end = 0u64;
        for r in &runs {
            if let Some(pfn) = index.first_one_in(prev_end, r.base_page) {
                return Err(LayoutError::PresentPageOutsideRuns { pfn });
            }
            prev_end = r.base_page + r.page_count;
        }
        let bitmap_end = arch.header_size() + BitmapSummaryHeader::SIZE as u64 + bits / 8;
        let data_offset = bitmap_end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let file_size = data_offset + index.ones() * PAGE_SIZE;
        Ok(Self {
            arch,
            runs,
            run_starts: Vec::new(),
            bitmap: Some(index),
            data_offset,
            file_size,
        })
    }

    /// Architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// `DumpType` written: 1 (full) or 5 (bitmap).
    pub fn dump_type(&self) -> u32 {
        if self.bitmap.is_some() {
            DUMP_TYPE_BITMAP_FULL
        } else {
            DUMP_TYPE_FULL
        }
    }

    /// Whether this is a bitmap dump.
    pub fn is_bitmap(&self) -> bool {
        self.bitmap.is_some()
    }

    /// The guest memory runs (validated, touching runs merged).
    pub fn runs(&self) -> &[MemoryRun] {
        &self.runs
    }

    /// The runs written to the header's `PhysicalMemoryBlock`: [`Self::runs`], or for a
    /// bitmap dump with too many runs, those runs with the smallest gaps closed.
    pub fn described_runs(&self) -> Vec<MemoryRun> {
        coalesce_runs(&self.runs, self.arch.max_runs())
    }

    /// Number of pages stored in the file.
    pub fn present_pages(&self) -> u64 {
        match &self.bitmap {
            Some(idx) => idx.ones(),
            None => self.runs.iter().map(|r| r.page_count).sum(),
        }
    }

    /// Bitmap dumps: number of bits in the bitmap (`Pages`, a multiple of 8).
    pub fn bitmap_bits(&self) -> Option<u64> {
        self.bitmap.as_ref().map(RankIndex::bits)
    }

    /// File offset of the first page: the end of [`Self::header_bytes`].
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Total file size, also written as `RequiredDumpSpace`.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Whether page `pfn` is stored.
    pub fn is_present(&self, pfn: u64) -> bool {
        self.page_offset(pfn).is_some()
    }

    /// File offset of page `pfn`, or `None` if it is not stored. O(log runs) for full
    /// dumps, O(1) (at most 8 popcounts) for bitmap dumps.
    pub fn page_offset(&self, pfn: u64) -> Option<u64> {
        Some(self.data_offset + self.page_index(pfn)? * PAGE_SIZE)
    }

    /// Index of page `pfn` among the stored pages.
    fn page_index(&self, pfn: u64) -> Option<u64> {
        match &self.bitmap {
            Some(idx) => idx.get(pfn).then(|| idx.rank(pfn)),
            None => {
                let i = self
                    .runs
                    .partition_point(|r| r.base_page <= pfn)
                    .checked_sub(1)?;
                let run = self.runs.get(i)?;
                run.contains(pfn)
                    .then(|| self.run_starts.get(i).map(|s| s + (pfn - run.base_page)))
                    .flatten()
            }
        }
    }

    /// File offset of page `first_pfn` if all `count` pages `first_pfn..first_pfn+count`
    /// are stored (they are then contiguous in the file); `None` otherwise or if
    /// `count == 0`. O(1) / O(log runs).
    pub fn span_offset(&self, first_pfn: u64, count: u64) -> Option<u64> {
        let last = first_pfn.checked_add(count.checked_sub(1)?)?;
        let a = self.page_index(first_pfn)?;
        let b = self.page_index(last)?;
        // Present pages are numbered in PFN order, so `count` consecutive indices over
        // `count` consecutive PFNs means every page in between is present.
        (b - a == count - 1).then_some(self.data_offset + a * PAGE_SIZE)
    }

    /// The stored pages as maximal spans of consecutive PFNs, ascending.
    pub fn present_spans(&self) -> PresentSpans<'_> {
        PresentSpans {
            inner: match &self.bitmap {
                Some(idx) => SpansInner::Bitmap(idx.spans()),
                None => SpansInner::Runs(self.runs.iter()),
            },
            next_offset: self.data_offset,
        }
    }

    /// The typed 64-bit header this layout writes (`Arch::X64`).
    pub fn header64(&self, info: &DumpHeaderInfo) -> DumpHeader64 {
        let mut page = [0u8; 8];
        fill_dword(&mut page, DUMP_SIGNATURE64);
        let mut reserved0 = [0u8; 4008];
        fill_dword(&mut reserved0, DUMP_SIGNATURE64);

        let mut pmb = [0u8; 700];
        fill_dword(&mut pmb, DUMP_SIGNATURE64);
        let described = self.described_runs();
        let head = PhysicalMemoryDescriptor64 {
            number_of_runs: described.len() as u32,
            pad_04: 0,
            number_of_pages: described.iter().map(|r| r.page_count).sum(),
        };
        head.write_to(&mut pmb);
        for (i, r) in described.iter().enumerate() {
            let run = PhysicalMemoryRun64 {
                base_page: r.base_page,
                page_count: r.page_count,
            };
            if let Some(dst) =
                pmb.get_mut(PhysicalMemoryDescriptor64::SIZE + i * PhysicalMemoryRun64::SIZE..)
            {
                run.write_to(dst);
            }
        }

        let mut context_record = [0u8; 3000];
        info.context.to_context64().write_to(&mut context_record);

        let mut exception = ExceptionRecord64::zeroed();
        exception.exception_code = info.exception_code;
        exception.exception_address = info.exception_address;

        DumpHeader64 {
            signature: DUMP_SIGNATURE64,
            valid_dump: DUMP_VALID_DUMP64,
            major_version: info.major_version,
            minor_version: info.minor_version,
            directory_table_base: info.directory_table_base,
            pfn_data_base: info.pfn_database,
            ps_loaded_module_list: info.ps_loaded_module_list,
            ps_active_process_head: info.ps_active_process_head,
            machine_image_type: self.arch.machine_image_type(),
            number_processors: info.number_processors,
            bug_check_code: info.bugcheck_code,
            pad_03c: 0,
            bug_check_parameters: info.bugcheck_parameters,
            version_user: [0; 32],
            kd_debugger_data_block: info.kd_debugger_data_block,
            physical_memory_block: pmb,
            pad_344: 0,
            context_record,
            exception,
            dump_type: self.dump_type(),
            pad_f9c: 0,
            required_dump_space: self.file_size,
            system_time: info.system_time,
            comment: comment_bytes(&info.comment),
            system_up_time: info.system_uptime,
            mini_dump_fields: 0,
            secondary_data_state: 0,
            product_type: info.product_type,
            suite_mask: info.suite_mask,
            writer_status: 0,
            unused1: 0,
            kd_secondary_version: info.kd_secondary_version,
            unused: [0; 2],
            attributes: info.attributes,
            boot_id: 0,
            reserved0,
        }
    }

    /// The typed 32-bit header this layout writes (`Arch::X86`). 64-bit values are
    /// truncated to their low 32 bits.
    pub fn header32(&self, info: &DumpHeaderInfo) -> DumpHeader32 {
        let mut pmb = [0u8; 700];
        fill_dword(&mut pmb, DUMP_SIGNATURE32);
        let described = self.described_runs();
        // Runs are below 2^32 PFNs for x86 (checked by `normalize_runs`).
        let head = PhysicalMemoryDescriptor32 {
            number_of_runs: described.len() as u32,
            number_of_pages: lo32(described.iter().map(|r| r.page_count).sum()),
        };
        head.write_to(&mut pmb);
        for (i, r) in described.iter().enumerate() {
            let run = PhysicalMemoryRun32 {
                base_page: lo32(r.base_page),
                page_count: lo32(r.page_count),
            };
            if let Some(dst) =
                pmb.get_mut(PhysicalMemoryDescriptor32::SIZE + i * PhysicalMemoryRun32::SIZE..)
            {
                run.write_to(dst);
            }
        }
        let mut context_record = [0u8; 1200];
        info.context.to_context32().write_to(&mut context_record);
        let mut exception = ExceptionRecord32::zeroed();
        exception.exception_code = info.exception_code;
        exception.exception_address = lo32(info.exception_address);
        let mut reserved0 = [0u8; 1760];
        fill_dword(&mut reserved0, DUMP_SIGNATURE32);
        let mut reserved2 = [0u8; 16];
        fill_dword(&mut reserved2, DUMP_SIGNATURE32);
        let mut reserved3 = [0u8; 56];
        fill_dword(&mut reserved3, DUMP_SIGNATURE32);
        let p = info.bugcheck_parameters;
        DumpHeader32 {
            signature: DUMP_SIGNATURE32,
            valid_dump: DUMP_VALID_DUMP32,
            major_version: info.major_version,
            minor_version: info.minor_version,
            directory_table_base: lo32(info.directory_table_base),
            pfn_data_base: lo32(info.pfn_database),
            ps_loaded_module_list: lo32(info.ps_loaded_module_list),
            ps_active_process_head: lo32(info.ps_active_process_head),
            machine_image_type: self.arch.machine_image_type(),
            number_processors: info.number_processors,
            bug_check_code: info.bugcheck_code,
            bug_check_parameters: p.map(lo32),
            version_user: [0; 32],
            pae_enabled: u8::from(matches!(self.arch, Arch::X86 { pae: true })),
            kd_secondary_version: info.kd_secondary_version,
            spare3: [0; 2],
            kd_debugger_data_block: lo32(info.kd_debugger_data_block),
            physical_memory_block: pmb,
            context_record,
            exception,
            comment: comment_bytes(&info.comment),
            attributes: info.attributes,
            boot_id: 0,
            reserved0,
            dump_type: self.dump_type(),
            mini_dump_fields: 0,
            secondary_data_state: 0,
            product_type: info.product_type,
            suite_mask: info.suite_mask,
            writer_status: 0,
            required_dump_space: self.file_size,
            reserved2,
            system_up_time: info.system_uptime,
            system_time: info.system_time,
            reserved3,
        }
    }

    /// The bitmap summary header this layout writes (bitmap dumps only).
    pub fn summary_header(&self) -> Option<BitmapSummaryHeader> {
        let idx = self.bitmap.as_ref()?;
        Some(BitmapSummaryHeader {
            signature: DUMP_FULL_SIGNATURE,
            valid_dump: DUMP_SUMMARY_VALID,
            dump_options: 0,
            reserved: [0; 0x14],
            first_page: self.data_offset,
            total_present_pages: idx.ones(),
            pages: idx.bits(),
        })
    }

    /// Everything before the first page: the dump header (`PAGE`-filled, every field
    /// set, `RequiredDumpSpace` = [`Self::file_size`]) and, for bitmap dumps, the
    /// summary header, the bitmap and zero padding up to [`Self::data_offset`].
    pub fn header_bytes(&self, info: &DumpHeaderInfo) -> Vec<u8> {
        let mut out = match self.arch {
            Arch::X64 => self.header64(info).to_bytes(),
            Arch::X86 { .. } => self.header32(info).to_bytes(),
        };
        if let (Some(idx), Some(summary)) = (&self.bitmap, self.summary_header()) {
            out.extend_from_slice(&summary.to_bytes());
            let nbytes = (idx.bits() / 8) as usize;
            let mut bitmap = Vec::with_capacity(nbytes + 8);
            for w in idx.words() {
                bitmap.extend_from_slice(&w.to_le_bytes());
            }
            bitmap.truncate(nbytes);
            out.extend_from_slice(&bitmap);
            out.resize(self.data_offset as usize, 0);
        }
        out
    }
}

/// Iterator returned by [`DumpLayout::present_spans`].
pub struct PresentSpans<'a> {
    inner: SpansInner<'a>,
    next_offset: u64,
}

enum SpansInner<'a> {
    Runs(std::slice::Iter<'a, MemoryRun>),
    Bitmap(SpanIter<'a>),
}

impl Iterator for PresentSpans<'_> {
    type Item = PageSpan;
    fn next(&mut self) -> Option<PageSpan> {
        let (first_pfn, page_count) = match &mut self.inner {
            SpansInner::Runs(it) => it.next().map(|r| (r.base_page, r.page_count))?,
            SpansInner::Bitmap(it) => it.next()?,
        };
        let span = PageSpan {
            first_pfn,
            page_count,
            file_offset: self.next_offset,
        };
        self.next_offset += page_count * PAGE_SIZE;
        Some(span)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod large_tests;
