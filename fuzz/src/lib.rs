//! Shared code of the fuzz targets: what to do with a saved state once it opens, and a
//! checksum fixer that lets mutated HVS files get past their CRC-32 fields.

use vm2dmp::{SavedState, hyperv::BLOCK_SIZE, source::PAGE_SIZE};
use vm2dmp_formats::crc32_with_zeroed_field as crc;
use vm2dmp_formats::hvs::{
    key_type, object_type, FileHeader, KeyEntryHeader, KeyTableHeader, ObjectEntry, ReplayLogEntry,
    ReplayLogHeader, FILE_OBJECT_POINTER_SIZE, FILE_SIGNATURE, FIRST_OBJECT_TABLE,
    HEADER_COPY_OFFSETS, KEY_FLAG_FILE_OBJECT, KEY_TABLE_SIGNATURE, OBJECT_TABLE_HEADER_SIZE,
    OBJECT_TABLE_SIGNATURE, REPLAY_LOG_SIGNATURE,
};
use vm2dmp_formats::le;

/// RAM blocks decoded per input (each costs a full 1 MiB decode).
pub const MAX_DECODED_BLOCKS: usize = 64;

/// Everything a reader of an opened saved state may call, on bounded amounts of data.
pub fn exercise(state: &SavedState) {
    let _ = state.summary();
    let _ = state.encoding_stats();
    let _ = state.files();
    let _ = state.format();
    let _ = state.replay_log();
    let _ = state.ram_pages();
    let boot = state.boot_vcpu();
    for vp in state.vcpus().iter().chain(state.higher_vtl_vcpus().iter().map(|v| &v.cpu)).take(8) {
        let _ = vp.architecture();
        let _ = vp.paging_mode();
        let _ = vp.mode_description();
        let _ = vp.kernel_gs_base();
        let _ = vp.fp.map(|f| f.fxsave());
    }
    let _ = boot.paging_enabled();

    let mut buf = [0u8; 64];
    let ranges = state.memory_ranges().to_vec();
    for r in ranges.iter().take(4) {
        let start = r.gpa_start();
        let end = r.gpa_end();
        for gpa in [
            start,
            start.saturating_add(PAGE_SIZE as u64 - 16), // crosses a page boundary
            end.saturating_sub(32),                      // runs into the hole after the range
            end,
        ] {
            let _ = state.read_phys(gpa, &mut buf);
            let _ = state.gpa_to_raw_offset(gpa);
            let _ = state.memory_range_of(gpa >> 12);
        }
    }
    let _ = state.read_phys(u64::MAX - 8, &mut buf);
    let _ = state.read_phys(0, &mut []);

    // The same memory through the interface the converter uses.
    let src: &dyn vm2dmp::MemorySource = state;
    let mut chunk = vec![0u8; vm2dmp::source::MAX_CHUNK_PAGES * PAGE_SIZE];
    for n in 0..src.chunk_count().min(MAX_DECODED_BLOCKS / 4) {
        let _ = src.chunk_spans(n);
        let _ = src.raw_chunk(n).is_some();
        let _ = src.zero_pages(n);
        let _ = src.decode_chunk(n, &mut chunk);
    }
    let _ = src.machine();
    let _ = src.boot_vcpu();

    let mut block = vec![0u8; BLOCK_SIZE];
    for n in 0..state.ram_block_count().min(MAX_DECODED_BLOCKS) {
        let _ = state.decode_block(n, &mut block);
        let _ = state.block_spans(n);
    }
    let _ = state.decode_block(state.ram_block_count(), &mut block);

    let mut pages = state.pages();
    for _ in 0..2 * vm2dmp::hyperv::PAGES_PER_BLOCK {
        match pages.next() {
            Some(Ok((_, p))) => assert_eq!(p.len(), PAGE_SIZE),
            Some(Err(_)) | None => break,
        }
    }
    convert_and_verify(state);
}

/// Guests converted per input: at most this much RAM ...
const MAX_CONVERTED_PAGES: u64 = 4 * vm2dmp::hyperv::PAGES_PER_BLOCK as u64;
/// ... ending below this guest page (bitmap dumps cover every page below the highest).
const MAX_CONVERTED_GPA_PAGE: u64 = 1 << 20;

/// Converts a small guest in every layout (this also runs the guest kernel discovery over its
/// memory) and checks each dump against the saved state: whatever converts must verify.
pub fn convert_and_verify(state: &SavedState) {
    use vm2dmp::{convert, verify, Cancel, ConvertOptions, DumpFile, DumpFormat, NoProgress};
    let end = state.memory_ranges().last().map_or(0, |r| r.gpa_page_end());
    if state.ram_pages() > MAX_CONVERTED_PAGES || end > MAX_CONVERTED_GPA_PAGE {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vm2dmp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let out = dir.join("fuzz.dmp");
    for (format, skip_zero) in [
        (DumpFormat::Auto, false),
        (DumpFormat::Bitmap, false),
        (DumpFormat::Bitmap, true),
    ] {
        let opts = ConvertOptions {
            format,
            skip_zero,
            force: true,
            ..ConvertOptions::default()
        };
        let _ = std::fs::remove_file(&out);
        if convert(state, &out, &opts, &NoProgress, &Cancel::new()).is_err() {
            let left: Vec<_> = std::fs::read_dir(&dir)
                .expect("temporary directory")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(left.is_empty(), "a failed conversion left {left:?}");
            continue;
        }
        let dump = DumpFile::open(&out).expect("a dump we wrote must parse");
        let report = verify(&dump, state, None, &NoProgress, &Cancel::new())
            .expect("a dump we wrote must verify");
        assert!(report.ok(), "dump differs from the saved state: {report:?}");
    }
    let _ = std::fs::remove_file(&out);
}

fn put_u32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites the checksum of the `len`-byte structure at `start` (field at `crc_at`), if the
/// structure lies inside `d`.
fn fix(d: &mut [u8], start: u64, len: u64, crc_at: usize) -> bool {
    let (Ok(s), Ok(l)) = (usize::try_from(start), usize::try_from(len)) else {
        return false;
    };
    let Some(e) = s.checked_add(l).filter(|&e| e <= d.len()) else {
        return false;
    };
    if crc_at + 4 > l {
        return false;
    }
    let c = crc(&d[s..e], crc_at);
    put_u32(d, s + crc_at, c);
    true
}

/// Recomputes every CRC-32 of an HVS file that can be located (header copies, replay log,
/// object tables, key tables and their entries), so that mutations of the fields behind the
/// checksums reach the code that interprets them. Best effort: structures that cannot be
/// found are left alone, and the reader then rejects them as usual.
pub fn fix_hvs_checksums(d: &mut [u8]) {
    // Header copies.
    let mut headers = Vec::new();
    for &off in &HEADER_COPY_OFFSETS {
        let o = off as usize;
        if le::u32(d, o) == Some(FILE_SIGNATURE) && fix(d, off, FileHeader::SIZE as u64, 4) {
            if let Some(h) = d.get(o..).and_then(FileHeader::parse) {
                headers.push(h);
            }
        }
    }
    let Some(h) = headers.iter().copied().max_by_key(|h| h.sequence) else {
        return;
    };
    let align = u64::from(h.data_alignment);
    if !(4096..=65536).contains(&align) || !align.is_power_of_two() {
        return;
    }

    // Replay log: data checksums, entry checksums, then the log header.
    let log = h.replay_log_offset;
    if let Some(lo) = usize::try_from(log).ok().filter(|&lo| lo < d.len()) {
        if le::u32(d, lo) == Some(REPLAY_LOG_SIGNATURE) {
            if let Some(lh) = ReplayLogHeader::parse(&d[lo..]) {
                for i in 0..u64::from(lh.current_entries.min(256)) {
                    let eo = log + ReplayLogHeader::SIZE as u64 + i * ReplayLogEntry::SIZE as u64;
                    let Some(e) = d.get(eo as usize..).and_then(ReplayLogEntry::parse) else {
                        break;
                    };
                    let ds = log.checked_add(e.data_offset);
                    let de = ds.and_then(|s| s.checked_add(u64::from(e.size)));
                    if let (Some(ds), Some(de)) = (ds, de) {
                        if de <= d.len() as u64 {
                            let c = crc32fast::hash(&d[ds as usize..de as usize]);
                            put_u32(d, eo as usize + 24, c);
                        }
                    }
                    fix(
                        d,
                        eo,
                        ReplayLogEntry::SIZE as u64,
                        ReplayLogEntry::CHECKSUM_AT,
                    );
                }
                fix(
                    d,
                    log,
                    ReplayLogHeader::SIZE as u64,
                    ReplayLogHeader::CHECKSUM_AT,
                );
            }
        }
    }

    // Object tables, following the chain; key tables as they are found.
    let (mut table, mut size) = (FIRST_OBJECT_TABLE, align);
    let mut seen = Vec::new();
    while seen.len() < 64 && !seen.contains(&table) {
        seen.push(table);
        let t = table as usize;
        if le::u32(d, t) != Some(OBJECT_TABLE_SIGNATURE) {
            break;
        }
        let count = le::u32(d, t + 4).unwrap_or(0) as u64;
        let fits = count
            .checked_mul(ObjectEntry::SIZE as u64)
            .map(|n| n + OBJECT_TABLE_HEADER_SIZE as u64)
            .is_some_and(|n| n <= size && table + n <= d.len() as u64);
        if !fits {
            break;
        }
        let mut next = None;
        for i in 0..count {
            let eo = table + OBJECT_TABLE_HEADER_SIZE as u64 + i * ObjectEntry::SIZE as u64;
            fix(d, eo, ObjectEntry::SIZE as u64, ObjectEntry::CHECKSUM_AT);
            let Some(e) = ObjectEntry::parse(&d[eo as usize..]) else {
                break;
            };
            match e.object_type {
                object_type::OBJECT_TABLE => next = Some((e.offset, u64::from(e.size))),
                object_type::KEY_TABLE => fix_key_table(d, e.offset, u64::from(e.size)),
                _ => {}
            }
        }
        match next {
            Some((o, s)) if s >= align => (table, size) = (o, s),
            _ => break,
        }
    }
}

fn fix_key_table(d: &mut [u8], off: u64, size: u64) {
    let Some(end) = off.checked_add(size).filter(|&e| e <= d.len() as u64) else {
        return;
    };
    let (off, end) = (off as usize, end as usize);
    if le::u16(d, off) != Some(KEY_TABLE_SIGNATURE) {
        return;
    }
    let mut pos = off + KeyTableHeader::SIZE;
    while pos + KeyEntryHeader::SIZE <= end {
        let Some(h) = KeyEntryHeader::parse(&d[pos..end]) else {
            break;
        };
        let size = h.entry_size as usize;
        if size < KeyEntryHeader::SIZE || pos + size > end {
            break;
        }
        if h.key_type != key_type::FREE {
            let vstart = KeyEntryHeader::SIZE + h.name_size as usize;
            let value_len = |at: usize| le::u32(d, pos + at).map(|n| n as usize + 4);
            let meaningful = match h.key_type {
                key_type::STRING | key_type::ARRAY if h.flags & KEY_FLAG_FILE_OBJECT != 0 => {
                    Some(FILE_OBJECT_POINTER_SIZE)
                }
                key_type::STRING | key_type::ARRAY => value_len(vstart),
                key_type::INT | key_type::UINT | key_type::DOUBLE => Some(8),
                key_type::BOOL => Some(4),
                key_type::NODE => Some(12),
                _ => None,
            };
            if let Some(m) = meaningful.and_then(|m| m.checked_add(vstart)) {
                if m <= size {
                    fix(d, pos as u64, m as u64, KeyEntryHeader::CHECKSUM_AT);
                }
            }
        }
        pos += size;
    }
    fix(
        d,
        off as u64,
        KeyTableHeader::SIZE as u64,
        KeyTableHeader::CHECKSUM_AT,
    );
}

/// A 1 MiB x64 saved state with one vCPU, whose guest memory and vCPU registers the `kernel`
/// target overwrites in place (RAM block and partition_state are file objects, which no
/// checksum covers).
pub struct KernelTemplate {
    pub bytes: Vec<u8>,
    /// Offset of guest-physical address 0 (the raw 1 MiB RAM block).
    pub ram: usize,
    /// Bodies of the control, segment, table and virtual-MSR chunks of VP 0.
    pub control: usize,
    pub segments: usize,
    pub tables: usize,
    pub msrs: usize,
}

impl KernelTemplate {
    /// Bytes of the input's register header: mode, CR3, IDTR base, GS base, kernel GS base,
    /// FS base.
    pub const HEADER: usize = 1 + 5 * 8;

    pub fn new() -> Self {
        use vm2dmp_formats::partition::chunk;
        use vm2dmp_synth::{BlockEncoding, FlatImage, SynthVm, SynthVp};
        let mut vm = SynthVm::with_ram_mib(1)
            .with_pages(FlatImage::new(vec![0x5A; 4096]))
            .with_vps(vec![SynthVp::x64_long_mode(0, 0x1000, 0, 0)])
            .with_encoding(BlockEncoding::RawBlock);
        vm.vmrs.device_keys = false;
        let dir = std::env::temp_dir().join(format!("vm2dmp-fuzz-template-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let path = dir.join("template.vmrs");
        let layout = vm2dmp_synth::write_vmrs(&vm, &path).expect("template written");
        let bytes = std::fs::read(&path).expect("template read");
        let _ = std::fs::remove_dir_all(&dir);
        let block = &layout.ram_blocks[0];
        assert!(block.raw && block.value_size == BLOCK_SIZE as u64);
        let body = |id| layout.chunk_offset(id, Some(0)).expect("chunk of VP 0") as usize + 16;
        Self {
            ram: block.value_offset as usize,
            control: body(chunk::CONTROL_REGISTERS),
            segments: body(chunk::SEGMENT_REGISTERS),
            tables: body(chunk::TABLE_REGISTERS),
            msrs: body(chunk::VIRTUAL_MSRS),
            bytes,
        }
    }

    /// The template with `input` applied: its header sets the paging mode (bits 0-1 of the
    /// first byte: long mode, 5-level long mode, PAE, 32-bit) and registers; the rest is guest
    /// memory from address 0 (at most 1 MiB; the remainder reads as zero).
    pub fn build(&self, input: &[u8]) -> Option<Vec<u8>> {
        let (head, mem) = input.split_at_checked(Self::HEADER)?;
        let q = |i: usize| u64::from_le_bytes(head[1 + i * 8..9 + i * 8].try_into().unwrap());
        let mut d = self.bytes.clone();
        let put =
            |d: &mut Vec<u8>, at: usize, v: u64| d[at..at + 8].copy_from_slice(&v.to_le_bytes());
        const PG_PE: u64 = 1 << 31 | 1;
        const PAE: u64 = 1 << 5;
        const LA57: u64 = 1 << 12;
        const LMA_LME: u64 = 1 << 10 | 1 << 8;
        let (cr0, cr4, efer) = match head[0] & 3 {
            0 => (PG_PE, PAE, LMA_LME),
            1 => (PG_PE, PAE | LA57, LMA_LME),
            2 => (PG_PE, PAE, 0),
            _ => (PG_PE, 0, 0),
        };
        put(&mut d, self.control, cr0);
        put(&mut d, self.control + 16, q(0));
        put(&mut d, self.control + 24, cr4);
        put(&mut d, self.control + 40, efer);
        put(&mut d, self.tables + 8, q(1));
        put(&mut d, self.segments + 5 * 16, q(2));
        put(&mut d, self.msrs + 8, q(3));
        put(&mut d, self.segments + 4 * 16, q(4));
        let n = mem.len().min(BLOCK_SIZE);
        d[self.ram..self.ram + n].copy_from_slice(&mem[..n]);
        d[self.ram + n..self.ram + BLOCK_SIZE].fill(0);
        Some(d)
    }
}

impl Default for KernelTemplate {
    fn default() -> Self {
        Self::new()
    }
}
