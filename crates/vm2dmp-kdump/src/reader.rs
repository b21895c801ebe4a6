//! Reading kernel dumps (ours or Windows'): header fields, context, page locations.
//!
//! This module parses the header and its context record and answers reads;
//! `page_map` locates the stored pages (run list, bitmap) for it.

mod page_map;

use crate::consts::{
    DUMP_HEADER32_SIZE, DUMP_HEADER64_SIZE, DUMP_SIGNATURE64, DUMP_TYPE_BITMAP_FULL,
    DUMP_TYPE_BITMAP_KERNEL, DUMP_TYPE_FULL, DUMP_VALID_DUMP32, DUMP_VALID_DUMP64,
    IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_I386, PAGE_SHIFT, PAGE_SIZE,
};
use crate::context::CpuContext;
use crate::error::DumpError;
use crate::info::{comment_string, Arch, DumpHeaderInfo};
use crate::layout::MemoryRun;
use crate::le::{u32_at, u64_at};
use crate::structs::{BitmapSummaryHeader, Context32, Context64, DumpHeader32, DumpHeader64};
use page_map::{
    build_page_map, parse_runs, truncated, PageMap, RunFormat, CTX32, CTX64, MAX_BITMAP_PAGES,
};

pub use page_map::BitmapInfo;

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
        self.pages.has_page_data()
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
        self.pages.data_offset()
    }

    /// The `CONTEXT` record of the header.
    pub fn context(&self) -> &ContextRecord {
        &self.context
    }

    /// Number of stored pages.
    pub fn present_page_count(&self) -> u64 {
        self.pages.present_page_count()
    }

    /// File offset of page `pfn`, or `None` if the dump does not contain it.
    pub fn page_file_offset(&self, pfn: u64) -> Option<u64> {
        self.pages.page_file_offset(pfn)
    }

    /// File offset of page `pfn` when pages `pfn..pfn + count` are all stored, one after
    /// another in the file (one read fetches them); `None` otherwise.
    pub fn stored_run(&self, pfn: u64, count: u64) -> Option<u64> {
        self.pages.stored_run(pfn, count)
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
        self.pages.present_pfns()
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
