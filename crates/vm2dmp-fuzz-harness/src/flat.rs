//! A memory source with no container: guest RAM held in memory, one buffer per range, and the
//! registers of each processor. The `convert` target builds tiny guests of it from its input
//! (the converter does not care where memory comes from, so it is fuzzed once, here, at the
//! speed of small guests); tests build one from a synthetic Windows guest.

use std::path::PathBuf;

use vm2dmp::source::{
    range_chunks, ChunkSpan, CpuState, MachineInfo, PageMask, RamRange, MAX_CHUNK_PAGES, PAGE_SIZE,
};
use vm2dmp::{Error, MemorySource};

/// Guest RAM held in memory and the processors' registers.
#[derive(Debug, Clone)]
pub struct FlatGuest {
    ranges: Vec<RamRange>,
    /// `ranges[i]`'s bytes.
    ram: Vec<Vec<u8>>,
    /// `(range, first page in range)` of each chunk of at most `MAX_CHUNK_PAGES` pages.
    chunks: Vec<(usize, u64)>,
    cpus: Vec<CpuState>,
    bugcheck: Option<(u32, [u64; 4])>,
}

impl FlatGuest {
    /// A guest of the given RAM ranges (first guest page, bytes: whole pages; a short last
    /// page reads as zeros after the bytes given) and processors. Ranges are sorted;
    /// `None` when two overlap or a range is empty.
    pub fn new(ranges: Vec<(u64, Vec<u8>)>, cpus: Vec<CpuState>) -> Option<Self> {
        let mut ranges = ranges;
        ranges.sort_by_key(|(start, _)| *start);
        let mut out_ranges = Vec::with_capacity(ranges.len());
        let mut ram = Vec::with_capacity(ranges.len());
        for (start, mut bytes) in ranges {
            let pages = bytes.len().div_ceil(PAGE_SIZE) as u64;
            bytes.resize(pages as usize * PAGE_SIZE, 0);
            let r = RamRange {
                gpa_page_start: start,
                page_count: pages,
            };
            if pages == 0 || start.checked_add(pages)? > u64::MAX >> 12 {
                return None;
            }
            if out_ranges
                .last()
                .is_some_and(|p: &RamRange| p.gpa_page_end() > start)
            {
                return None;
            }
            out_ranges.push(r);
            ram.push(bytes);
        }
        let chunks = range_chunks(&out_ranges);
        Some(Self {
            ranges: out_ranges,
            ram,
            chunks,
            cpus,
            bugcheck: None,
        })
    }

    /// The same guest, reporting that it stopped on bug check `code` with `params`.
    pub fn with_bugcheck(mut self, code: u32, params: [u64; 4]) -> Self {
        self.bugcheck = Some((code, params));
        self
    }

    /// The index of the range holding guest page `pfn`.
    fn range_index(&self, pfn: u64) -> Option<usize> {
        let i = self.ranges.partition_point(|r| r.gpa_page_end() <= pfn);
        (self.ranges.get(i)?.gpa_page_start <= pfn).then_some(i)
    }
}

impl MemorySource for FlatGuest {
    fn files(&self) -> Vec<PathBuf> {
        vec![PathBuf::from("flat.img")]
    }
    fn ram_ranges(&self) -> &[RamRange] {
        &self.ranges
    }
    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        let Some(&(i, first)) = self.chunks.get(n) else {
            return Vec::new();
        };
        let r = self.ranges[i];
        vec![ChunkSpan {
            page_in_chunk: 0,
            gpa_page: r.gpa_page_start + first,
            pages: (r.page_count - first).min(MAX_CHUNK_PAGES as u64) as usize,
        }]
    }
    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> vm2dmp::Result<PageMask> {
        let Some(&(i, first)) = self.chunks.get(n) else {
            return Err(Error::InvalidArgument(format!("chunk {n}")));
        };
        let pages = (self.ranges[i].page_count - first).min(MAX_CHUNK_PAGES as u64) as usize;
        let from = first as usize * PAGE_SIZE;
        let len = pages * PAGE_SIZE;
        let dst = out
            .get_mut(..len)
            .ok_or_else(|| Error::InvalidArgument(format!("buffer of chunk {n}")))?;
        dst.copy_from_slice(&self.ram[i][from..from + len]);
        Ok([0; 4])
    }
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> vm2dmp::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa
                .checked_add(done as u64)
                .ok_or(Error::Hole { gpa: u64::MAX })?;
            let i = self
                .range_index(addr >> 12)
                .ok_or(Error::Hole { gpa: addr })?;
            let off = (addr - self.ranges[i].gpa_start()) as usize;
            let n = (self.ram[i].len() - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.ram[i][off..off + n]);
            done += n;
        }
        Ok(())
    }
    fn vcpus(&self) -> &[CpuState] {
        &self.cpus
    }
    fn machine(&self) -> MachineInfo {
        MachineInfo {
            kind: "flat memory image".into(),
            guest_bugcheck: self.bugcheck,
            boot_processor: self.cpus.first().map(|c| c.index),
            notes: Vec::new(),
            processors_from_kernel: false,
        }
    }
}
