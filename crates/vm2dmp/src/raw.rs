//! Raw physical memory images: a file of guest-physical memory with no header and no
//! processor state (QEMU's `pmemsave`, winpmem's raw output, a `.vmem` without its state file,
//! a `.raw` / `.mem` from any acquisition tool).
//!
//! By default the file is guest-physical memory from address 0 on, one page after another.
//! A [`MemoryMap`] says instead which guest-physical ranges the file holds, stored back to
//! back (as acquisition tools leave out MMIO holes). With no registers to go by, kernel
//! discovery assumes a 64-bit guest (or the paging mode given) and starts from the CR3 given
//! or, without one, from page-table roots found by scanning memory; a conversion then takes
//! each processor's registers from its KPRCB.

use std::path::{Path, PathBuf};

use vm2dmp_source::{
    range_chunks, ChunkSpan, CpuState, Error, InputFile, MachineInfo, MemorySource, PageMask,
    PagingMode, RamRange, RawChunk, Result, SegmentRegister, MAX_CHUNK_PAGES, PAGE_SIZE,
};

/// What [`MachineInfo::kind`] says of a raw image.
pub const KIND: &str = "raw memory image";

/// Most ranges a memory map may list.
pub const MAX_MAP_RANGES: usize = 4096;

/// Guest-physical ranges a raw image holds, in the order they are stored in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMap {
    ranges: Vec<RamRange>,
}

impl MemoryMap {
    /// The map of ranges `(first byte, one past the last byte)`, stored in this order; each
    /// must be page-aligned, non-empty, and not overlap another.
    pub fn new(ranges: &[(u64, u64)]) -> Result<Self> {
        if ranges.is_empty() || ranges.len() > MAX_MAP_RANGES {
            return Err(Error::InvalidArgument(format!(
                "a memory map lists 1 to {MAX_MAP_RANGES} ranges, not {}",
                ranges.len()
            )));
        }
        let mut out = Vec::with_capacity(ranges.len());
        for &(start, end) in ranges {
            if start % PAGE_SIZE as u64 != 0 || end % PAGE_SIZE as u64 != 0 || end <= start {
                return Err(Error::InvalidArgument(format!(
                    "memory map range {start:#x}-{end:#x}: start and end must be page-aligned (4 KiB) and end above start"
                )));
            }
            out.push(RamRange {
                gpa_page_start: start >> 12,
                page_count: (end - start) >> 12,
            });
        }
        let mut sorted = out.clone();
        sorted.sort_by_key(|r| r.gpa_page_start);
        if let Some(w) = sorted
            .windows(2)
            .find(|w| w[0].gpa_page_end() > w[1].gpa_page_start)
        {
            return Err(Error::InvalidArgument(format!(
                "memory map ranges {:#x}-{:#x} and {:#x}-{:#x} overlap",
                w[0].gpa_start(),
                w[0].gpa_end(),
                w[1].gpa_start(),
                w[1].gpa_end()
            )));
        }
        Ok(Self { ranges: out })
    }

    /// Parses `START-END[,START-END...]` (hexadecimal with `0x`, or decimal). END is
    /// exclusive when page-aligned and inclusive when it is the last byte of a page
    /// (`0x0-0x9ffff` and `0x0-0xa0000` are the same range).
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |what: &str| {
            Error::InvalidArgument(format!(
                "memory map \"{spec}\": {what} (expected START-END[,START-END...], e.g. 0x0-0x9ffff,0x100000-0xbfffffff)"
            ))
        };
        let mut ranges = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| bad(&format!("\"{part}\" has no '-'")))?;
            let start = parse_number(a).ok_or_else(|| bad(&format!("\"{a}\" is not a number")))?;
            let end = parse_number(b).ok_or_else(|| bad(&format!("\"{b}\" is not a number")))?;
            let end = if end % PAGE_SIZE as u64 == PAGE_SIZE as u64 - 1 {
                end.checked_add(1)
                    .ok_or_else(|| bad("address out of range"))?
            } else {
                end
            };
            ranges.push((start, end));
        }
        Self::new(&ranges)
    }

    /// Bytes the ranges hold together.
    pub fn bytes(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| r.page_count.saturating_mul(PAGE_SIZE as u64))
            .fold(0, u64::saturating_add)
    }
}

/// A number in hexadecimal (`0x...`) or decimal.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// How to read a raw image.
#[derive(Debug, Clone, Default)]
pub struct RawOptions {
    /// Which guest-physical ranges the file holds; `None`: the whole file from address 0.
    pub map: Option<MemoryMap>,
    /// The kernel's page-table root, when known; else roots are found by scanning memory.
    pub cr3: Option<u64>,
    /// The guest's paging mode; `None`: 64-bit (long mode).
    pub paging: Option<PagingMode>,
}

/// A raw physical memory image as a [`MemorySource`].
#[derive(Debug)]
pub struct RawImage {
    file: InputFile,
    /// RAM ranges sorted by address, each with its file offset.
    ranges: Vec<RamRange>,
    offsets: Vec<u64>,
    /// `(index into ranges, first page in range)` per chunk.
    chunks: Vec<(usize, u64)>,
    cpu: Vec<CpuState>,
    notes: Vec<String>,
}

impl RawImage {
    /// Opens the raw image at `path` (read-only).
    pub fn open(path: impl AsRef<Path>, opts: &RawOptions) -> Result<Self> {
        Self::from_input(InputFile::open(path.as_ref())?, opts)
    }

    /// A raw image read from `file`.
    pub fn from_input(file: InputFile, opts: &RawOptions) -> Result<Self> {
        let len = file.len();
        let mut notes = Vec::new();
        let stored: Vec<RamRange> = match &opts.map {
            Some(map) => {
                if map.bytes() > len {
                    return Err(vm2dmp_source::FileCtx::new(file.path()).corrupt(
                        "memory map",
                        len,
                        format!(
                            "the memory map describes {} bytes but the file ends at {len}",
                            map.bytes()
                        ),
                    ));
                }
                if map.bytes() < len {
                    notes.push(format!(
                        "the memory map covers {} of the file's {len} bytes: the rest is not read",
                        map.bytes()
                    ));
                }
                map.ranges.clone()
            }
            None => {
                let pages = len / PAGE_SIZE as u64;
                if pages == 0 {
                    return Err(vm2dmp_source::FileCtx::new(file.path())
                        .no_memory("the file is shorter than one page"));
                }
                if len % PAGE_SIZE as u64 != 0 {
                    notes.push(format!(
                        "the file's last {} bytes are not a whole page and are not read",
                        len % PAGE_SIZE as u64
                    ));
                }
                vec![RamRange {
                    gpa_page_start: 0,
                    page_count: pages,
                }]
            }
        };
        let mut with_offsets = Vec::with_capacity(stored.len());
        let mut offset = 0u64;
        for r in &stored {
            with_offsets.push((*r, offset));
            offset += r.page_count * PAGE_SIZE as u64;
        }
        with_offsets.sort_by_key(|(r, _)| r.gpa_page_start);
        let ranges: Vec<RamRange> = with_offsets.iter().map(|(r, _)| *r).collect();
        let offsets = with_offsets.iter().map(|(_, o)| *o).collect();
        let chunks = range_chunks(&ranges);
        let paging = opts.paging.unwrap_or(PagingMode::Long);
        notes.push(format!(
            "a raw image holds no processor state: kernel discovery assumes {} paging{}",
            match paging {
                PagingMode::Long => "64-bit (long mode)",
                PagingMode::Pae => "32-bit PAE",
                PagingMode::Bit32 => "32-bit",
            },
            match opts.cr3 {
                Some(cr3) => format!(" from CR3 {cr3:#x}"),
                None => " and finds page-table roots by scanning memory".into(),
            }
        ));
        Ok(Self {
            file,
            ranges,
            offsets,
            chunks,
            cpu: vec![assumed_cpu(paging, opts.cr3.unwrap_or(0))],
            notes,
        })
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn chunk(&self, n: usize) -> Option<(RamRange, u64, u64, usize)> {
        let &(i, first) = self.chunks.get(n)?;
        let r = *self.ranges.get(i)?;
        let pages = (r.page_count - first).min(MAX_CHUNK_PAGES as u64) as usize;
        let offset = self.offsets.get(i)? + first * PAGE_SIZE as u64;
        Some((r, first, offset, pages))
    }
}

/// The processor kernel discovery starts from: paging on in `paging` mode at root `cr3`.
fn assumed_cpu(paging: PagingMode, cr3: u64) -> CpuState {
    let (cr4, efer, cs_attributes) = match paging {
        PagingMode::Long => (0x20, 0xD01, 0x209B),
        PagingMode::Pae => (0x20, 0x800, 0xC09B),
        PagingMode::Bit32 => (0, 0, 0xC09B),
    };
    CpuState {
        index: 0,
        cr0: 0x8000_0011,
        cr3,
        cr4,
        efer,
        cs: SegmentRegister {
            selector: 0x10,
            attributes: cs_attributes,
            limit: u32::MAX,
            base: 0,
        },
        has_control: true,
        has_segments: true,
        ..CpuState::default()
    }
}

impl MemorySource for RawImage {
    fn files(&self) -> Vec<PathBuf> {
        vec![self.file.path().to_path_buf()]
    }

    fn ram_ranges(&self) -> &[RamRange] {
        &self.ranges
    }

    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        self.chunk(n)
            .map(|(r, first, _, pages)| {
                vec![ChunkSpan {
                    page_in_chunk: 0,
                    gpa_page: r.gpa_page_start + first,
                    pages,
                }]
            })
            .unwrap_or_default()
    }

    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> Result<PageMask> {
        let (_, _, offset, pages) = self
            .chunk(n)
            .ok_or_else(|| Error::InvalidArgument(format!("no chunk {n} in the raw image")))?;
        let dst = out
            .get_mut(..pages * PAGE_SIZE)
            .ok_or_else(|| Error::InvalidArgument("chunk buffer shorter than the chunk".into()))?;
        self.file.read_into(offset, dst, "memory page")?;
        Ok([0; MAX_CHUNK_PAGES / 64])
    }

    fn raw_chunk(&self, n: usize) -> Option<RawChunk<'_>> {
        let (_, _, offset, _) = self.chunk(n)?;
        Some(RawChunk {
            file: &self.file,
            offset,
        })
    }

    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa
                .checked_add(done as u64)
                .ok_or_else(|| Error::hole(u64::MAX))?;
            let i = self.ranges.partition_point(|r| r.gpa_start() <= addr);
            let Some(k) = i.checked_sub(1) else {
                return Err(Error::hole(addr));
            };
            let r = self.ranges[k];
            if addr >= r.gpa_end() {
                return Err(Error::hole(addr));
            }
            let n = ((r.gpa_end() - addr) as usize).min(buf.len() - done);
            let off = self.offsets[k] + (addr - r.gpa_start());
            self.file
                .read_into(off, &mut buf[done..done + n], "memory page")?;
            done += n;
        }
        Ok(())
    }

    fn vcpus(&self) -> &[CpuState] {
        &self.cpu
    }

    fn machine(&self) -> MachineInfo {
        MachineInfo {
            kind: KIND.into(),
            guest_bugcheck: None,
            boot_processor: Some(0),
            notes: self.notes.clone(),
            processors_from_kernel: true,
        }
    }
}
