//! ELF core files of a whole guest, as QEMU's `dump-guest-memory` (without `-z/-l/-s`),
//! `virsh dump --memory-only --format=elf` and VirtualBox's `debugvm dumpvmcore` write them.
//!
//! # Layout read
//! - The ELF header (`e_ident` `\x7fELF`, class 1 = ELF32 / 2 = ELF64, data 1 = little-endian;
//!   `e_type` 4 = ET_CORE; `e_machine` 3 = EM_386 or 62 = EM_X86_64). ELF64 header: `e_phoff`
//!   at 32, `e_shoff` 40, `e_phentsize` 54, `e_phnum` 56, `e_shentsize` 58. ELF32: `e_phoff`
//!   28, `e_shoff` 32, `e_phentsize` 42, `e_phnum` 44, `e_shentsize` 46. `e_ehsize` is not
//!   trusted (QEMU 7.2 writes 8).
//! - When `e_phnum` is 0xFFFF (PN_XNUM) the count is `sh_info` of section header 0 (byte 44
//!   of an ELF64 section header, 28 of an ELF32 one).
//! - Program headers: ELF64 `p_type` 0, `p_offset` 8, `p_vaddr` 16, `p_paddr` 24, `p_filesz`
//!   32, `p_memsz` 40 (56 bytes); ELF32 `p_type` 0, `p_offset` 4, `p_vaddr` 8, `p_paddr` 12,
//!   `p_filesz` 16, `p_memsz` 20 (32 bytes). `e_phentsize` may be larger (the extra bytes are
//!   skipped), not smaller.
//! - Guest RAM is the PT_LOAD (1) segments by `p_paddr`, the guest-physical address (`p_vaddr`
//!   is a guest-virtual address in QEMU's paging dumps and 0 otherwise). Bytes past `p_filesz`
//!   up to `p_memsz` read as zero, unless another segment stores them (QEMU clamps a paging
//!   dump's mapping to the RAM block it starts in). Segments must start on a page boundary
//!   (QEMU's and VirtualBox's do); one ending inside a page is rounded up with zeros. Where
//!   segments overlap in guest-physical memory (`dump-guest-memory -p` writes one per virtual
//!   mapping) the first one storing a page gives its bytes. A segment storing no bytes is not
//!   RAM: VirtualBox writes its MMIO ranges so, and QEMU writes mappings it does not store
//!   (MMIO, outside a `begin`/`length` filter) with `p_offset` -1 and `p_filesz` 0.
//! - Processor state comes from the PT_NOTE (4) segments, see [`crate::notes`].
//!
//! Every offset and size is checked against the file's length with checked arithmetic before
//! it is used; nothing is allocated for a header field the file's length does not back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vm2dmp_source::le;
use vm2dmp_source::{
    ChunkSpan, CpuState, Error, InputFile, MachineInfo, MemorySource, PageMask, RamRange, RawChunk,
    Result, MAX_CHUNK_PAGES, PAGE_SIZE,
};

use crate::notes::{self, Producer};

/// `e_type` of a core file.
pub const ET_CORE: u16 = 4;
/// `e_machine` of 32-bit x86.
pub const EM_386: u16 = 3;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `p_type` of a loadable segment (guest memory).
pub const PT_LOAD: u32 = 1;
/// `p_type` of a note segment.
pub const PT_NOTE: u32 = 4;
/// `e_phnum` meaning "the count is in section header 0".
pub const PN_XNUM: u16 = 0xFFFF;
/// Most program headers read (QEMU writes one per RAM block or virtual mapping).
pub const MAX_PROGRAM_HEADERS: u64 = 1 << 20;
/// Guest-physical addresses stop here: x86 physical addresses have at most 52 bits.
pub const MAX_GPA: u64 = 1 << 52;

const PAGE: u64 = PAGE_SIZE as u64;
const CHUNK: u64 = MAX_CHUNK_PAGES as u64;

/// ELF file class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfClass {
    /// ELFCLASS32: 32-bit offsets and addresses (QEMU writes it for a 32-bit guest with no
    /// RAM above 4 GiB).
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

impl ElfClass {
    fn header_size(self) -> u64 {
        match self {
            ElfClass::Elf32 => 52,
            ElfClass::Elf64 => 64,
        }
    }
    fn phdr_size(self) -> u64 {
        match self {
            ElfClass::Elf32 => 32,
            ElfClass::Elf64 => 56,
        }
    }
    fn shdr_size(self) -> u64 {
        match self {
            ElfClass::Elf32 => 40,
            ElfClass::Elf64 => 64,
        }
    }
}

/// One PT_LOAD program header as the file has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// File offset of the program header.
    pub header_offset: u64,
    /// `p_paddr`: guest-physical address of the first byte.
    pub paddr: u64,
    /// `p_vaddr`: guest-virtual address (QEMU's paging dumps), else usually 0.
    pub vaddr: u64,
    /// `p_offset`: file offset of the bytes.
    pub offset: u64,
    /// `p_filesz`: bytes stored in the file.
    pub filesz: u64,
    /// `p_memsz`: bytes of guest memory the segment spans.
    pub memsz: u64,
}

/// True when `head`, the first bytes of a file (at least 20), is a little-endian x86 or
/// x86-64 ELF core file.
pub fn is_elf(head: &[u8]) -> bool {
    head.get(..4) == Some(b"\x7fELF".as_slice())
        && matches!(le::u8(head, 4), Some(1 | 2))
        && le::u8(head, 5) == Some(1)
        && le::u16(head, 16) == Some(ET_CORE)
        && matches!(le::u16(head, 18), Some(EM_386 | EM_X86_64))
}

/// A run of guest pages stored one after another in the file (or not at all, past
/// `file_bytes`), part of one PT_LOAD segment.
#[derive(Debug, Clone, Copy)]
struct Extent {
    gpa_page: u64,
    pages: u64,
    /// File offset of the first page.
    file_offset: u64,
    /// Bytes of the extent stored in the file from its first page; the rest reads as zero.
    file_bytes: u64,
    /// Number of the extent's first chunk.
    first_chunk: u64,
}

impl Extent {
    fn chunks(&self) -> u64 {
        self.pages.div_ceil(CHUNK)
    }
}

/// The ELF header fields used.
struct Header {
    class: ElfClass,
    machine: u16,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
}

/// An ELF core file of a guest as a [`MemorySource`].
#[derive(Debug)]
pub struct ElfCore {
    file: InputFile,
    class: ElfClass,
    machine: u16,
    loads: Vec<LoadSegment>,
    extents: Vec<Extent>,
    ranges: Vec<RamRange>,
    chunk_count: usize,
    cpus: Vec<CpuState>,
    producer: Producer,
    notes: Vec<String>,
}

impl ElfCore {
    /// Opens and reads the ELF core at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_input(InputFile::open(path)?)
    }

    /// Reads an ELF core from an already opened (or in-memory) input.
    pub fn from_input(file: InputFile) -> Result<Self> {
        let ctx = file.ctx.clone();
        let header = read_header(&file)?;
        let table = file.bytes(
            header.phoff,
            header.phnum.saturating_mul(header.phentsize),
            "ELF program header table",
        )?;
        let mut loads = Vec::new();
        let mut note_segments = Vec::new();
        for i in 0..header.phnum {
            // In bounds: the table was read whole.
            let at = i * header.phentsize;
            let header_offset = header.phoff + at;
            let entry = table
                .get(at as usize..(at + header.class.phdr_size()) as usize)
                .unwrap_or(&[]);
            let p = program_header(header.class, entry, header_offset);
            match le::u32(entry, 0) {
                Some(PT_LOAD) => {
                    check_load(&file, &p)?;
                    loads.push(p);
                }
                Some(PT_NOTE) => {
                    let end = p.offset.checked_add(p.filesz).filter(|&e| e <= file.len());
                    if end.is_none() {
                        return Err(ctx.corrupt(
                            "PT_NOTE program header",
                            header_offset,
                            format!(
                                "notes at offset {:#x}, {} bytes, run past the end of the file ({} bytes)",
                                p.offset,
                                p.filesz,
                                file.len()
                            ),
                        ));
                    }
                    note_segments.push((p.offset, p.filesz));
                }
                _ => {}
            }
        }
        drop(table);

        let blocks = note_segments
            .iter()
            .map(|&(offset, len)| Ok((offset, file.bytes(offset, len, "PT_NOTE segment")?)))
            .collect::<Result<Vec<_>>>()?;
        let mut all_notes = Vec::new();
        for (offset, bytes) in &blocks {
            all_notes.extend(notes::parse(&ctx, *offset, bytes)?);
        }
        let processors = notes::processors(&ctx, &all_notes)?;
        drop(all_notes);
        drop(blocks);

        let mut notes = Vec::new();
        let extents = lay_out(&loads, &mut notes);
        if extents.is_empty() {
            return Err(ctx.no_memory("no PT_LOAD segment holds guest memory"));
        }
        let chunk_count = extents
            .last()
            .map_or(0, |e| e.first_chunk.saturating_add(e.chunks()));
        let chunk_count = usize::try_from(chunk_count)
            .map_err(|_| ctx.unsupported("more chunks than this platform can count"))?;
        let ranges = merge_ranges(&extents);
        notes.extend(processors.notes);
        Ok(Self {
            file,
            class: header.class,
            machine: header.machine,
            loads,
            extents,
            ranges,
            chunk_count,
            cpus: processors.cpus,
            producer: processors.producer,
            notes,
        })
    }

    /// The ELF class.
    pub fn class(&self) -> ElfClass {
        self.class
    }

    /// `e_machine`: [`EM_386`] or [`EM_X86_64`].
    pub fn e_machine(&self) -> u16 {
        self.machine
    }

    /// The PT_LOAD program headers, in file order.
    pub fn load_segments(&self) -> &[LoadSegment] {
        &self.loads
    }

    /// Who wrote the processor notes.
    pub fn producer(&self) -> Producer {
        self.producer
    }

    /// The input file.
    pub fn input(&self) -> &InputFile {
        &self.file
    }

    /// The extent holding guest page `pfn`.
    fn extent_of_page(&self, pfn: u64) -> Option<&Extent> {
        let i = self.extents.partition_point(|e| e.gpa_page <= pfn);
        let e = self.extents.get(i.checked_sub(1)?)?;
        (pfn - e.gpa_page < e.pages).then_some(e)
    }

    /// Chunk `n`: its extent, first page within the extent and page count.
    fn chunk(&self, n: usize) -> Option<(&Extent, u64, u64)> {
        let n = n as u64;
        let i = self.extents.partition_point(|e| e.first_chunk <= n);
        let e = self.extents.get(i.checked_sub(1)?)?;
        let start = (n - e.first_chunk).checked_mul(CHUNK)?;
        (start < e.pages).then(|| (e, start, (e.pages - start).min(CHUNK)))
    }

    fn no_chunk(&self, n: usize) -> Error {
        Error::InvalidArgument(format!(
            "chunk {n} does not exist ({} chunks)",
            self.chunk_count
        ))
    }
}

/// The ELF header, validated.
fn read_header(file: &InputFile) -> Result<Header> {
    let ctx = &file.ctx;
    let ident = file.bytes(0, file.len().min(16), "ELF header")?;
    if ident.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ctx.corrupt("ELF header", 0, "no ELF magic (7f 45 4c 46)"));
    }
    let class = match le::u8(&ident, 4) {
        Some(1) => ElfClass::Elf32,
        Some(2) => ElfClass::Elf64,
        c => {
            return Err(ctx.corrupt(
                "ELF header",
                4,
                format!("class {c:?} is neither ELF32 (1) nor ELF64 (2)"),
            ))
        }
    };
    match le::u8(&ident, 5) {
        Some(1) => {}
        Some(2) => return Err(ctx.unsupported("big-endian ELF file (x86 cores are little-endian)")),
        d => {
            return Err(ctx.corrupt(
                "ELF header",
                5,
                format!("data encoding {d:?} is neither little- (1) nor big-endian (2)"),
            ))
        }
    }
    let h = file.bytes(0, class.header_size(), "ELF header")?;
    let e_type = le::u16(&h, 16).unwrap_or(0);
    if e_type != ET_CORE {
        return Err(ctx.unsupported(format!("ELF type {e_type} is not a core file (ET_CORE, 4)")));
    }
    let machine = le::u16(&h, 18).unwrap_or(0);
    if !matches!(machine, EM_386 | EM_X86_64) {
        return Err(ctx.unsupported(format!(
            "ELF machine {machine} is neither x86 (3) nor x86-64 (62)"
        )));
    }
    let (phoff, shoff, phentsize, phnum, shentsize) = match class {
        ElfClass::Elf64 => (
            le::u64(&h, 32),
            le::u64(&h, 40),
            le::u16(&h, 54),
            le::u16(&h, 56),
            le::u16(&h, 58),
        ),
        ElfClass::Elf32 => (
            le::u32(&h, 28).map(u64::from),
            le::u32(&h, 32).map(u64::from),
            le::u16(&h, 42),
            le::u16(&h, 44),
            le::u16(&h, 46),
        ),
    };
    let (phoff, shoff) = (phoff.unwrap_or(0), shoff.unwrap_or(0));
    let phentsize = u64::from(phentsize.unwrap_or(0));
    let phnum_field = phnum.unwrap_or(0);
    let phnum = if phnum_field == PN_XNUM {
        let shentsize = u64::from(shentsize.unwrap_or(0));
        if shoff == 0 || shentsize < class.shdr_size() {
            return Err(ctx.corrupt(
                "ELF header",
                0,
                format!(
                    "e_phnum is PN_XNUM but there is no section header 0 to hold the count (e_shoff {shoff:#x}, e_shentsize {shentsize})"
                ),
            ));
        }
        let sh = file.bytes(shoff, class.shdr_size(), "ELF section header 0")?;
        let info_at = match class {
            ElfClass::Elf64 => 44,
            ElfClass::Elf32 => 28,
        };
        u64::from(le::u32(&sh, info_at).unwrap_or(0))
    } else {
        u64::from(phnum_field)
    };
    if phnum > MAX_PROGRAM_HEADERS {
        return Err(ctx.corrupt(
            "ELF header",
            0,
            format!("{phnum} program headers, more than the {MAX_PROGRAM_HEADERS} read"),
        ));
    }
    if phnum > 0 && phentsize < class.phdr_size() {
        return Err(ctx.corrupt(
            "ELF header",
            0,
            format!(
                "e_phentsize {phentsize} is smaller than a program header ({})",
                class.phdr_size()
            ),
        ));
    }
    if phoff
        .checked_add(phnum * phentsize)
        .is_none_or(|e| e > file.len())
    {
        return Err(ctx.corrupt(
            "ELF program header table",
            phoff,
            format!(
                "{phnum} program headers of {phentsize} bytes run past the end of the file ({} bytes)",
                file.len()
            ),
        ));
    }
    Ok(Header {
        class,
        machine,
        phoff,
        phentsize,
        phnum,
    })
}

/// The fields of a program header (`entry`, at least the class's size).
fn program_header(class: ElfClass, entry: &[u8], header_offset: u64) -> LoadSegment {
    let q = |off| le::u64(entry, off).unwrap_or(0);
    let d = |off| u64::from(le::u32(entry, off).unwrap_or(0));
    match class {
        ElfClass::Elf64 => LoadSegment {
            header_offset,
            offset: q(8),
            vaddr: q(16),
            paddr: q(24),
            filesz: q(32),
            memsz: q(40),
        },
        ElfClass::Elf32 => LoadSegment {
            header_offset,
            offset: d(4),
            vaddr: d(8),
            paddr: d(12),
            filesz: d(16),
            memsz: d(20),
        },
    }
}

/// Checks a PT_LOAD against the file and the guest-physical address space.
fn check_load(file: &InputFile, p: &LoadSegment) -> Result<()> {
    let ctx = &file.ctx;
    let at = p.header_offset;
    if p.filesz > p.memsz {
        return Err(ctx.corrupt(
            "PT_LOAD program header",
            at,
            format!(
                "p_filesz {:#x} is larger than p_memsz {:#x}",
                p.filesz, p.memsz
            ),
        ));
    }
    // QEMU writes p_offset -1 with p_filesz 0 for a mapping it does not store.
    if p.filesz > 0
        && p.offset
            .checked_add(p.filesz)
            .is_none_or(|e| e > file.len())
    {
        return Err(ctx.corrupt(
            "PT_LOAD program header",
            at,
            format!(
                "segment at offset {:#x}, {:#x} bytes, runs past the end of the file ({:#x} bytes)",
                p.offset,
                p.filesz,
                file.len()
            ),
        ));
    }
    if p.paddr.checked_add(p.memsz).is_none_or(|e| e > MAX_GPA) {
        return Err(ctx.corrupt(
            "PT_LOAD program header",
            at,
            format!(
                "guest-physical range {:#x} + {:#x} goes past {MAX_GPA:#x} (52-bit physical addresses)",
                p.paddr, p.memsz
            ),
        ));
    }
    if p.memsz > 0 && p.paddr % PAGE != 0 {
        return Err(ctx.unsupported(format!(
            "PT_LOAD program header at offset {at:#x}: guest-physical address {:#x} is not page-aligned",
            p.paddr
        )));
    }
    Ok(())
}

/// Guest pages `[start, end)` not in `covered` (disjoint, sorted page intervals).
fn uncovered(covered: &BTreeMap<u64, u64>, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut cur = start;
    let from = covered
        .range(..=start)
        .next_back()
        .map_or(start, |(&s, _)| s);
    for (&s, &e) in covered.range(from..end) {
        if e <= cur {
            continue;
        }
        if s > cur {
            gaps.push((cur, s));
        }
        cur = e;
        if cur >= end {
            break;
        }
    }
    if cur < end {
        gaps.push((cur, end));
    }
    gaps
}

/// Adds `[start, end)` to `covered`, merging what it touches.
fn cover(covered: &mut BTreeMap<u64, u64>, start: u64, end: u64) {
    let touching: Vec<u64> = covered
        .range(..=end)
        .rev()
        .take_while(|(_, &e)| e >= start)
        .map(|(&s, _)| s)
        .collect();
    let (mut s, mut e) = (start, end);
    for k in touching {
        if let Some(ke) = covered.remove(&k) {
            s = s.min(k);
            e = e.max(ke);
        }
    }
    covered.insert(s, e);
}

/// The extents of guest memory, sorted by address, numbered into chunks; what was decided on
/// the way goes to `notes`.
///
/// Stored pages are placed first, the first segment storing a page winning; pages a segment
/// spans past its stored bytes (`p_filesz < p_memsz`) are zero only where no segment stores
/// them: QEMU clamps a paging dump's mapping to the RAM block it starts in, and the rest may
/// be stored by another segment. A segment storing nothing is not RAM: VirtualBox writes MMIO
/// ranges so, QEMU mappings of MMIO or outside a dump's filter (with `p_offset` -1).
fn lay_out(loads: &[LoadSegment], notes: &mut Vec<String>) -> Vec<Extent> {
    let mut covered = BTreeMap::new();
    let mut extents = Vec::new();
    let mut overlapping = vec![false; loads.len()];
    let (mut short, mut ragged, mut empty) = (0usize, 0usize, 0usize);
    for p in loads {
        if p.memsz == 0 {
            continue;
        }
        if p.filesz == 0 {
            empty += 1;
            continue;
        }
        if p.filesz < p.memsz {
            short += 1;
        }
        if p.memsz % PAGE != 0 {
            ragged += 1;
        }
    }
    for stored in [true, false] {
        for (i, p) in loads.iter().enumerate() {
            if p.filesz == 0 {
                continue;
            }
            // check_load: paddr is page-aligned, paddr + memsz <= MAX_GPA, filesz <= memsz.
            let first = p.paddr / PAGE;
            let stored_end = first + p.filesz.div_ceil(PAGE);
            let (start, end) = if stored {
                (first, stored_end)
            } else {
                (stored_end, first + p.memsz.div_ceil(PAGE))
            };
            if start >= end {
                continue;
            }
            let gaps = uncovered(&covered, start, end);
            if gaps != [(start, end)] {
                overlapping[i] = true;
            }
            for (s, e) in gaps {
                let rel = (s - first) * PAGE;
                let file_bytes = p.filesz.saturating_sub(rel).min((e - s) * PAGE);
                extents.push(Extent {
                    gpa_page: s,
                    pages: e - s,
                    file_offset: if file_bytes > 0 { p.offset + rel } else { 0 },
                    file_bytes,
                    first_chunk: 0,
                });
            }
            cover(&mut covered, start, end);
        }
    }
    extents.sort_by_key(|e| e.gpa_page);
    let mut next = 0u64;
    for e in &mut extents {
        e.first_chunk = next;
        next = next.saturating_add(e.chunks());
    }
    let overlapping = overlapping.iter().filter(|&&o| o).count();
    if overlapping > 0 {
        notes.push(format!(
            "{overlapping} PT_LOAD segments overlap others in guest-physical memory (a paging dump writes one per virtual mapping): stored bytes of the first segment holding a page are used"
        ));
    }
    if short > 0 {
        notes.push(format!(
            "{short} PT_LOAD segments store fewer bytes than they span (p_filesz < p_memsz): the rest reads as zero where no other segment stores it"
        ));
    }
    if ragged > 0 {
        notes.push(format!(
            "{ragged} PT_LOAD segments end inside a page: the rest of that page reads as zero"
        ));
    }
    if empty > 0 {
        notes.push(format!(
            "{empty} PT_LOAD segments store no bytes (VirtualBox MMIO ranges, QEMU mappings outside guest RAM or the dump's filter): not guest RAM"
        ));
    }
    extents
}

/// RAM ranges from sorted extents, merged where they touch.
fn merge_ranges(extents: &[Extent]) -> Vec<RamRange> {
    let mut ranges: Vec<RamRange> = Vec::new();
    for e in extents {
        match ranges.last_mut() {
            Some(r) if r.gpa_page_end() == e.gpa_page => r.page_count += e.pages,
            _ => ranges.push(RamRange {
                gpa_page_start: e.gpa_page,
                page_count: e.pages,
            }),
        }
    }
    ranges
}

impl MemorySource for ElfCore {
    fn files(&self) -> Vec<PathBuf> {
        vec![self.file.path().to_path_buf()]
    }

    fn ram_ranges(&self) -> &[RamRange] {
        &self.ranges
    }

    fn chunk_count(&self) -> usize {
        self.chunk_count
    }

    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        match self.chunk(n) {
            Some((e, start, pages)) => vec![ChunkSpan {
                page_in_chunk: 0,
                gpa_page: e.gpa_page + start,
                pages: pages as usize,
            }],
            None => Vec::new(),
        }
    }

    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> Result<PageMask> {
        let (e, start, pages) = self.chunk(n).ok_or_else(|| self.no_chunk(n))?;
        let len = (pages * PAGE) as usize;
        let out_len = out.len();
        let out = out.get_mut(..len).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "buffer of {out_len} bytes for a chunk of {len} bytes"
            ))
        })?;
        let rel = start * PAGE;
        let stored = e.file_bytes.saturating_sub(rel).min(len as u64) as usize;
        let (file_part, zero_part) = out.split_at_mut(stored);
        if !file_part.is_empty() {
            self.file
                .read_into(e.file_offset + rel, file_part, "PT_LOAD segment data")?;
        }
        zero_part.fill(0);
        let mut mask = [0u64; MAX_CHUNK_PAGES / 64];
        for page in stored.div_ceil(PAGE_SIZE)..pages as usize {
            mask[page / 64] |= 1 << (page % 64);
        }
        Ok(mask)
    }

    fn raw_chunk(&self, n: usize) -> Option<RawChunk<'_>> {
        let (e, start, pages) = self.chunk(n)?;
        ((start + pages) * PAGE <= e.file_bytes).then(|| RawChunk {
            file: &self.file,
            offset: e.file_offset + start * PAGE,
        })
    }

    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa.checked_add(done as u64).ok_or(Error::hole(u64::MAX))?;
            let e = self.extent_of_page(addr / PAGE).ok_or(Error::hole(addr))?;
            let rel = addr - e.gpa_page * PAGE;
            let left = e.pages * PAGE - rel;
            let n = usize::try_from(left).map_or(buf.len() - done, |l| l.min(buf.len() - done));
            let out = &mut buf[done..done + n];
            let stored = e.file_bytes.saturating_sub(rel).min(n as u64) as usize;
            let (file_part, zero_part) = out.split_at_mut(stored);
            if !file_part.is_empty() {
                self.file
                    .read_into(e.file_offset + rel, file_part, "PT_LOAD segment data")?;
            }
            zero_part.fill(0);
            done += n;
        }
        Ok(())
    }

    fn vcpus(&self) -> &[CpuState] {
        &self.cpus
    }

    fn machine(&self) -> MachineInfo {
        MachineInfo {
            kind: match self.producer {
                Producer::Qemu => "QEMU ELF core",
                Producer::VirtualBox => "VirtualBox core",
            }
            .into(),
            guest_bugcheck: None,
            boot_processor: Some(0),
            notes: self.notes.clone(),
            processors_from_kernel: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_leave_the_gaps() {
        let mut c = BTreeMap::new();
        cover(&mut c, 10, 20);
        cover(&mut c, 30, 40);
        assert_eq!(uncovered(&c, 0, 50), [(0, 10), (20, 30), (40, 50)]);
        assert_eq!(uncovered(&c, 12, 18), []);
        assert_eq!(uncovered(&c, 15, 35), [(20, 30)]);
        cover(&mut c, 20, 30);
        assert_eq!(c.into_iter().collect::<Vec<_>>(), [(10, 40)]);
    }
}
