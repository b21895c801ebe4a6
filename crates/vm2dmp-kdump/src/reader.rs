//! Reading kernel dumps (ours or Windows'): header fields, context, page locations.

use crate::bitmap::RankIndex;
use crate::consts::{
    DUMP_FULL_SIGNATURE, DUMP_HEADER32_SIZE, DUMP_HEADER64_SIZE, DUMP_SIGNATURE64,
    DUMP_SUMMARY_SIGNATURE, DUMP_SUMMARY_VALID, DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_BITMAP_KERNEL,
    DUMP_TYPE_FULL, DUMP_VALID_DUMP32, DUMP_VALID_DUMP64, IMAGE_FILE_MACHINE_AMD64,
    IMAGE_FILE_MACHINE_I386, PAGE_SHIFT, PAGE_SIZE,
};
use crate::context::CpuContext;
use crate::error::DumpError;
use crate::info::{comment_string, Arch, DumpHeaderInfo};
use crate::layout::MemoryRun;
use crate::le::{u32_at, u64_at};
use crate::structs::{BitmapSummaryHeader, Context32, Context64, DumpHeader32, DumpHeader64};

/// First PFN whose byte address would not fit in 64 bits.
const PFN_ADDRESS_LIMIT: u64 = 1 << (64 - PAGE_SHIFT);

/// Most bits of a bitmap read: RAM up to 16 TiB (a 512 MiB bitmap, held while the dump is
/// open). The file size alone is no bound: a sparse file holds any bitmap in a few blocks.
const MAX_BITMAP_PAGES: u64 = 1 << 32;

/// Highest `DumpType` with a known meaning: the SDK's 1..=7 (0 is "unknown"), and 8..=0xA (kernel, kernel and
/// user, complete memory) of newer systems as kdmp-parser lists them.
const LAST_KNOWN_DUMP_TYPE: u32 = 0xA;

/// Offset of `PhysicalMemoryBlock` in `DUMP_HEADER64` / `DUMP_HEADER32`.
const PMB64: u64 = 0x088;
const PMB32: u64 = 0x064;
/// Offset of `ContextRecord`: run entries may use the bytes up to it (43 runs fit on
/// x64 when the 4 padding bytes at 0x344 are included, as some readers do).
const CTX64: u64 = 0x348;
const CTX32: u64 = 0x320;

/// The parsed dump header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    /// `DUMP_HEADER64` (`PAGEDU64`).
    H64(Box<DumpHeader64>),
    /// `DUMP_HEADER32` (`PAGEDUMP`).
    H32(Box<DumpHeader32>),
}

/// The header's `ContextRecord`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextRecord {
    /// x64 `CONTEXT` (64-bit header).
    X64(Box<Context64>),
    /// x86 `CONTEXT` (32-bit header).
    X86(Box<Context32>),
    /// The `CONTEXT` of another machine (ARM64, ARM, ...): not decoded; the raw bytes are
    /// in the header's `context_record`.
    Other {
        /// `MachineImageType`.
        machine: u32,
    },
}

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

#[derive(Clone, Debug, PartialEq, Eq)]
enum PageMap {
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

/// A parsed kernel dump. It keeps no reference to the file bytes: reads take them
/// again (`bytes` must be the same slice that was parsed), or locate pages with
/// [`KernelDump::page_file_offset`] and read them from the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelDump {
    header: Header,
    arch: Arch,
    info: DumpHeaderInfo,
    context: ContextRecord,
    runs: Vec<MemoryRun>,
    bitmap: Option<BitmapInfo>,
    pages: PageMap,
    file_size: u64,
}

fn truncated(structure: &'static str, offset: u64, needed: u64, len: usize) -> DumpError {
    DumpError::Truncated {
        structure,
        offset,
        needed,
        available: (len as u64).saturating_sub(offset),
    }
}

impl KernelDump {
    /// Parses a whole kernel dump file: 64-bit (`PAGEDU64`) or 32-bit (`PAGEDUMP`). The
    /// physical memory of `DumpType` 1 (full), 5 and 6 (bitmap) is mapped; the header of any
    /// other type is parsed and its memory reported as not readable. Every count and offset
    /// is checked against `bytes.len()`; allocations are bounded by it.
    pub fn parse(bytes: &[u8]) -> Result<KernelDump, DumpError> {
        Self::parse_prefix(bytes, bytes.len() as u64)
    }

    /// How many bytes from the start of the file [`Self::parse_prefix`] needs, judged from
    /// the first [`Self::HEADER_PREFIX`] bytes (or fewer, for a short file): the header, and
    /// for a bitmap dump its summary and bitmap. When this is more than `file_size` the file
    /// cannot hold its own header and bitmap: do not read further, hand `parse_prefix` what
    /// was read and it reports the truncation.
    pub fn metadata_len(head: &[u8], file_size: u64) -> u64 {
        let need = (|| {
            let header_size = match u32_at(head, 4)? {
                DUMP_VALID_DUMP64 => DUMP_HEADER64_SIZE,
                DUMP_VALID_DUMP32 => DUMP_HEADER32_SIZE,
                _ => return None,
            };
            let dump_type = u32_at(
                head,
                if header_size == DUMP_HEADER64_SIZE {
                    0xF98
                } else {
                    0xF88
                },
            )?;
            let summary = header_size + BitmapSummaryHeader::SIZE as u64;
            if !matches!(dump_type, DUMP_TYPE_BITMAP_FULL | DUMP_TYPE_BITMAP_KERNEL) {
                return Some(header_size);
            }
            let pages = u64_at(head, header_size as usize + 0x30)?;
            if pages > MAX_BITMAP_PAGES {
                // Refused by the parser from the summary alone.
                return Some(summary);
            }
            Some(summary.saturating_add(pages.div_ceil(8)))
        })();
        need.unwrap_or_else(|| (head.len() as u64).min(file_size))
    }

    /// Bytes to read first and hand to [`Self::metadata_len`]: the larger header and a
    /// bitmap summary.
    pub const HEADER_PREFIX: u64 = DUMP_HEADER64_SIZE + BitmapSummaryHeader::SIZE as u64;

    /// Parses a kernel dump from the first bytes of a file of `file_size` bytes: `prefix`
    /// must hold at least [`Self::metadata_len`] bytes. Page data is located, not read:
    /// read it at [`Self::page_file_offset`].
    pub fn parse_prefix(bytes: &[u8], file_size: u64) -> Result<KernelDump, DumpError> {
        let sig = u32_at(bytes, 0).ok_or_else(|| truncated("dump header", 0, 8, bytes.len()))?;
        if sig != DUMP_SIGNATURE64 {
            return Err(DumpError::BadSignature {
                structure: "dump header",
                offset: 0,
                found: sig,
                expected: "'PAGE'",
            });
        }
        let valid = u32_at(bytes, 4).ok_or_else(|| truncated("dump header", 0, 8, bytes.len()))?;
        match valid {
            DUMP_VALID_DUMP64 => Self::parse64(bytes, file_size),
            DUMP_VALID_DUMP32 => Self::parse32(bytes, file_size),
            found => Err(DumpError::BadSignature {
                structure: "dump header",
                offset: 4,
                found,
                expected: "'DU64' or 'DUMP'",
            }),
        }
    }

    fn parse64(bytes: &[u8], file_size: u64) -> Result<KernelDump, DumpError> {
        let h = DumpHeader64::parse(bytes, 0)?;
        let context = if h.machine_image_type == IMAGE_FILE_MACHINE_AMD64 {
            ContextRecord::X64(Box::new(Context64::parse(&h.context_record, CTX64)?))
        } else {
            ContextRecord::Other {
                machine: h.machine_image_type,
            }
        };
        let runs = parse_runs(bytes, RunFormat::X64, h.dump_type == DUMP_TYPE_FULL)?;
        let p = h.bug_check_parameters;
        let info = DumpHeaderInfo {
            major_version: h.major_version,
            minor_version: h.minor_version,
            directory_table_base: h.directory_table_base,
            pfn_database: h.pfn_data_base,
            ps_loaded_module_list: h.ps_loaded_module_list,
            ps_active_process_head: h.ps_active_process_head,
            kd_debugger_data_block: h.kd_debugger_data_block,
            number_processors: h.number_processors,
            bugcheck_code: h.bug_check_code,
            bugcheck_parameters: p,
            system_time: h.system_time,
            system_uptime: h.system_up_time,
            comment: comment_string(&h.comment),
            product_type: h.product_type,
            suite_mask: h.suite_mask,
            kd_secondary_version: h.kd_secondary_version,
            attributes: h.attributes,
            exception_code: h.exception.exception_code,
            exception_address: h.exception.exception_address,
            context: match &context {
                ContextRecord::X64(c) => CpuContext::from_context64(c),
                _ => CpuContext::default(),
            },
        };
        let (pages, bitmap) = build_page_map(
            bytes,
            file_size,
            h.dump_type,
            DUMP_HEADER64_SIZE,
            &runs,
            RunFormat::X64,
        )?;
        Ok(KernelDump {
            header: Header::H64(Box::new(h)),
            arch: Arch::X64,
            info,
            context,
            runs,
            bitmap,
            pages,
            file_size,
        })
    }

    fn parse32(bytes: &[u8], file_size: u64) -> Result<KernelDump, DumpError> {
        let h = DumpHeader32::parse(bytes, 0)?;
        let context = if h.machine_image_type == IMAGE_FILE_MACHINE_I386 {
            ContextRecord::X86(Box::new(Context32::parse(&h.context_record, CTX32)?))
        } else {
            ContextRecord::Other {
                machine: h.machine_image_type,
            }
        };
        let runs = parse_runs(bytes, RunFormat::X86, h.dump_type == DUMP_TYPE_FULL)?;
        let p = h.bug_check_parameters;
        let info = DumpHeaderInfo {
            major_version: h.major_version,
            minor_version: h.minor_version,
            directory_table_base: u64::from(h.directory_table_base),
            pfn_database: u64::from(h.pfn_data_base),
            ps_loaded_module_list: u64::from(h.ps_loaded_module_list),
            ps_active_process_head: u64::from(h.ps_active_process_head),
            kd_debugger_data_block: u64::from(h.kd_debugger_data_block),
            number_processors: h.number_processors,
            bugcheck_code: h.bug_check_code,
            bugcheck_parameters: p.map(u64::from),
            system_time: h.system_time,
            system_uptime: h.system_up_time,
            comment: comment_string(&h.comment),
            product_type: h.product_type,
            suite_mask: h.suite_mask,
            kd_secondary_version: h.kd_secondary_version,
            attributes: h.attributes,
            exception_code: h.exception.exception_code,
            exception_address: u64::from(h.exception.exception_address),
            context: match &context {
                ContextRecord::X86(c) => CpuContext::from_context32(c),
                _ => CpuContext::default(),
            },
        };
        let (pages, bitmap) = build_page_map(
            bytes,
            file_size,
            h.dump_type,
            DUMP_HEADER32_SIZE,
            &runs,
            RunFormat::X86,
        )?;
        Ok(KernelDump {
            arch: Arch::X86 {
                pae: h.pae_enabled != 0,
            },
            header: Header::H32(Box::new(h)),
            info,
            context,
            runs,
            bitmap,
            pages,
            file_size,
        })
    }

    /// Architecture implied by the header format (`X64` for any 64-bit header; see
    /// [`Self::machine_image_type`] for the exact machine).
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The typed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The 64-bit header, if this is a 64-bit dump.
    pub fn header64(&self) -> Option<&DumpHeader64> {
        match &self.header {
            Header::H64(h) => Some(h),
            Header::H32(_) => None,
        }
    }

    /// The 32-bit header, if this is a 32-bit dump.
    pub fn header32(&self) -> Option<&DumpHeader32> {
        match &self.header {
            Header::H32(h) => Some(h),
            Header::H64(_) => None,
        }
    }

    /// Header fields in writer form (32-bit values zero-extended).
    pub fn info(&self) -> &DumpHeaderInfo {
        &self.info
    }

    /// `MachineImageType`.
    pub fn machine_image_type(&self) -> u32 {
        match &self.header {
            Header::H64(h) => h.machine_image_type,
            Header::H32(h) => h.machine_image_type,
        }
    }

    /// `DumpType` (1, 5 or 6 for dumps whose memory is read; see [`Self::has_page_data`]).
    pub fn dump_type(&self) -> u32 {
        match &self.header {
            Header::H64(h) => h.dump_type,
            Header::H32(h) => h.dump_type,
        }
    }

    /// `PaeEnabled` of a 32-bit header.
    pub fn pae_enabled(&self) -> Option<bool> {
        self.header32().map(|h| h.pae_enabled != 0)
    }

    /// Runs of `PhysicalMemoryBlock` in file order. For bitmap dumps, whose readers
    /// ignore this block, an unusable block yields an empty list instead of an error.
    pub fn runs(&self) -> &[MemoryRun] {
        &self.runs
    }

    /// Bitmap summary (bitmap dumps only).
    pub fn bitmap(&self) -> Option<BitmapInfo> {
        self.bitmap
    }

    /// `RequiredDumpSpace` as written.
    pub fn required_dump_space(&self) -> u64 {
        match &self.header {
            Header::H64(h) => h.required_dump_space,
            Header::H32(h) => h.required_dump_space,
        }
    }

    /// True when the dump's physical memory is mapped (`DumpType` 1, 5 or 6); false for
    /// the other types, whose header alone is read.
    pub fn has_page_data(&self) -> bool {
        !matches!(self.pages, PageMap::None)
    }

    /// `Ok` when [`Self::has_page_data`], else [`DumpError::UnsupportedDumpType`].
    pub fn require_page_data(&self) -> Result<(), DumpError> {
        if self.has_page_data() {
            Ok(())
        } else {
            Err(DumpError::UnsupportedDumpType(self.dump_type()))
        }
    }

    /// Size of the file (the parsed bytes, or the size given to [`Self::parse_prefix`]).
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// File offset of the first stored page.
    pub fn data_offset(&self) -> u64 {
        match &self.pages {
            PageMap::Full { data_offset, .. } => *data_offset,
            PageMap::Bitmap { first_page, .. } => *first_page,
            PageMap::None => 0,
        }
    }

    /// The `CONTEXT` record of the header.
    pub fn context(&self) -> &ContextRecord {
        &self.context
    }

    /// Number of stored pages.
    pub fn present_page_count(&self) -> u64 {
        match &self.pages {
            PageMap::Full { total, .. } => *total,
            PageMap::Bitmap { index, .. } => index.ones(),
            PageMap::None => 0,
        }
    }

    /// File offset of page `pfn`, or `None` if the dump does not contain it.
    pub fn page_file_offset(&self, pfn: u64) -> Option<u64> {
        match &self.pages {
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
    /// another in the file (one read fetches them); `None` otherwise.
    pub fn stored_run(&self, pfn: u64, count: u64) -> Option<u64> {
        let last = pfn.checked_add(count.checked_sub(1)?)?;
        let first_off = self.page_file_offset(pfn)?;
        match &self.pages {
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

    /// The 4096 bytes of page `pfn`.
    pub fn page<'a>(&self, bytes: &'a [u8], pfn: u64) -> Result<&'a [u8], DumpError> {
        self.require_page_data()?;
        let offset = self
            .page_file_offset(pfn)
            .ok_or(DumpError::PageNotPresent {
                pfn,
                gpa: pfn.wrapping_shl(PAGE_SHIFT),
            })?;
        slice_at(bytes, pfn, offset, PAGE_SIZE)
    }

    /// Reads `buf.len()` bytes of physical memory at `gpa`, crossing pages as needed.
    /// Fails with [`DumpError::PageNotPresent`] naming the first missing PFN.
    pub fn read_phys(&self, bytes: &[u8], gpa: u64, buf: &mut [u8]) -> Result<(), DumpError> {
        self.require_page_data()?;
        let len = buf.len() as u64;
        if gpa.checked_add(len).is_none() {
            return Err(DumpError::AddressOverflow { gpa, len });
        }
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa + done as u64;
            let pfn = addr >> PAGE_SHIFT;
            let in_page = addr & (PAGE_SIZE - 1);
            let n = (PAGE_SIZE - in_page).min((buf.len() - done) as u64);
            let offset = self
                .page_file_offset(pfn)
                .ok_or(DumpError::PageNotPresent { pfn, gpa: addr })?;
            let src = slice_at(bytes, pfn, offset + in_page, n)?;
            let dst = buf
                .get_mut(done..done + n as usize)
                .ok_or(DumpError::AddressOverflow { gpa, len })?;
            dst.copy_from_slice(src);
            done += n as usize;
        }
        Ok(())
    }

    /// Stored PFNs in ascending order.
    pub fn present_pfns(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match &self.pages {
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

fn slice_at(bytes: &[u8], pfn: u64, offset: u64, len: u64) -> Result<&[u8], DumpError> {
    let err = DumpError::PageOutsideInput {
        pfn,
        offset,
        available: bytes.len() as u64,
    };
    let start = usize::try_from(offset).map_err(|_| err.clone())?;
    let end = start.checked_add(usize::try_from(len).map_err(|_| err.clone())?);
    end.and_then(|end| bytes.get(start..end)).ok_or(err)
}

#[derive(Clone, Copy)]
enum RunFormat {
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
fn parse_runs(bytes: &[u8], fmt: RunFormat, strict: bool) -> Result<Vec<MemoryRun>, DumpError> {
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

type PageMapResult = (PageMap, Option<BitmapInfo>);

fn build_page_map(
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
