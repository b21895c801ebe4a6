//! The [`MemorySource`] trait and the types it speaks in.

use std::path::PathBuf;

use crate::cpu::CpuState;
use crate::error::{Error, Result};
use crate::input::InputFile;

/// Size of a guest page.
pub const PAGE_SIZE: usize = 4096;

/// Most pages one chunk holds (1 MiB). Buffers handed to [`MemorySource::decode_chunk`] are
/// this many pages long.
pub const MAX_CHUNK_PAGES: usize = 256;

/// One bit per page of a chunk (bit `i % 64` of word `i / 64` for page `i`).
pub type PageMask = [u64; MAX_CHUNK_PAGES / 64];

/// One contiguous range of guest-physical RAM, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RamRange {
    /// First guest-physical page number (GPA >> 12).
    pub gpa_page_start: u64,
    /// Number of pages.
    pub page_count: u64,
}

impl RamRange {
    /// First byte of the range.
    pub fn gpa_start(&self) -> u64 {
        self.gpa_page_start << 12
    }
    /// One past the last byte of the range.
    pub fn gpa_end(&self) -> u64 {
        self.gpa_page_end() << 12
    }
    /// One past the last page of the range.
    pub fn gpa_page_end(&self) -> u64 {
        self.gpa_page_start + self.page_count
    }
}

/// The chunks of a source that stores each RAM range as one run of pages: `(index of the
/// range in ranges, first page within that range)` of every chunk, each covering up to
/// [`MAX_CHUNK_PAGES`] pages of one range, ranges in order.
pub fn range_chunks(ranges: &[RamRange]) -> Vec<(usize, u64)> {
    ranges
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            (0..r.page_count)
                .step_by(MAX_CHUNK_PAGES)
                .map(move |p| (i, p))
        })
        .collect()
}

/// Pages `page_in_chunk .. page_in_chunk + pages` of a chunk are guest pages
/// `gpa_page .. gpa_page + pages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// First page of the span within the chunk.
    pub page_in_chunk: usize,
    /// Guest page number of that page.
    pub gpa_page: u64,
    /// Number of pages.
    pub pages: usize,
}

/// A chunk whose pages are stored as they are, one after another, in an input file: a
/// writer may copy them file to file (in the kernel where the platform can) instead of
/// decoding them.
#[derive(Debug, Clone, Copy)]
pub struct RawChunk<'a> {
    /// The file holding the pages.
    pub file: &'a InputFile,
    /// Offset of the chunk's first page in the file.
    pub offset: u64,
}

/// What a source knows about the machine it saved, beyond memory and registers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineInfo {
    /// What kind of input this is, in words ("Hyper-V saved state"); also names the input in a
    /// dump's Comment.
    pub kind: String,
    /// The bug check the guest reported to its hypervisor (code and four parameters), when it
    /// did.
    pub guest_bugcheck: Option<(u32, [u64; 4])>,
    /// Index of the processor the guest booted on, when the source records it.
    pub boot_processor: Option<u32>,
    /// What the reader had to infer or could not read, in words, for the user (for example
    /// "EFER is not in the notes: long mode derived from CS.L"); a conversion reports them.
    pub notes: Vec<String>,
    /// The source saved no processor state: [`MemorySource::vcpus`] is one assumed processor
    /// (its paging mode and CR3 as the user gave them) for kernel discovery only, and a
    /// conversion reads each processor's registers from its KPRCB instead.
    pub processors_from_kernel: bool,
}

/// A saved guest: memory, processors and machine facts, from whatever file format.
///
/// Memory is stored in *chunks* of at most [`MAX_CHUNK_PAGES`] pages, numbered
/// `0..chunk_count()`: the unit one parallel worker takes. Each chunk maps to guest pages
/// through its [`ChunkSpan`]s; spans of all chunks together cover every RAM page exactly once,
/// and no span covers a page outside [`ram_ranges`](MemorySource::ram_ranges).
///
/// Implementations are `Sync`: workers decode different chunks at the same time.
pub trait MemorySource: Sync {
    /// The files the source was read from, main file first.
    fn files(&self) -> Vec<PathBuf>;

    /// Guest RAM ranges, sorted by address, not overlapping (they may touch).
    fn ram_ranges(&self) -> &[RamRange];

    /// Number of chunks.
    fn chunk_count(&self) -> usize;

    /// Where the pages of chunk `n` go in guest memory, ascending by `page_in_chunk`; empty
    /// for a chunk that is stored but outside every RAM range (or `n` out of range).
    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan>;

    /// Decodes chunk `n` into `out` (at least [`MAX_CHUNK_PAGES`] pages; page `i` of the
    /// chunk at `i * PAGE_SIZE`) and returns the pages known to be all zero without looking at
    /// them (zero-fill encodings), which a writer whose output starts zeroed may skip.
    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> Result<PageMask>;

    /// Chunk `n` when its pages are stored as they are in an input file (and nothing in
    /// memory replaces them), else `None`.
    fn raw_chunk(&self, _n: usize) -> Option<RawChunk<'_>> {
        None
    }

    /// Pages of chunk `n` known to be all zero, cheaply (a source may answer from its
    /// encoding without decoding); pages it cannot tell about count as non-zero. The
    /// default decodes the chunk and looks.
    fn zero_pages(&self, n: usize) -> Result<PageMask> {
        let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
        self.decode_chunk(n, &mut buf)?;
        let mut mask = [0u64; 4];
        for span in self.chunk_spans(n) {
            for i in span.page_in_chunk..span.page_in_chunk + span.pages {
                let page = buf.get(i * PAGE_SIZE..(i + 1) * PAGE_SIZE).unwrap_or(&[]);
                if !page.is_empty() && page.iter().all(|&b| b == 0) {
                    mask[i / 64] |= 1 << (i % 64);
                }
            }
        }
        Ok(mask)
    }

    /// Reads guest-physical memory: crosses pages and chunks; a byte outside RAM gives
    /// [`Error::Hole`] with the first such address.
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()>;

    /// Registers of each processor, ordered by index; may be empty (a memory image without
    /// processor state).
    fn vcpus(&self) -> &[CpuState];

    /// What the source knows about the machine.
    fn machine(&self) -> MachineInfo;

    /// Total guest RAM in pages.
    fn ram_pages(&self) -> u64 {
        self.ram_ranges().iter().map(|r| r.page_count).sum()
    }

    /// The RAM range holding guest page `pfn`, if any.
    fn range_of(&self, pfn: u64) -> Option<RamRange> {
        let ranges = self.ram_ranges();
        let i = ranges.partition_point(|r| r.gpa_page_start <= pfn);
        let r = ranges.get(i.checked_sub(1)?)?;
        (pfn < r.gpa_page_end()).then_some(*r)
    }

    /// The processor the guest booted on ([`MachineInfo::boot_processor`], else the first),
    /// or `None` when the source has no processor state.
    fn boot_vcpu(&self) -> Option<&CpuState> {
        let boot = self.machine().boot_processor;
        let vcpus = self.vcpus();
        vcpus
            .iter()
            .find(|v| Some(v.index) == boot)
            .or_else(|| vcpus.first())
    }
}

/// True when bit `page` of `mask` is set.
pub fn mask_has(mask: &PageMask, page: usize) -> bool {
    mask.get(page / 64)
        .is_some_and(|w| w & (1 << (page % 64)) != 0)
}

impl Error {
    /// An [`Error::Hole`] at `gpa`.
    pub fn hole(gpa: u64) -> Self {
        Error::Hole { gpa }
    }
}
