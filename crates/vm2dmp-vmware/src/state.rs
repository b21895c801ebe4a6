//! [`VmwareState`]: a `.vmss` / `.vmsn` with its memory, as a [`MemorySource`].

use std::path::{Path, PathBuf};

use vm2dmp_source::{
    ChunkSpan, CpuState, Error, InputFile, MachineInfo, MemorySource, PageMask, RamRange, RawChunk,
    Result, MAX_CHUNK_PAGES, PAGE_SIZE,
};

use crate::cpu::read_vcpus;
use crate::format::{self, parse_container, read_tags};
use crate::memory::{self, Region};

/// [`MachineInfo::kind`] of a `.vmss`.
pub const KIND_SUSPENDED: &str = "VMware suspended state";
/// [`MachineInfo::kind`] of a `.vmsn`.
pub const KIND_SNAPSHOT: &str = "VMware snapshot";

/// True when `head` (the first bytes of a file, at least 4) starts with the magic of a VMware
/// checkpoint (`.vmss` / `.vmsn`).
pub fn is_vmware_state(head: &[u8]) -> bool {
    vm2dmp_source::le::u32(head, 0).is_some_and(|m| format::MAGICS.contains(&m))
}

/// Where guest RAM is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLocation {
    /// In the `.vmem` beside the state file, from its first byte.
    Vmem,
    /// In the state file, as the `Memory` tag's data starting at this offset.
    InState {
        /// Offset of the first byte of guest RAM in the state file.
        offset: u64,
    },
}

/// One chunk: up to [`MAX_CHUNK_PAGES`] pages of one region.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    gpa_page: u64,
    backing_page: u64,
    pages: u64,
}

/// An opened VMware suspended state (`.vmss`) or snapshot (`.vmsn`) and its memory.
///
/// `Sync`: guest memory can be read from several threads at once.
#[derive(Debug)]
pub struct VmwareState {
    state: InputFile,
    vmem: Option<InputFile>,
    location: MemoryLocation,
    magic: u32,
    snapshot: bool,
    regions: Vec<Region>,
    ram: Vec<RamRange>,
    chunks: Vec<Chunk>,
    vcpus: Vec<CpuState>,
    notes: Vec<String>,
}

impl VmwareState {
    /// Opens a `.vmss` or `.vmsn`; when its memory is not inside it, the `.vmem` beside it
    /// with the same stem ([`Error::MissingBin`] naming the state file and the name looked
    /// for when there is none).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// [`VmwareState::open`] with the memory file given (`None`: the `.vmem` beside the state
    /// file, when the state file does not hold the memory itself).
    pub fn open_with(path: impl AsRef<Path>, vmem: Option<&Path>) -> Result<Self> {
        let path = path.as_ref();
        let state = InputFile::open(path)?;
        let snapshot = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("vmsn"));
        Self::from_files(state, snapshot, |in_state| {
            if in_state && vmem.is_none() {
                return Ok(None);
            }
            let vmem_path = match vmem {
                Some(p) => p.to_path_buf(),
                None => {
                    vm2dmp_source::sibling_file(path, "vmem").ok_or_else(|| Error::MissingBin {
                        vsv: path.to_path_buf(),
                        tried: format!(
                            "{}.vmem",
                            path.file_stem().unwrap_or_default().to_string_lossy()
                        ),
                    })?
                }
            };
            InputFile::open(&vmem_path).map(Some)
        })
    }

    /// Reads a state held in memory, with its `.vmem` image when the memory is not inside it.
    /// `name` stands for the state file in messages (its extension `.vmsn` makes it a
    /// snapshot).
    pub fn from_bytes(name: &Path, state: Vec<u8>, vmem: Option<Vec<u8>>) -> Result<Self> {
        let snapshot = name
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vmsn"));
        let state = InputFile::from_bytes(name, state);
        Self::from_files(state, snapshot, |in_state| match vmem {
            Some(v) => Ok(Some(InputFile::from_bytes(&name.with_extension("vmem"), v))),
            None if in_state => Ok(None),
            None => Err(Error::MissingBin {
                vsv: name.to_path_buf(),
                tried: "an in-memory .vmem".into(),
            }),
        })
    }

    /// Parses `state`; `vmem(in_state)` gives the memory file (`in_state`: the state file
    /// holds the memory itself, a separate file is optional).
    fn from_files(
        state: InputFile,
        snapshot: bool,
        vmem: impl FnOnce(bool) -> Result<Option<InputFile>>,
    ) -> Result<Self> {
        let ctx = state.ctx.clone();
        let container = parse_container(&state)?;
        let mem_tags = match container.group("memory") {
            Some(g) => read_tags(&state, &container, g)?,
            None => Vec::new(),
        };
        let cpu_tags = match container.group("cpu") {
            Some(g) => read_tags(&state, &container, g)?,
            None => Vec::new(),
        };
        let mem_tag = memory::memory_tag(&mem_tags).filter(|t| t.data_len > 0);
        if let Some(t) = mem_tag {
            if t.compressed {
                return Err(ctx.unsupported(format!(
                    "the Memory tag at {:#x} holds compressed memory",
                    t.offset
                )));
            }
        }
        let vmem = vmem(mem_tag.is_some())?;
        let (location, backing_len, backing_name) = match (&vmem, mem_tag) {
            (Some(v), _) => (MemoryLocation::Vmem, v.len(), ".vmem"),
            (None, Some(t)) => (
                MemoryLocation::InState {
                    offset: t.data_offset,
                },
                t.data_len,
                "Memory tag's data",
            ),
            (None, None) => {
                return Err(ctx.no_memory("no Memory tag and no .vmem"));
            }
        };
        let mut notes = Vec::new();
        let regions = match memory::regions(&ctx, &mem_tags, backing_len, backing_name)? {
            Some(r) => r,
            None => {
                let pages = backing_len / PAGE_SIZE as u64;
                if backing_len % PAGE_SIZE as u64 != 0 {
                    notes.push(format!(
                        "the {backing_name} is {backing_len} bytes, not a whole number of pages: its last partial page is ignored"
                    ));
                }
                if pages == 0 {
                    Vec::new()
                } else {
                    vec![Region {
                        gpa_page: 0,
                        backing_page: 0,
                        pages,
                    }]
                }
            }
        };
        let (vcpus, cpu_notes) = read_vcpus(&ctx, &state, &cpu_tags)?;
        notes.extend(cpu_notes);
        let ram = regions
            .iter()
            .map(|r| RamRange {
                gpa_page_start: r.gpa_page,
                page_count: r.pages,
            })
            .collect();
        let mut chunks = Vec::new();
        for r in &regions {
            let mut done = 0;
            while done < r.pages {
                let pages = (r.pages - done).min(MAX_CHUNK_PAGES as u64);
                chunks.push(Chunk {
                    gpa_page: r.gpa_page + done,
                    backing_page: r.backing_page + done,
                    pages,
                });
                done += pages;
            }
        }
        Ok(Self {
            state,
            vmem,
            location,
            magic: container.magic,
            snapshot,
            regions,
            ram,
            chunks,
            vcpus,
            notes,
        })
    }

    /// The magic value of the state file.
    pub fn magic(&self) -> u32 {
        self.magic
    }

    /// Where guest RAM is stored.
    pub fn memory_location(&self) -> MemoryLocation {
        self.location
    }

    /// The memory regions: guest page, page in the memory backing, page count; sorted by
    /// guest page.
    pub fn regions(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.regions
            .iter()
            .map(|r| (r.gpa_page, r.backing_page, r.pages))
    }

    /// The file holding guest RAM and the offset of its page 0.
    fn backing(&self) -> (&InputFile, u64) {
        match self.location {
            MemoryLocation::Vmem => (self.vmem.as_ref().unwrap_or(&self.state), 0),
            MemoryLocation::InState { offset } => (&self.state, offset),
        }
    }

    /// Offset in the backing file of guest page `pfn`, if it is RAM.
    fn backing_offset(&self, pfn: u64) -> Option<u64> {
        let i = self.regions.partition_point(|r| r.gpa_page <= pfn);
        let r = self.regions.get(i.checked_sub(1)?)?;
        if pfn >= r.gpa_page + r.pages {
            return None;
        }
        Some(self.backing().1 + (r.backing_page + (pfn - r.gpa_page)) * PAGE_SIZE as u64)
    }
}

impl MemorySource for VmwareState {
    fn files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.state.path().to_path_buf()];
        if let Some(m) = &self.vmem {
            v.push(m.path().to_path_buf());
        }
        v
    }

    fn ram_ranges(&self) -> &[RamRange] {
        &self.ram
    }

    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        self.chunks
            .get(n)
            .map(|c| ChunkSpan {
                page_in_chunk: 0,
                gpa_page: c.gpa_page,
                pages: c.pages as usize,
            })
            .into_iter()
            .collect()
    }

    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> Result<PageMask> {
        let c = self.chunks.get(n).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "chunk {n} does not exist ({} chunks)",
                self.chunks.len()
            ))
        })?;
        let len = c.pages as usize * PAGE_SIZE;
        let given = out.len();
        let out = out.get_mut(..len).ok_or_else(|| {
            Error::InvalidArgument(format!("chunk {n} needs {len} bytes, got {given}"))
        })?;
        let (file, base) = self.backing();
        file.read_into(
            base + c.backing_page * PAGE_SIZE as u64,
            out,
            "guest memory",
        )?;
        Ok([0; 4])
    }

    fn raw_chunk(&self, n: usize) -> Option<RawChunk<'_>> {
        let c = self.chunks.get(n)?;
        let (file, base) = self.backing();
        Some(RawChunk {
            file,
            offset: base + c.backing_page * PAGE_SIZE as u64,
        })
    }

    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        let (file, _) = self.backing();
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa
                .checked_add(done as u64)
                .ok_or(Error::Hole { gpa: u64::MAX })?;
            let page = self
                .backing_offset(addr >> 12)
                .ok_or(Error::Hole { gpa: addr })?;
            let in_page = (addr & 0xFFF) as usize;
            let n = (PAGE_SIZE - in_page).min(buf.len() - done);
            file.read_into(
                page + in_page as u64,
                &mut buf[done..done + n],
                "guest memory",
            )?;
            done += n;
        }
        Ok(())
    }

    fn vcpus(&self) -> &[CpuState] {
        &self.vcpus
    }

    fn machine(&self) -> MachineInfo {
        MachineInfo {
            kind: if self.snapshot {
                KIND_SNAPSHOT
            } else {
                KIND_SUSPENDED
            }
            .into(),
            guest_bugcheck: None,
            boot_processor: (!self.vcpus.is_empty()).then_some(0),
            notes: self.notes.clone(),
            processors_from_kernel: false,
        }
    }
}
