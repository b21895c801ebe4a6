//! Writes synthetic kdump-compressed files (makedumpfile's diskdump layout, as QEMU's
//! `dump-guest-memory -z/-l/-s` writes it), plain or in the flattened stream form.
//!
//! The layout follows QEMU's `dump/dump.c` (`create_header64`, `write_dump_bitmap`,
//! `write_dump_pages`): header version 6, block size 4096, the sub-header at block 1 with the
//! ELF notes right after it, both bitmaps equal (dump level 1), one 24-byte descriptor per
//! page, then the data, starting with one shared zero page that every all-zero page points
//! at. A page that does not shrink when compressed is stored as it is, as QEMU does. The
//! flattened form (`makedumpfile` header, big-endian `{offset, size}` records, end marker) is
//! written from the plain bytes in records of [`KdumpSpec::flat_record_size`].
//!
//! Everything is built in memory: meant for small guests (a few MiB of RAM, anywhere in the
//! guest-physical space; the bitmaps cost one bit per pfn up to the highest).

use std::io::{self, Write};
use std::path::Path;

/// How pages are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KdumpCompression {
    /// Stored as they are (flags 0, size 4096).
    Raw,
    /// zlib (`DUMP_DH_COMPRESSED_ZLIB` 0x1), as `compress2(.., Z_BEST_SPEED)`.
    Zlib,
    /// LZO1X (`DUMP_DH_COMPRESSED_LZO` 0x2).
    Lzo,
    /// raw snappy (`DUMP_DH_COMPRESSED_SNAPPY` 0x4).
    Snappy,
    /// one zstd frame (makedumpfile's `DUMP_DH_COMPRESSED_ZSTD` 0x20).
    Zstd,
}

impl KdumpCompression {
    /// Every kind.
    pub const ALL: [KdumpCompression; 5] = [
        KdumpCompression::Raw,
        KdumpCompression::Zlib,
        KdumpCompression::Lzo,
        KdumpCompression::Snappy,
        KdumpCompression::Zstd,
    ];

    /// The descriptor flag (0 for raw).
    pub fn flag(self) -> u32 {
        match self {
            KdumpCompression::Raw => 0,
            KdumpCompression::Zlib => 0x1,
            KdumpCompression::Lzo => 0x2,
            KdumpCompression::Snappy => 0x4,
            KdumpCompression::Zstd => 0x20,
        }
    }

    /// `page` compressed this way.
    pub fn compress(self, page: &[u8]) -> Vec<u8> {
        match self {
            KdumpCompression::Raw => page.to_vec(),
            KdumpCompression::Zlib => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(page).expect("writing to a vector");
                e.finish().expect("writing to a vector")
            }
            KdumpCompression::Lzo => lzokay_native::compress(page).expect("LZO1X compression"),
            KdumpCompression::Snappy => snap::raw::Encoder::new()
                .compress_vec(page)
                .expect("snappy compression"),
            KdumpCompression::Zstd => {
                ruzstd::encoding::compress_to_vec(page, ruzstd::encoding::CompressionLevel::Fastest)
            }
        }
    }
}

/// Contents of guest page `pfn`.
pub type PageFn = dyn Fn(u64) -> Vec<u8> + Sync;

/// Data and flags to store for guest page `pfn` instead of compressing its contents.
pub type StoredFn = dyn Fn(u64) -> Option<(Vec<u8>, u32)> + Sync;

/// A kdump-compressed file to write.
pub struct KdumpSpec {
    /// RAM as `(first pfn, pages)`, sorted, not overlapping.
    pub ranges: Vec<(u64, u64)>,
    /// Page contents; 4096 bytes each ([`pattern_page`] by default).
    pub page: Box<PageFn>,
    /// How pages are stored.
    pub compression: KdumpCompression,
    /// Overrides `compression` for some pages.
    pub compression_of: Option<Box<dyn Fn(u64) -> KdumpCompression + Sync>>,
    /// Data and descriptor flags stored for some pages as given, instead of compressing
    /// them (vectors from another compressor, broken streams); `None` for the others.
    pub stored_of: Option<Box<StoredFn>>,
    /// All-zero pages point at one shared zero page (QEMU, makedumpfile); when false they
    /// are compressed like the others.
    pub shared_zero_page: bool,
    /// The ELF note block stored after the sub-header.
    pub notes: Vec<u8>,
    /// Write the flattened stream form.
    pub flattened: bool,
    /// Largest record of the flattened form.
    pub flat_record_size: usize,
    /// Flattened form: first write a record of 0xFF bytes over the headers, which the
    /// real headers' record then overwrites (later records win).
    pub flat_stale_header: bool,
    /// Flattened form: leave out the end marker.
    pub flat_no_end: bool,
    /// Pages present in the 1st bitmap but not dumped (excluded, as makedumpfile's dump
    /// levels do); must lie outside `ranges`.
    pub excluded: Vec<u64>,
    /// `utsname.machine`.
    pub machine: String,
    /// `nr_cpus`.
    pub nr_cpus: u32,
}

impl Default for KdumpSpec {
    fn default() -> Self {
        Self {
            ranges: vec![(0, 64)],
            page: Box::new(pattern_page),
            compression: KdumpCompression::Zlib,
            compression_of: None,
            stored_of: None,
            shared_zero_page: true,
            notes: Vec::new(),
            flattened: false,
            flat_record_size: 16384,
            flat_stale_header: false,
            flat_no_end: false,
            excluded: Vec::new(),
            machine: "x86_64".into(),
            nr_cpus: 1,
        }
    }
}

/// Deterministic page contents of five kinds by `pfn % 5`: all zero, text-like
/// (compressible), pseudo-random (incompressible: stored raw), zero but for a few bytes,
/// a repeated 16-byte pattern.
pub fn pattern_page(pfn: u64) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    match pfn % 5 {
        0 => {}
        1 => {
            let text = format!("guest page {pfn:#x} says hello; ");
            for (i, b) in p.iter_mut().enumerate() {
                *b = text.as_bytes()[i % text.len()];
            }
        }
        2 => {
            let mut x = pfn.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for b in p.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
        3 => {
            p[..8].copy_from_slice(&pfn.to_le_bytes());
            p[4000] = 0xAB;
        }
        _ => {
            for (i, b) in p.iter_mut().enumerate() {
                *b = (i % 16) as u8 ^ pfn as u8;
            }
        }
    }
    p
}

/// Where [`write_kdump`] put things; offsets are in the plain file (for a flattened file,
/// see [`KdumpLayout::flat_records`]).
#[derive(Debug, Clone, Default)]
pub struct KdumpLayout {
    /// Offset of the sub-header (block 1).
    pub sub_header: u64,
    /// Offset and size of the note block.
    pub notes: (u64, u64),
    /// Offset of the 1st bitmap; the 2nd follows at `bitmap + bitmap_half`.
    pub bitmap: u64,
    /// Size of one bitmap.
    pub bitmap_half: u64,
    /// Offset of the page descriptors.
    pub descriptors: u64,
    /// Offset of the shared zero page, when written.
    pub zero_page: Option<u64>,
    /// Every dumped page: `(pfn, descriptor offset, data offset, data size, flags)`.
    pub pages: Vec<(u64, u64, u64, u32, u32)>,
    /// Length of the plain file.
    pub plain_len: u64,
    /// Flattened form: each record as `(offset of its header in the file, offset in the
    /// plain file, size)`; the end marker's header offset is `flat_end`.
    pub flat_records: Vec<(u64, u64, u64)>,
    /// Flattened form: offset of the end marker.
    pub flat_end: Option<u64>,
}

/// Builds the file `spec` describes in memory.
pub fn kdump_bytes(spec: &KdumpSpec) -> (Vec<u8>, KdumpLayout) {
    const BS: u64 = 4096;
    let max_pfn = spec
        .ranges
        .iter()
        .map(|&(s, n)| s + n)
        .chain(spec.excluded.iter().map(|&p| p + 1))
        .max()
        .unwrap_or(0);
    let bitmap_half = max_pfn.div_ceil(8).div_ceil(BS).max(1) * BS;
    let note_offset = BS + 104;
    let sub_hdr_size = (104 + spec.notes.len() as u64).div_ceil(BS);
    let bitmap = (1 + sub_hdr_size) * BS;
    let descriptors = bitmap + 2 * bitmap_half;
    let pfns: Vec<u64> = spec.ranges.iter().flat_map(|&(s, n)| s..s + n).collect();
    let mut data_at = descriptors + 24 * pfns.len() as u64;

    let mut out = vec![0u8; data_at as usize];
    // Header (block 0).
    out[..8].copy_from_slice(b"KDUMP   ");
    out[8..12].copy_from_slice(&6u32.to_le_bytes());
    let m = spec.machine.as_bytes();
    out[272..272 + m.len().min(64)].copy_from_slice(&m[..m.len().min(64)]);
    let mut status = spec.compression.flag();
    if let Some(f) = &spec.compression_of {
        for &p in &pfns {
            status |= f(p).flag();
        }
    }
    out[424..428].copy_from_slice(&status.to_le_bytes());
    out[428..432].copy_from_slice(&(BS as u32).to_le_bytes());
    out[432..436].copy_from_slice(&(sub_hdr_size as u32).to_le_bytes());
    out[436..440].copy_from_slice(&((2 * bitmap_half / BS) as u32).to_le_bytes());
    out[440..444].copy_from_slice(&(max_pfn.min(u32::MAX as u64) as u32).to_le_bytes());
    out[460..464].copy_from_slice(&spec.nr_cpus.to_le_bytes());
    // Sub-header (block 1) and notes.
    let sh = BS as usize;
    out[sh + 8..sh + 12].copy_from_slice(&1u32.to_le_bytes());
    out[sh + 48..sh + 56].copy_from_slice(&note_offset.to_le_bytes());
    out[sh + 56..sh + 64].copy_from_slice(&(spec.notes.len() as u64).to_le_bytes());
    out[sh + 96..sh + 104].copy_from_slice(&max_pfn.to_le_bytes());
    out[note_offset as usize..note_offset as usize + spec.notes.len()].copy_from_slice(&spec.notes);
    // Bitmaps.
    for &p in &pfns {
        for half in [0, bitmap_half] {
            out[(bitmap + half + p / 8) as usize] |= 1 << (p % 8);
        }
    }
    for &p in &spec.excluded {
        out[(bitmap + p / 8) as usize] |= 1 << (p % 8);
    }
    // Pages.
    let mut layout = KdumpLayout {
        sub_header: BS,
        notes: (note_offset, spec.notes.len() as u64),
        bitmap,
        bitmap_half,
        descriptors,
        ..KdumpLayout::default()
    };
    if spec.shared_zero_page {
        layout.zero_page = Some(data_at);
        out.resize(out.len() + BS as usize, 0);
        data_at += BS;
    }
    for (i, &pfn) in pfns.iter().enumerate() {
        let page = (spec.page)(pfn);
        assert_eq!(page.len(), 4096, "page {pfn:#x} is not 4096 bytes");
        let desc_at = descriptors + 24 * i as u64;
        let stored = spec.stored_of.as_ref().and_then(|f| f(pfn));
        let (offset, size, flags) = match layout.zero_page {
            _ if stored.is_some() => {
                let (bytes, flags) = stored.unwrap_or_default();
                let at = data_at;
                out.extend_from_slice(&bytes);
                data_at += bytes.len() as u64;
                (at, bytes.len() as u32, flags)
            }
            Some(z) if page.iter().all(|&b| b == 0) => (z, BS as u32, 0),
            _ => {
                let kind = spec
                    .compression_of
                    .as_ref()
                    .map_or(spec.compression, |f| f(pfn));
                let packed = kind.compress(&page);
                let (bytes, flags) = if kind == KdumpCompression::Raw || packed.len() >= 4096 {
                    (page, 0)
                } else {
                    (packed, kind.flag())
                };
                let at = data_at;
                out.extend_from_slice(&bytes);
                data_at += bytes.len() as u64;
                (at, bytes.len() as u32, flags)
            }
        };
        let d = desc_at as usize;
        out[d..d + 8].copy_from_slice(&offset.to_le_bytes());
        out[d + 8..d + 12].copy_from_slice(&size.to_le_bytes());
        out[d + 12..d + 16].copy_from_slice(&flags.to_le_bytes());
        layout.pages.push((pfn, desc_at, offset, size, flags));
    }
    layout.plain_len = out.len() as u64;
    if !spec.flattened {
        return (out, layout);
    }

    let mut flat = vec![0u8; 4096];
    flat[..12].copy_from_slice(b"makedumpfile");
    flat[16..24].copy_from_slice(&1i64.to_be_bytes());
    flat[24..32].copy_from_slice(&1i64.to_be_bytes());
    let mut record = |flat: &mut Vec<u8>, offset: u64, data: &[u8]| {
        layout
            .flat_records
            .push((flat.len() as u64, offset, data.len() as u64));
        flat.extend_from_slice(&(offset as i64).to_be_bytes());
        flat.extend_from_slice(&(data.len() as i64).to_be_bytes());
        flat.extend_from_slice(data);
    };
    if spec.flat_stale_header {
        record(&mut flat, 0, &vec![0xFF; 2 * BS as usize]);
    }
    let step = spec.flat_record_size.max(1);
    for (i, piece) in out.chunks(step).enumerate() {
        record(&mut flat, (i * step) as u64, piece);
    }
    if !spec.flat_no_end {
        layout.flat_end = Some(flat.len() as u64);
        flat.extend_from_slice(&(-1i64).to_be_bytes());
        flat.extend_from_slice(&(-1i64).to_be_bytes());
    }
    (flat, layout)
}

/// Writes the file `spec` describes at `path` (created or truncated).
pub fn write_kdump(spec: &KdumpSpec, path: impl AsRef<Path>) -> io::Result<KdumpLayout> {
    let (bytes, layout) = kdump_bytes(spec);
    std::fs::write(path, bytes)?;
    Ok(layout)
}
