//! A saved state opened for reading: files, memory map, RAM blocks and vCPU state.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vm2dmp_formats::memory::{BLOCK_SIZE, PAGES_PER_BLOCK, PAGE_SIZE};
use vm2dmp_source::{
    sibling_file, ChunkSpan, CpuState, Error, InputFile, MachineInfo, MemorySource, PageMask,
    RamRange, RawChunk, Result,
};

use crate::container::{open_container, parse_container, Container, ContainerFile};
use crate::hvs::ReplayLogStatus;
use crate::memory_map::{read_crash_msrs, read_memory_map, KeyFlavour, MemoryRange};
use crate::ram::{self, EncodingStats};
use crate::value::{Value, ValueType};
use crate::vcpu::{self, PartitionState, VtlState};

/// Largest `partition_state` value read (real ones hold about 12 KiB per vCPU).
const MAX_PARTITION_STATE: u64 = 64 << 20;
/// Decoded blocks kept for `read_phys`.
const CACHED_BLOCKS: usize = 8;

/// Which kind of saved state was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum InputFormat {
    /// Windows Server 2016 / Windows 10 and later: one `.vmrs` in the HVS container.
    #[cfg_attr(feature = "serde", serde(rename = "vmrs"))]
    Vmrs,
    /// Windows Server 2008 to 2012 R2 (configuration version 5.0): `.vsv` + `.bin` in the
    /// legacy 0x500 container.
    #[cfg_attr(feature = "serde", serde(rename = "vsv+bin"))]
    VsvBin,
}

/// Options for [`SavedState::open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The `.bin` of a `.vsv` (default: the file beside it with the same stem).
    pub bin: Option<PathBuf>,
    /// Read a dirty HVS file as it is, without replaying its pending log entries.
    pub no_replay: bool,
}

/// An opened Hyper-V saved state.
///
/// `Sync`: guest memory can be read from several threads at once.
pub struct SavedState {
    pub(crate) format: InputFormat,
    /// The `.vmrs`, or the `.vsv`.
    pub(crate) main: ContainerFile,
    /// The `.bin` of a `.vsv`.
    pub(crate) bin: Option<ContainerFile>,
    pub(crate) flavour: KeyFlavour,
    pub(crate) vm_version: Option<u32>,
    pub(crate) ranges: Vec<MemoryRange>,
    /// Indices into `ranges`, ordered by position in the saved RAM.
    pub(crate) by_raw: Vec<usize>,
    pub(crate) blocks: Vec<Value>,
    pub(crate) partition: PartitionState,
    /// `ranges` as the source-neutral RAM ranges.
    pub(crate) ram: Vec<RamRange>,
    /// `guest_crash_msrs`, when saved and not all zero.
    pub(crate) crash_msrs: Option<[u64; 5]>,
    pub(crate) cache: Mutex<Vec<(u64, Box<[u8]>)>>,
}

impl std::fmt::Debug for SavedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedState")
            .field("format", &self.format)
            .field("files", &self.files())
            .field("ranges", &self.ranges)
            .field("vps", &self.partition.vps.len())
            .finish()
    }
}

impl SavedState {
    /// Opens a `.vmrs`, or a `.vsv` (finding its `.bin` beside it), or a `.bin` (finding its
    /// `.vsv`). Files are recognised by their first bytes, not their names.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// [`SavedState::open`] with options.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let main = open_container(path, !opts.no_replay)?;
        match &main.container {
            Container::Hvs(_) => Self::from_files(InputFormat::Vmrs, main, None),
            Container::Legacy(l) => {
                if l.value("RamBlock/0/").is_some() && l.value("RamMemoryBlock/0/").is_none() {
                    // A .bin: find its .vsv.
                    let vsv = sibling_file(path, "vsv").ok_or_else(|| {
                        main.file.ctx.no_memory(
                            "this is the RAM file (.bin) of a saved state; its .vsv (memory map and vCPU state) was not found beside it",
                        )
                    })?;
                    let vsv = open_container(&vsv, false)?;
                    return Self::from_files(InputFormat::VsvBin, vsv, Some(main));
                }
                let bin_path = match &opts.bin {
                    Some(b) => b.clone(),
                    None => sibling_file(path, "bin").ok_or_else(|| Error::MissingBin {
                        vsv: path.to_path_buf(),
                        tried: format!(
                            "{}.bin",
                            path.file_stem().unwrap_or_default().to_string_lossy()
                        ),
                    })?,
                };
                let bin = open_container(&bin_path, false)?;
                if !matches!(bin.container, Container::Legacy(_)) {
                    return Err(bin.file.ctx.corrupt(
                        "file signature",
                        0,
                        "the memory file of a .vsv must use the legacy container",
                    ));
                }
                Self::from_files(InputFormat::VsvBin, main, Some(bin))
            }
        }
    }

    /// Reads a saved state held in memory: a `.vmrs` image alone, or a `.vsv` image with its
    /// `.bin` image. `name` stands for the file in error messages.
    pub fn from_bytes(name: &Path, main: Vec<u8>, bin: Option<Vec<u8>>) -> Result<Self> {
        let main = parse_container(InputFile::from_bytes(name, main), true)?;
        match (&main.container, bin) {
            (Container::Hvs(_), _) => Self::from_files(InputFormat::Vmrs, main, None),
            (Container::Legacy(_), Some(bin)) => {
                let bin = parse_container(
                    InputFile::from_bytes(&name.with_extension("bin"), bin),
                    false,
                )?;
                Self::from_files(InputFormat::VsvBin, main, Some(bin))
            }
            (Container::Legacy(_), None) => Err(Error::MissingBin {
                vsv: name.to_path_buf(),
                tried: "an in-memory .bin".into(),
            }),
        }
    }

    fn from_files(
        format: InputFormat,
        main: ContainerFile,
        bin: Option<ContainerFile>,
    ) -> Result<Self> {
        let ctx = main.file.ctx.clone();
        let vm_version = main
            .int("/savedstate/VmVersion")?
            .and_then(|v| u32::try_from(v).ok());
        if let Some(v) = vm_version {
            if v <= 0x100 {
                return Err(ctx.unsupported(format!("VM version {v:#x} (1.0 or older)")));
            }
        }
        let implied = match (&main.container, vm_version) {
            (Container::Hvs(_), Some(v)) if v <= 0x500 => KeyFlavour::Legacy,
            (Container::Hvs(_), _) => KeyFlavour::SavedState,
            (Container::Legacy(_), _) => KeyFlavour::Legacy,
        };
        let other = match implied {
            KeyFlavour::SavedState => KeyFlavour::Legacy,
            KeyFlavour::Legacy => KeyFlavour::SavedState,
        };
        let flavour = if main.value(&implied.memory_block(0))?.is_some() {
            implied
        } else if main.value(&other.memory_block(0))?.is_some() {
            other
        } else if main.value("/savedstate")?.is_none()
            && main.value("/configuration/properties/name")?.is_some()
        {
            return Err(ctx.no_memory(
                "it is a VM or checkpoint configuration (.vmcx), not a saved state; the memory of a saved VM or checkpoint is in the .vmrs beside it",
            ));
        } else {
            return Err(ctx.no_memory(
                "no RamMemoryBlock0 key (a running VM's state, a production checkpoint or a checkpoint of a stopped VM)",
            ));
        };
        let ps_key = flavour.saved_vm("partition_state");
        let ps_value = main.value(&ps_key)?.ok_or_else(|| {
            ctx.no_memory(format!("no {ps_key} key (no vCPU state in this file)"))
        })?;
        if ps_value.ty != ValueType::Binary {
            return Err(ctx.corrupt(
                "partition_state",
                ps_value.entry_offset,
                "value is not binary",
            ));
        }
        if ps_value.len > MAX_PARTITION_STATE {
            return Err(ctx.corrupt(
                "partition_state",
                ps_value.offset,
                format!(
                    "{} bytes, more than the {MAX_PARTITION_STATE} this reader accepts",
                    ps_value.len
                ),
            ));
        }
        let ps_bytes = main.bytes(&ps_value, "partition_state")?;
        let partition = vcpu::parse(&ctx, &ps_bytes, ps_value.offset)?;
        drop(ps_bytes);

        let ranges = read_memory_map(&main, flavour)?;
        let mem = bin.as_ref().unwrap_or(&main);
        let mut blocks = Vec::new();
        loop {
            let key = flavour.ram_block(blocks.len() as u64);
            match mem.value(&key)? {
                Some(v) if v.ty == ValueType::Binary => blocks.push(v),
                Some(v) => {
                    return Err(mem.file.ctx.corrupt(
                        "RAM block",
                        v.entry_offset,
                        format!("{key} is not a binary value"),
                    ))
                }
                None => break,
            }
        }
        for (n, b) in blocks.iter().enumerate() {
            if b.len > BLOCK_SIZE as u64 {
                return Err(mem.file.ctx.corrupt(
                    "RAM block",
                    b.offset,
                    format!("RamBlock{n} is {} bytes, more than 1 MiB", b.len),
                ));
            }
        }
        let raw_pages = blocks.len() as u64 * PAGES_PER_BLOCK as u64;
        for r in &ranges {
            if r.raw_page_start + r.page_count > raw_pages {
                return Err(mem.file.ctx.no_memory(format!(
                    "the memory map needs RAM block {} but the file has {} blocks",
                    (r.raw_page_start + r.page_count - 1) / PAGES_PER_BLOCK as u64,
                    blocks.len()
                )));
            }
        }
        let crash_msrs = read_crash_msrs(&main, flavour)?;
        Ok(Self {
            format,
            ram: ranges
                .iter()
                .map(|r| RamRange {
                    gpa_page_start: r.gpa_page_start,
                    page_count: r.page_count,
                })
                .collect(),
            crash_msrs,
            main,
            bin,
            flavour,
            vm_version,
            by_raw: {
                let mut v: Vec<usize> = (0..ranges.len()).collect();
                v.sort_by_key(|&i| ranges[i].raw_page_start);
                v
            },
            ranges,
            blocks,
            partition,
            cache: Mutex::new(Vec::new()),
        })
    }

    /// The files this state was read from (`.vmrs`, or `.vsv` then `.bin`).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.main.file.path().to_path_buf()];
        if let Some(b) = &self.bin {
            v.push(b.file.path().to_path_buf());
        }
        v
    }

    /// Which kind of saved state this is.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// Guest RAM ranges, sorted by address, not overlapping.
    pub fn memory_ranges(&self) -> &[MemoryRange] {
        &self.ranges
    }

    /// Total guest RAM in pages.
    pub fn ram_pages(&self) -> u64 {
        self.ranges.iter().map(|r| r.page_count).sum()
    }

    /// Number of stored 1 MiB RAM blocks.
    pub fn ram_block_count(&self) -> usize {
        self.blocks.len()
    }

    /// VTL-0 registers of each vCPU, by index.
    pub fn vcpus(&self) -> &[CpuState] {
        &self.partition.vps
    }

    /// Register sets of higher virtual trust levels (VBS guests), if saved.
    pub fn higher_vtl_vcpus(&self) -> &[VtlState] {
        &self.partition.higher_vtls
    }

    /// The boot vCPU (from VP_INDICES, else the lowest index).
    pub fn boot_vcpu(&self) -> &CpuState {
        let boot = self.partition.boot_vp;
        self.partition
            .vps
            .iter()
            .find(|v| Some(v.index) == boot)
            .unwrap_or(&self.partition.vps[0])
    }

    /// Everything read from `partition_state` (vCPUs, boot VP, vendor...).
    pub fn partition_state(&self) -> &PartitionState {
        &self.partition
    }

    /// HVS replay-log status (always clean for the legacy container).
    pub fn replay_log(&self) -> ReplayLogStatus {
        match &self.main.container {
            Container::Hvs(h) => h.replay,
            Container::Legacy(_) => ReplayLogStatus::default(),
        }
    }

    fn mem_file(&self) -> &ContainerFile {
        self.bin.as_ref().unwrap_or(&self.main)
    }

    /// For a RAM block stored raw (its value is exactly the 256 pages), the file holding it
    /// and the offset of its first page.
    fn raw_block_at(&self, n: usize) -> Option<(&InputFile, u64)> {
        let v = self.blocks.get(n)?;
        (v.len == BLOCK_SIZE as u64).then(|| (&self.mem_file().file, v.offset))
    }

    /// The stored bytes of RAM block `n`.
    pub(crate) fn block_data(&self, n: usize) -> Result<Cow<'_, [u8]>> {
        let v = self.blocks.get(n).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "RAM block {n} does not exist ({} blocks)",
                self.blocks.len()
            ))
        })?;
        self.mem_file().bytes(v, "RAM block")
    }

    fn token_error(&self, n: usize, e: ram::TokenError) -> Error {
        let base = self.blocks.get(n).map_or(0, |v| v.offset);
        self.mem_file().file.ctx.corrupt(
            "RAM block token stream",
            base + e.offset as u64,
            format!("RamBlock{n}: {}", e.detail),
        )
    }

    /// Decodes RAM block `n` (1 MiB) into `out`, returning how its pages were stored.
    pub fn decode_block(&self, n: usize, out: &mut [u8]) -> Result<EncodingStats> {
        let data = self.block_data(n)?;
        let mut stats = EncodingStats::default();
        ram::decode_block(&data, out, &mut stats).map_err(|e| self.token_error(n, e))?;
        Ok(stats)
    }

    /// [`SavedState::decode_block`] that also says which pages came from zero-fill tokens.
    /// A raw block is read straight into `out`.
    fn decode_block_masked(&self, n: usize, out: &mut [u8]) -> Result<PageMask> {
        let given = out.len();
        let out = out.get_mut(..BLOCK_SIZE).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a RAM block needs a {BLOCK_SIZE}-byte buffer, got {given}"
            ))
        })?;
        if let Some((file, offset)) = self.raw_block_at(n) {
            file.read_into(offset, out, "RAM block")?;
            return Ok([0; 4]);
        }
        let data = self.block_data(n)?;
        let mut stats = EncodingStats::default();
        ram::decode_block_masked(&data, out, &mut stats).map_err(|e| self.token_error(n, e))
    }

    /// Pages of RAM block `n` known to be all zero without decompressing anything.
    fn zero_pages_of(&self, n: usize) -> Result<PageMask> {
        let data = self.block_data(n)?;
        ram::zero_pages(&data).map_err(|e| self.token_error(n, e))
    }

    /// How the pages of every RAM block are stored (walks the token streams; decompresses
    /// nothing).
    pub fn encoding_stats(&self) -> Result<EncodingStats> {
        let mut total = EncodingStats::default();
        for n in 0..self.blocks.len() {
            let data = self.block_data(n)?;
            let s = ram::block_stats(&data).map_err(|e| self.token_error(n, e))?;
            total.add(&s);
        }
        Ok(total)
    }

    /// The range holding guest page `pfn`, if any.
    pub fn memory_range_of(&self, pfn: u64) -> Option<&MemoryRange> {
        let i = self.ranges.partition_point(|r| r.gpa_page_start <= pfn);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (pfn < r.gpa_page_end()).then_some(r)
    }

    /// Offset of guest-physical address `gpa` in the raw saved memory (the concatenated RAM
    /// blocks), or `None` in a hole.
    pub fn gpa_to_raw_offset(&self, gpa: u64) -> Option<u64> {
        let pfn = gpa >> 12;
        let r = self.memory_range_of(pfn)?;
        Some(((r.raw_page_start + (pfn - r.gpa_page_start)) << 12) | (gpa & 0xFFF))
    }

    /// Reads guest-physical memory. Crosses page and block boundaries; a byte in a hole gives
    /// [`Error::Hole`] with the first such address.
    pub fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa
                .checked_add(done as u64)
                .ok_or(Error::Hole { gpa: u64::MAX })?;
            let raw = self
                .gpa_to_raw_offset(addr)
                .ok_or(Error::Hole { gpa: addr })?;
            let in_page = (addr & 0xFFF) as usize;
            let n = (PAGE_SIZE - in_page).min(buf.len() - done);
            let block = raw / BLOCK_SIZE as u64;
            let in_block = (raw % BLOCK_SIZE as u64) as usize;
            self.with_block(block, |b| {
                buf[done..done + n].copy_from_slice(&b[in_block..in_block + n])
            })?;
            done += n;
        }
        Ok(())
    }

    /// Runs `f` on decoded block `n`, decoding it into the small cache if needed.
    fn with_block<R>(&self, n: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = cache.iter().position(|(b, _)| *b == n) {
                let entry = cache.remove(i);
                let r = f(&entry.1);
                cache.push(entry);
                return Ok(r);
            }
        }
        let mut buf = vec![0u8; BLOCK_SIZE].into_boxed_slice();
        self.decode_block(n as usize, &mut buf)?;
        let r = f(&buf);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED_BLOCKS {
            cache.remove(0);
        }
        cache.push((n, buf));
        Ok(r)
    }

    /// Where the pages of RAM block `n` go in guest-physical memory: `(first page in block,
    /// first guest page, count)` spans, ascending.
    pub fn block_spans(&self, n: usize) -> Vec<ChunkSpan> {
        let first = n as u64 * PAGES_PER_BLOCK as u64;
        let last = first + PAGES_PER_BLOCK as u64;
        let mut v = Vec::new();
        // Ranges do not overlap in the saved RAM: the ones touching this block are adjacent in
        // raw order, found by binary search.
        let start = self.by_raw.partition_point(|&i| {
            self.ranges[i].raw_page_start + self.ranges[i].page_count <= first
        });
        for r in self.by_raw[start..]
            .iter()
            .map(|&i| &self.ranges[i])
            .take_while(|r| r.raw_page_start < last)
        {
            let s = r.raw_page_start.max(first);
            let e = (r.raw_page_start + r.page_count).min(last);
            if s < e {
                v.push(ChunkSpan {
                    page_in_chunk: (s - first) as usize,
                    gpa_page: r.gpa_page_start + (s - r.raw_page_start),
                    pages: (e - s) as usize,
                });
            }
        }
        v.sort_by_key(|s| s.page_in_chunk);
        v
    }
}

/// What [`MachineInfo::kind`] says of every Hyper-V saved state.
pub const KIND: &str = "Hyper-V saved state";

impl MemorySource for SavedState {
    fn files(&self) -> Vec<PathBuf> {
        SavedState::files(self)
    }

    fn ram_ranges(&self) -> &[RamRange] {
        &self.ram
    }

    fn chunk_count(&self) -> usize {
        self.blocks.len()
    }

    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        self.block_spans(n)
    }

    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> Result<PageMask> {
        self.decode_block_masked(n, out)
    }

    fn raw_chunk(&self, n: usize) -> Option<RawChunk<'_>> {
        self.raw_block_at(n)
            .map(|(file, offset)| RawChunk { file, offset })
    }

    fn zero_pages(&self, n: usize) -> Result<PageMask> {
        self.zero_pages_of(n)
    }

    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        SavedState::read_phys(self, gpa, buf)
    }

    fn vcpus(&self) -> &[CpuState] {
        &self.partition.vps
    }

    fn machine(&self) -> MachineInfo {
        MachineInfo {
            kind: KIND.into(),
            guest_bugcheck: self
                .crash_msrs
                .filter(|m| m[0] != 0 && m[0] <= u64::from(u32::MAX))
                .map(|m| (m[0] as u32, [m[1], m[2], m[3], m[4]])),
            boot_processor: self.partition.boot_vp,
            notes: Vec::new(),
            processors_from_kernel: false,
        }
    }
}
