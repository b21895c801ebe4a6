//! kdump-compressed files (makedumpfile's "diskdump" layout) as QEMU's `dump-guest-memory
//! -z/-l/-s` (and `kdump-raw-*` since 8.2) and makedumpfile write them, plain or flattened
//! ([`crate::flat`]).
//!
//! # Layout
//!
//! Facts from QEMU `include/sysemu/dump.h` (`DiskDumpHeader64`, `KdumpSubHeader64`,
//! `PageDescriptor`, `DUMP_DH_COMPRESSED_*`) and `dump/dump.c` (`create_header64`,
//! `write_dump_bitmap`, `write_dump_pages`), checked against makedumpfile's
//! `diskdump_mod.h` and crash's `diskdump.c`. Integers are little-endian (the guest's byte
//! order; only x86 is read here). A *block* is `block_size` bytes; only 4096 is read.
//!
//! | offset | what |
//! |---|---|
//! | block 0 | `disk_dump_header`: `KDUMP   ` (8), header_version u32 @8, utsname 6 × 65 @12 (machine @272), timestamp @402, status u32 @424, block_size u32 @428, sub_hdr_size u32 @432 (blocks), bitmap_blocks u32 @436, max_mapnr u32 @440, total_ram_blocks, device_blocks, written_blocks, current_cpu, nr_cpus u32 @460 |
//! | block 1 | `kdump_sub_header`: phys_base u64 @0, dump_level u32 @8, split u32 @12, start_pfn u64 @16, end_pfn u64 @24, offset_vmcoreinfo u64 @32, size_vmcoreinfo u64 @40, offset_note u64 @48, size_note u64 @56, offset_eraseinfo u64 @64, size_eraseinfo u64 @72, and from header_version 6 start_pfn_64 @80, end_pfn_64 @88, max_mapnr_64 @96; QEMU puts the ELF notes right after it (block 1 + 104) |
//! | block 1 + sub_hdr_size | the 1st bitmap (pages present), then the 2nd (pages dumped), `bitmap_blocks / 2` blocks each; bit `pfn % 8` of byte `pfn / 8` |
//! | block 1 + sub_hdr_size + bitmap_blocks | page descriptors `{ u64 offset, u32 size, u32 flags, u64 page_flags }` (24 bytes), one per bit set in the 2nd bitmap, by pfn |
//! | after the descriptors | page data; QEMU and makedumpfile first write one zero page that every all-zero page's descriptor points at (stored, size = block_size, flags 0) |
//!
//! Descriptor flags: `DUMP_DH_COMPRESSED_ZLIB` 0x1 (a zlib stream), `_LZO` 0x2 (LZO1X),
//! `_SNAPPY` 0x4 (raw snappy, no framing), makedumpfile's `_ZSTD` 0x20 (one zstd frame);
//! none = stored as it is, `size` = block_size. The header's `max_mapnr` (32 bits) is
//! replaced by `max_mapnr_64` from header_version 6; QEMU writes version 6 with dump level 1
//! (1st and 2nd bitmaps equal).
//!
//! # How it is read
//!
//! A pfn is a guest-physical page number (QEMU's `ARCH_PFN_OFFSET` is 0 on x86). RAM ranges
//! are the runs of bits set in the 2nd bitmap: a page makedumpfile excluded (clear in the 2nd
//! bitmap only) is a hole, as no content was saved for it. Everything sized by a header field
//! is first checked against the file's length: the bitmaps must be in the file and each dumped
//! page needs a 24-byte descriptor in it, so no allocation outgrows the file. Chunks are runs
//! of at most [`MAX_CHUNK_PAGES`] dumped pages inside one range; a chunk's descriptors are
//! read when it is decoded (never all at once), and pages whose data lie back to back are read
//! with one read.
//!
//! # Decompressors
//!
//! - zlib: `flate2` with its default pure-Rust backend (miniz_oxide), the ecosystem's
//!   standard crate.
//! - snappy: `snap` (BurntSushi), pure Rust, the reference-compatible Rust implementation.
//! - zstd: `ruzstd`, pure Rust (builds anywhere without a C compiler); read through its
//!   streaming decoder so a hostile frame can produce at most one block beyond a page.
//!   Only makedumpfile writes zstd pages; QEMU does not.
//! - LZO1X: our own safe decoder (`kdump/lzo1x.rs`): the Rust crates are GPL or panic and
//!   allocate without bound on hostile input.
//!
//! Each page must decode to exactly 4096 bytes, else [`Error::Corrupt`] names the page
//! descriptor.

mod lzo1x;

use std::io::Read;
use std::path::{Path, PathBuf};

use vm2dmp_source::{
    ChunkSpan, CpuState, Error, FileCtx, InputFile, MachineInfo, MemorySource, PageMask, RamRange,
    RawChunk, Result, MAX_CHUNK_PAGES, PAGE_SIZE,
};

pub use crate::flat::is_flattened;
use crate::flat::FlattenedFile;

/// Signature at offset 0 of a kdump-compressed file.
pub const KDUMP_SIGNATURE: &[u8; 8] = b"KDUMP   ";
/// Descriptor flag: zlib stream.
pub const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
/// Descriptor flag: LZO1X stream.
pub const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
/// Descriptor flag: raw snappy.
pub const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
/// Descriptor flag: zstd frame (makedumpfile).
pub const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;
/// Size of a page descriptor.
pub const PAGE_DESC_SIZE: u64 = 24;

const COMPRESSION_FLAGS: u32 = DUMP_DH_COMPRESSED_ZLIB
    | DUMP_DH_COMPRESSED_LZO
    | DUMP_DH_COMPRESSED_SNAPPY
    | DUMP_DH_COMPRESSED_ZSTD;
/// `disk_dump_header` bytes read (through nr_cpus).
const HEADER_SIZE: usize = 464;
/// `kdump_sub_header` bytes read (through max_mapnr_64).
const SUB_HEADER_SIZE: usize = 104;
/// Largest compressed page accepted: compressors fall back to storing a page that does not
/// shrink, so anything larger is corrupt (and would only make a read bigger).
const MAX_COMPRESSED_PAGE: u32 = 2 * PAGE_SIZE as u32;
/// Largest note block read.
const MAX_NOTE_SIZE: u64 = 64 << 20;
/// Bitmap bytes read at a time while indexing.
const BITMAP_PIECE: u64 = 1 << 20;
/// Page data read at once for pages stored back to back.
const MAX_GROUP_READ: u64 = 4 << 20;

/// True when `head` (the first bytes of a file) is a plain kdump-compressed file (`KDUMP   `
/// signature). A flattened one is recognised by [`is_flattened`]; [`is_kdump_or_flattened`]
/// takes either.
pub fn is_kdump(head: &[u8]) -> bool {
    head.starts_with(KDUMP_SIGNATURE)
}

/// True when `head` starts a kdump-compressed file, plain or flattened (makedumpfile's stream
/// form can also hold an ELF core, which [`KdumpFile`] then refuses as corrupt).
pub fn is_kdump_or_flattened(head: &[u8]) -> bool {
    is_kdump(head) || is_flattened(head)
}

/// The file a kdump body is read from: as it is, or through a flattened stream's index.
#[derive(Debug)]
enum Body {
    Plain(InputFile),
    Flat(FlattenedFile),
}

impl Body {
    fn ctx(&self) -> &FileCtx {
        match self {
            Body::Plain(f) => &f.ctx,
            Body::Flat(f) => f.ctx(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Body::Plain(f) => f.len(),
            Body::Flat(f) => f.len(),
        }
    }

    fn input(&self) -> &InputFile {
        match self {
            Body::Plain(f) => f,
            Body::Flat(f) => f.input(),
        }
    }

    fn read_into(&self, offset: u64, buf: &mut [u8], structure: &'static str) -> Result<()> {
        match self {
            Body::Plain(f) => f.read_into(offset, buf, structure),
            Body::Flat(f) => f.read_into(offset, buf, structure),
        }
    }

    /// `len` bytes at `offset`, checked against the length before anything is allocated.
    fn bytes(&self, offset: u64, len: u64, structure: &'static str) -> Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|e| e > self.len()) {
            return Err(self.ctx().corrupt(
                structure,
                offset,
                format!(
                    "{len} bytes run past the end of the file ({} bytes)",
                    self.len()
                ),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read_into(offset, &mut v, structure)?;
        Ok(v)
    }
}

/// What the headers say, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdumpHeader {
    /// `header_version` (QEMU writes 6).
    pub header_version: u32,
    /// `utsname.machine` (QEMU writes `x86_64` for an x86 guest).
    pub machine: String,
    /// `status`: the compression formats used (`DUMP_DH_COMPRESSED_*`).
    pub status: u32,
    /// `block_size` (4096).
    pub block_size: u32,
    /// `sub_hdr_size`, in blocks.
    pub sub_hdr_size: u32,
    /// `bitmap_blocks`: both bitmaps together, in blocks.
    pub bitmap_blocks: u32,
    /// Pages the bitmaps describe (`max_mapnr_64` from header_version 6, else `max_mapnr`).
    pub max_mapnr: u64,
    /// `nr_cpus`.
    pub nr_cpus: u32,
    /// `phys_base` from the sub-header.
    pub phys_base: u64,
    /// `dump_level` from the sub-header (QEMU: 1).
    pub dump_level: u32,
    /// `offset_vmcoreinfo`, `size_vmcoreinfo` (zero when absent).
    pub vmcoreinfo: (u64, u64),
    /// `offset_note`, `size_note` (header_version 4 and later; zero when absent).
    pub note: (u64, u64),
    /// Offset of the 1st bitmap.
    pub bitmap_offset: u64,
    /// Offset of the page descriptors.
    pub descriptors_offset: u64,
}

/// One page descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageDesc {
    offset: u64,
    size: u32,
    flags: u32,
}

impl PageDesc {
    fn parse(b: &[u8]) -> Self {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        Self {
            offset: u64_at(0),
            size: u32_at(8),
            flags: u32_at(12),
        }
    }

    fn is_raw(&self) -> bool {
        self.flags & COMPRESSION_FLAGS == 0
    }
}

/// A run of at most [`MAX_CHUNK_PAGES`] dumped pages, consecutive pfns in one range.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    pfn: u64,
    pages: u32,
    /// Index of the first page's descriptor.
    desc: u64,
}

/// A kdump-compressed file, plain or flattened, as a [`MemorySource`].
#[derive(Debug)]
pub struct KdumpFile {
    body: Body,
    header: KdumpHeader,
    ranges: Vec<RamRange>,
    chunks: Vec<Chunk>,
    /// Offset of the shared zero page, when the file has one.
    zero_page: Option<u64>,
    vcpus: Vec<CpuState>,
    notes: Vec<String>,
}

impl KdumpFile {
    /// Opens the file at `path` (plain or flattened).
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_input(InputFile::open(path)?)
    }

    /// Reads a kdump-compressed file (plain or flattened) from `input`.
    ///
    /// [`Error::Corrupt`] names the structure and offset of anything inconsistent (offsets
    /// in a flattened file are those of the plain file it stands for);
    /// [`Error::Unsupported`] for another block size, a big-endian or non-x86 guest.
    pub fn from_input(input: InputFile) -> Result<Self> {
        let mut head = [0u8; 32];
        let n = input.len().min(32) as usize;
        input.read_into(0, &mut head[..n], "kdump header")?;
        let body = if is_flattened(&head[..n]) {
            Body::Flat(FlattenedFile::from_input(input)?)
        } else {
            Body::Plain(input)
        };
        let ctx = body.ctx().clone();
        let header = read_header(&body)?;
        let mut notes = Vec::new();
        if let Body::Flat(f) = &body {
            if !f.ended() {
                notes.push(
                    "the flattened stream has no end marker: the file may have been cut short"
                        .into(),
                );
            }
        }

        let (ranges, dumped, excluded) = read_bitmaps(&body, &header)?;
        let table_len = dumped.checked_mul(PAGE_DESC_SIZE);
        let data_start = table_len.and_then(|l| header.descriptors_offset.checked_add(l));
        if data_start.is_none_or(|e| e > body.len()) {
            return Err(ctx.corrupt(
                "page descriptor table",
                header.descriptors_offset,
                format!(
                    "{dumped} pages are dumped but their descriptors run past the end of the file ({} bytes)",
                    body.len()
                ),
            ));
        }
        let data_start = data_start.unwrap_or(0);
        if excluded > 0 {
            notes.push(format!(
                "{excluded} pages were excluded when the dump was written (dump level {}): they are left out as holes",
                header.dump_level
            ));
        }

        let mut chunks = Vec::new();
        let mut desc = 0u64;
        for r in &ranges {
            let mut pfn = r.gpa_page_start;
            while pfn < r.gpa_page_end() {
                let pages = (r.gpa_page_end() - pfn).min(MAX_CHUNK_PAGES as u64);
                chunks.push(Chunk {
                    pfn,
                    pages: pages as u32,
                    desc,
                });
                pfn += pages;
                desc += pages;
            }
        }

        // QEMU and makedumpfile write one zero page first and point every all-zero page's
        // descriptor at it.
        let zero_page = (data_start + PAGE_SIZE as u64 <= body.len() && dumped > 0)
            .then(|| body.bytes(data_start, PAGE_SIZE as u64, "page data"))
            .transpose()?
            .filter(|p| p.iter().all(|&b| b == 0))
            .map(|_| data_start);

        let vcpus = if header.note.1 > 0 {
            let (offset, size) = header.note;
            if size > MAX_NOTE_SIZE {
                return Err(ctx.corrupt(
                    "note block",
                    offset,
                    format!("{size} bytes, more than the {MAX_NOTE_SIZE} read"),
                ));
            }
            let bytes = body.bytes(offset, size, "note block")?;
            let (vcpus, note_notes) = crate::notes::cpu_states(&ctx, offset, &bytes)?;
            notes.extend(note_notes);
            vcpus
        } else {
            notes.push("the file has no ELF notes: no processor state".into());
            Vec::new()
        };
        if header.nr_cpus as usize != vcpus.len() && !vcpus.is_empty() {
            notes.push(format!(
                "the header says {} processors, the notes hold {}",
                header.nr_cpus,
                vcpus.len()
            ));
        }

        Ok(Self {
            body,
            header,
            ranges,
            chunks,
            zero_page,
            vcpus,
            notes,
        })
    }

    /// The validated headers.
    pub fn header(&self) -> &KdumpHeader {
        &self.header
    }

    /// True when the file is in makedumpfile's flattened stream form.
    pub fn is_flattened(&self) -> bool {
        matches!(self.body, Body::Flat(_))
    }

    /// The input file.
    pub fn input(&self) -> &InputFile {
        self.body.input()
    }

    /// The VMCOREINFO note's text, when the file has one (a Linux guest's, or QEMU's
    /// `vmcoreinfo` device's).
    pub fn vmcoreinfo(&self) -> Result<Option<Vec<u8>>> {
        let (offset, size) = self.header.vmcoreinfo;
        if size == 0 {
            return Ok(None);
        }
        if size > MAX_NOTE_SIZE {
            return Err(self.body.ctx().corrupt(
                "vmcoreinfo",
                offset,
                format!("{size} bytes, more than the {MAX_NOTE_SIZE} read"),
            ));
        }
        self.body.bytes(offset, size, "vmcoreinfo").map(Some)
    }

    fn descriptors(&self, first: u64, count: u64) -> Result<Vec<PageDesc>> {
        let offset = self.header.descriptors_offset + first * PAGE_DESC_SIZE;
        let raw = self
            .body
            .bytes(offset, count * PAGE_DESC_SIZE, "page descriptor")?;
        Ok(raw
            .chunks_exact(PAGE_DESC_SIZE as usize)
            .map(PageDesc::parse)
            .collect())
    }

    fn is_zero_desc(&self, d: &PageDesc) -> bool {
        d.is_raw() && d.size == PAGE_SIZE as u32 && Some(d.offset) == self.zero_page
    }

    /// Checks a descriptor before its data is read.
    fn check_desc(&self, d: &PageDesc, index: u64, pfn: u64) -> Result<()> {
        let at = self.header.descriptors_offset + index * PAGE_DESC_SIZE;
        let bad = |detail: String| Err(self.body.ctx().corrupt("page descriptor", at, detail));
        let compression = d.flags & COMPRESSION_FLAGS;
        if compression.count_ones() > 1 || d.flags & !COMPRESSION_FLAGS != 0 {
            return bad(format!(
                "pfn {pfn:#x}: flags {:#x} are not one known compression",
                d.flags
            ));
        }
        if compression == 0 && d.size != PAGE_SIZE as u32 {
            return bad(format!(
                "pfn {pfn:#x}: stored page of {} bytes, not {PAGE_SIZE}",
                d.size
            ));
        }
        if d.size == 0 || d.size > MAX_COMPRESSED_PAGE {
            return bad(format!(
                "pfn {pfn:#x}: compressed size {} is not in 1..={MAX_COMPRESSED_PAGE}",
                d.size
            ));
        }
        if d.offset
            .checked_add(u64::from(d.size))
            .is_none_or(|e| e > self.body.len())
        {
            return bad(format!(
                "pfn {pfn:#x}: data at {:#x} ({} bytes) runs past the end of the file ({} bytes)",
                d.offset,
                d.size,
                self.body.len()
            ));
        }
        Ok(())
    }

    /// Decodes one page's data `src` (described by `d`, descriptor `index`) into `out`.
    fn decode_page(
        &self,
        d: &PageDesc,
        index: u64,
        pfn: u64,
        src: &[u8],
        out: &mut [u8],
        dec: &mut Decoders,
    ) -> Result<()> {
        let at = self.header.descriptors_offset + index * PAGE_DESC_SIZE;
        let result: std::result::Result<usize, String> = match d.flags & COMPRESSION_FLAGS {
            0 => {
                out.copy_from_slice(src);
                Ok(PAGE_SIZE)
            }
            DUMP_DH_COMPRESSED_ZLIB => dec.zlib(src, out),
            DUMP_DH_COMPRESSED_LZO => lzo1x::decompress(src, out).map_err(|e| e.to_string()),
            DUMP_DH_COMPRESSED_SNAPPY => snappy(src, out),
            _ => dec.zstd(src, out),
        };
        match result {
            Ok(PAGE_SIZE) => Ok(()),
            Ok(n) => Err(self.body.ctx().corrupt(
                "page descriptor",
                at,
                format!(
                    "pfn {pfn:#x}: page data at {:#x} decompresses to {n} bytes, not {PAGE_SIZE}",
                    d.offset
                ),
            )),
            Err(e) => Err(self.body.ctx().corrupt(
                "page descriptor",
                at,
                format!(
                    "pfn {pfn:#x}: page data at {:#x} ({} bytes, flags {:#x}) does not decompress to one page: {e}",
                    d.offset, d.size, d.flags
                ),
            )),
        }
    }

    /// Decodes the pages of descriptors `descs` (the first is descriptor `first`, for pfn
    /// `pfn`) into `out`, reading data stored back to back at once; returns the zero pages.
    fn decode_pages(
        &self,
        descs: &[PageDesc],
        first: u64,
        pfn: u64,
        out: &mut [u8],
    ) -> Result<PageMask> {
        let mut mask = [0u64; MAX_CHUNK_PAGES / 64];
        let mut dec = Decoders::default();
        let mut scratch = Vec::new();
        let mut i = 0;
        while i < descs.len() {
            let d = &descs[i];
            let page = &mut out[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            if self.is_zero_desc(d) {
                page.fill(0);
                mask[i / 64] |= 1 << (i % 64);
                i += 1;
                continue;
            }
            self.check_desc(d, first + i as u64, pfn + i as u64)?;
            // Pages whose data follow this one's: one read for all of them.
            let start = d.offset;
            let mut end = start + u64::from(d.size);
            let mut j = i + 1;
            while let Some(next) = descs.get(j) {
                if next.offset != end
                    || self.is_zero_desc(next)
                    || end - start + u64::from(next.size) > MAX_GROUP_READ
                {
                    break;
                }
                self.check_desc(next, first + j as u64, pfn + j as u64)?;
                end += u64::from(next.size);
                j += 1;
            }
            scratch.resize((end - start) as usize, 0);
            self.body.read_into(start, &mut scratch, "page data")?;
            for (k, d) in descs.iter().enumerate().take(j).skip(i) {
                let from = (d.offset - start) as usize;
                let src = &scratch[from..from + d.size as usize];
                let page = &mut out[k * PAGE_SIZE..(k + 1) * PAGE_SIZE];
                self.decode_page(d, first + k as u64, pfn + k as u64, src, page, &mut dec)?;
                if page.iter().all(|&b| b == 0) {
                    mask[k / 64] |= 1 << (k % 64);
                }
            }
            i = j;
        }
        Ok(mask)
    }

    fn chunk(&self, n: usize) -> Result<&Chunk> {
        self.chunks.get(n).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "chunk {n} does not exist ({} chunks)",
                self.chunks.len()
            ))
        })
    }
}

/// Reads and validates block 0 and the sub-header.
fn read_header(body: &Body) -> Result<KdumpHeader> {
    let ctx = body.ctx();
    let h = body.bytes(0, HEADER_SIZE as u64, "disk_dump_header")?;
    if !is_kdump(&h) {
        return Err(ctx.corrupt(
            "disk_dump_header",
            0,
            "no \"KDUMP   \" signature (not a kdump-compressed file)",
        ));
    }
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let header_version = u32_at(&h, 8);
    if header_version == 0 || header_version > 0xff {
        if header_version.swap_bytes() <= 0xff && header_version.swap_bytes() != 0 {
            return Err(ctx.unsupported("a big-endian kdump file (only x86 guests are read)"));
        }
        return Err(ctx.corrupt(
            "disk_dump_header",
            8,
            format!("header_version {header_version:#x}"),
        ));
    }
    let machine_field = &h[12 + 4 * 65..12 + 5 * 65];
    let machine = String::from_utf8_lossy(
        &machine_field[..machine_field.iter().position(|&b| b == 0).unwrap_or(65)],
    )
    .into_owned();
    if !matches!(
        machine.as_str(),
        "" | "x86_64" | "i386" | "i486" | "i586" | "i686" | "x86"
    ) {
        return Err(ctx.unsupported(format!(
            "a dump of a \"{machine}\" guest (only x86 guests are read)"
        )));
    }
    let block_size = u32_at(&h, 428);
    if block_size != PAGE_SIZE as u32 {
        return Err(ctx.unsupported(format!(
            "block size {block_size} (only {PAGE_SIZE} is read)"
        )));
    }
    let sub_hdr_size = u32_at(&h, 432);
    let bitmap_blocks = u32_at(&h, 436);
    if bitmap_blocks % 2 != 0 {
        return Err(ctx.corrupt(
            "disk_dump_header",
            436,
            format!("bitmap_blocks {bitmap_blocks} is odd: there are two bitmaps of equal size"),
        ));
    }
    let bs = u64::from(block_size);
    let sub = body.bytes(bs, SUB_HEADER_SIZE as u64, "kdump_sub_header")?;
    let field_if = |min_version: u32, o: usize| {
        if header_version >= min_version {
            u64_at(&sub, o)
        } else {
            0
        }
    };
    let max_mapnr = if header_version >= 6 {
        u64_at(&sub, 96)
    } else {
        u64::from(u32_at(&h, 440))
    };
    let bitmap_offset = (1 + u64::from(sub_hdr_size)) * bs;
    let descriptors_offset = bitmap_offset + u64::from(bitmap_blocks) * bs;
    Ok(KdumpHeader {
        header_version,
        machine,
        status: u32_at(&h, 424),
        block_size,
        sub_hdr_size,
        bitmap_blocks,
        max_mapnr,
        nr_cpus: u32_at(&h, 460),
        phys_base: u64_at(&sub, 0),
        dump_level: u32_at(&sub, 8),
        vmcoreinfo: (field_if(3, 32), field_if(3, 40)),
        note: (field_if(4, 48), field_if(4, 56)),
        bitmap_offset,
        descriptors_offset,
    })
}

/// RAM ranges (runs of the 2nd bitmap), pages dumped, and pages present in the 1st bitmap
/// but not dumped.
fn read_bitmaps(body: &Body, h: &KdumpHeader) -> Result<(Vec<RamRange>, u64, u64)> {
    let ctx = body.ctx();
    let half = u64::from(h.bitmap_blocks / 2) * u64::from(h.block_size);
    if h.descriptors_offset > body.len() {
        return Err(ctx.corrupt(
            "dump bitmap",
            h.bitmap_offset,
            format!(
                "{} bytes of bitmaps run past the end of the file ({} bytes)",
                2 * half,
                body.len()
            ),
        ));
    }
    if h.max_mapnr > half * 8 {
        return Err(ctx.corrupt(
            if h.header_version >= 6 {
                "kdump_sub_header"
            } else {
                "disk_dump_header"
            },
            if h.header_version >= 6 {
                u64::from(h.block_size) + 96
            } else {
                440
            },
            format!(
                "max_mapnr {:#x} pages need more than the {half}-byte bitmaps hold",
                h.max_mapnr
            ),
        ));
    }
    let bytes_used = h.max_mapnr.div_ceil(8);
    let mut ranges: Vec<RamRange> = Vec::new();
    let mut dumped = 0u64;
    let mut excluded = 0u64;
    let mut at = 0u64;
    let mut first = Vec::new();
    let mut second = Vec::new();
    while at < bytes_used {
        let n = (bytes_used - at).min(BITMAP_PIECE) as usize;
        first.resize(n, 0);
        second.resize(n, 0);
        body.read_into(h.bitmap_offset + at, &mut first, "1st dump bitmap")?;
        body.read_into(h.bitmap_offset + half + at, &mut second, "2nd dump bitmap")?;
        for (i, (&present, &dump)) in first.iter().zip(second.iter()).enumerate() {
            let base = (at + i as u64) * 8;
            let (mut present, mut dump) = (present, dump);
            // Bits past max_mapnr describe no page.
            if base + 8 > h.max_mapnr {
                let valid = ((1u16 << (h.max_mapnr - base)) - 1) as u8;
                present &= valid;
                dump &= valid;
            }
            excluded += u64::from((present & !dump).count_ones());
            if dump == 0 {
                continue;
            }
            dumped += u64::from(dump.count_ones());
            if dump == 0xFF {
                match ranges.last_mut() {
                    Some(r) if r.gpa_page_end() == base => r.page_count += 8,
                    _ => ranges.push(RamRange {
                        gpa_page_start: base,
                        page_count: 8,
                    }),
                }
                continue;
            }
            for bit in 0..8 {
                if dump & (1 << bit) == 0 {
                    continue;
                }
                let pfn = base + bit;
                match ranges.last_mut() {
                    Some(r) if r.gpa_page_end() == pfn => r.page_count += 1,
                    _ => ranges.push(RamRange {
                        gpa_page_start: pfn,
                        page_count: 1,
                    }),
                }
            }
        }
        at += n as u64;
    }
    Ok((ranges, dumped, excluded))
}

/// Decoder state reused for the pages of one chunk.
#[derive(Default)]
struct Decoders {
    zlib: Option<flate2::Decompress>,
    zstd: Option<ruzstd::decoding::FrameDecoder>,
}

impl Decoders {
    fn zlib(&mut self, src: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
        let z = self
            .zlib
            .get_or_insert_with(|| flate2::Decompress::new(true));
        z.reset(true);
        match z.decompress(src, out, flate2::FlushDecompress::Finish) {
            Ok(flate2::Status::StreamEnd) => Ok(z.total_out() as usize),
            Ok(_) if z.total_out() as usize == out.len() => Err(format!(
                "zlib stream decodes to more than {} bytes",
                out.len()
            )),
            Ok(_) => Err("zlib stream ends early".into()),
            Err(e) => Err(format!("zlib: {e}")),
        }
    }

    fn zstd(&mut self, src: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
        let frame = self
            .zstd
            .get_or_insert_with(ruzstd::decoding::FrameDecoder::new);
        let mut stream = ruzstd::decoding::StreamingDecoder::new_with_decoder(src, frame)
            .map_err(|e| format!("zstd: {e}"))?;
        let mut n = 0;
        while n < out.len() {
            match stream.read(&mut out[n..]) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k,
                Err(e) => return Err(format!("zstd: {e}")),
            }
        }
        let mut extra = [0u8; 1];
        match stream.read(&mut extra) {
            Ok(0) => Ok(n),
            Ok(_) => Err(format!(
                "zstd frame decodes to more than {} bytes",
                out.len()
            )),
            Err(e) => Err(format!("zstd: {e}")),
        }
    }
}

fn snappy(src: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    let len = snap::raw::decompress_len(src).map_err(|e| format!("snappy: {e}"))?;
    if len != out.len() {
        return Ok(len);
    }
    snap::raw::Decoder::new()
        .decompress(src, out)
        .map_err(|e| format!("snappy: {e}"))
}

impl MemorySource for KdumpFile {
    fn files(&self) -> Vec<PathBuf> {
        vec![self.body.ctx().path.to_path_buf()]
    }

    fn ram_ranges(&self) -> &[RamRange] {
        &self.ranges
    }

    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        self.chunks
            .get(n)
            .map(|c| {
                vec![ChunkSpan {
                    page_in_chunk: 0,
                    gpa_page: c.pfn,
                    pages: c.pages as usize,
                }]
            })
            .unwrap_or_default()
    }

    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> Result<PageMask> {
        let c = *self.chunk(n)?;
        let pages = c.pages as usize;
        if out.len() < pages * PAGE_SIZE {
            return Err(Error::InvalidArgument(format!(
                "buffer of {} bytes for a chunk of {pages} pages",
                out.len()
            )));
        }
        let descs = self.descriptors(c.desc, u64::from(c.pages))?;
        self.decode_pages(&descs, c.desc, c.pfn, &mut out[..pages * PAGE_SIZE])
    }

    fn zero_pages(&self, n: usize) -> Result<PageMask> {
        let c = *self.chunk(n)?;
        let descs = self.descriptors(c.desc, u64::from(c.pages))?;
        let mut mask = [0u64; MAX_CHUNK_PAGES / 64];
        for (i, d) in descs.iter().enumerate() {
            if self.is_zero_desc(d) {
                mask[i / 64] |= 1 << (i % 64);
            }
        }
        Ok(mask)
    }

    fn raw_chunk(&self, n: usize) -> Option<RawChunk<'_>> {
        let Body::Plain(file) = &self.body else {
            return None;
        };
        let c = self.chunks.get(n)?;
        let descs = self.descriptors(c.desc, u64::from(c.pages)).ok()?;
        let first = descs.first()?.offset;
        let contiguous = descs.iter().enumerate().all(|(i, d)| {
            d.is_raw()
                && d.size == PAGE_SIZE as u32
                && Some(d.offset) == first.checked_add((i * PAGE_SIZE) as u64)
        });
        let end = first.checked_add(u64::from(c.pages) * PAGE_SIZE as u64)?;
        (contiguous && end <= file.len()).then_some(RawChunk {
            file,
            offset: first,
        })
    }

    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        let mut page = vec![0u8; PAGE_SIZE];
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa
                .checked_add(done as u64)
                .ok_or_else(|| Error::hole(u64::MAX))?;
            let pfn = addr / PAGE_SIZE as u64;
            if self.range_of(pfn).is_none() {
                return Err(Error::hole(addr));
            }
            let c = self
                .chunks
                .partition_point(|c| c.pfn <= pfn)
                .checked_sub(1)
                .and_then(|i| self.chunks.get(i).copied())
                .ok_or_else(|| Error::hole(addr))?;
            let index = c.desc + (pfn - c.pfn);
            let descs = self.descriptors(index, 1)?;
            self.decode_pages(&descs, index, pfn, &mut page)?;
            let in_page = (addr % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[in_page..in_page + n]);
            done += n;
        }
        Ok(())
    }

    fn vcpus(&self) -> &[CpuState] {
        &self.vcpus
    }

    fn machine(&self) -> MachineInfo {
        let mut kinds = Vec::new();
        for (flag, name) in [
            (DUMP_DH_COMPRESSED_ZLIB, "zlib"),
            (DUMP_DH_COMPRESSED_LZO, "lzo"),
            (DUMP_DH_COMPRESSED_SNAPPY, "snappy"),
            (DUMP_DH_COMPRESSED_ZSTD, "zstd"),
        ] {
            if self.header.status & flag != 0 {
                kinds.push(name);
            }
        }
        if kinds.is_empty() {
            kinds.push("uncompressed");
        }
        if self.is_flattened() {
            kinds.push("flattened");
        }
        MachineInfo {
            kind: format!("kdump-compressed dump ({})", kinds.join(", ")),
            guest_bugcheck: None,
            boot_processor: None,
            notes: self.notes.clone(),
            processors_from_kernel: false,
        }
    }
}

/// Entry points for the fuzz targets; not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{lzo1x, snappy, Decoders, PAGE_SIZE};

    /// Decodes `src` as one page stored with `method` (0 zlib, 1 LZO1X, 2 snappy, 3 zstd;
    /// higher values wrap) into a page buffer; the decoded length when the stream is valid.
    /// Panics if a decoder claims more than a page.
    pub fn decode_page(method: u8, src: &[u8]) -> Option<usize> {
        let mut out = vec![0u8; PAGE_SIZE];
        let mut dec = Decoders::default();
        let n = match method % 4 {
            0 => dec.zlib(src, &mut out),
            1 => lzo1x::decompress(src, &mut out).map_err(|e| e.to_string()),
            2 => snappy(src, &mut out),
            _ => dec.zstd(src, &mut out),
        }
        .ok()?;
        // snappy reports a stream's declared length without decoding it when it is not a page.
        assert!(
            n <= PAGE_SIZE || method % 4 == 2,
            "decoded {n} bytes into a page"
        );
        Some(n)
    }
}
