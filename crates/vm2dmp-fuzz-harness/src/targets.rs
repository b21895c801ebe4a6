//! One function per fuzz target, named after it, with the target's whole body. The
//! documentation of each function gives the target's input format.

use std::path::Path;

use vm2dmp::guest::translate::{check_dtb, read_virt, translate, Dtb, Paging, PhysMem};
use vm2dmp::source::{CpuState, DescriptorTable, InputFile, Msrs, SegmentRegister, PAGE_SIZE};
use vm2dmp_kdump::KernelDump;
use vm2dmp_xpress::{
    compress, decompress_bounded, decompress_into, decompress_page, max_compressed_len,
};

use crate::{convert_and_verify_as, exercise, exercise_source, fix_hvs_checksums, FlatGuest};

/// The saved state of a `vmrs_open` input: inputs of even length get their HVS checksums
/// recomputed first ([`fix_hvs_checksums`]), so that mutations reach the structures behind the
/// CRC-32 fields; odd-length inputs are read exactly as given, which keeps the checksum checks
/// themselves under test. Also lists every key, as `vm2dmp keys` does (for files without
/// memory too).
pub fn open_vmrs(data: &[u8]) -> Option<vm2dmp::SavedState> {
    let mut bytes = data.to_vec();
    if bytes.len() % 2 == 0 {
        fix_hvs_checksums(&mut bytes);
    }
    let _ = vm2dmp::hyperv::list_keys_from_bytes(Path::new("fuzz.vmrs"), bytes.clone(), false);
    vm2dmp::SavedState::from_bytes(Path::new("fuzz.vmrs"), bytes, None).ok()
}

/// Opens the input as an in-memory `.vmrs` ([`open_vmrs`]) and reads what it offers (see
/// [`exercise`]): the container parse; RAM blocks are fuzzed by `ram_block`, the conversion by
/// [`convert`]. Returns whether the input opened.
pub fn vmrs_open(data: &[u8]) -> bool {
    open_vmrs(data).map(|s| exercise(&s)).is_some()
}

/// The saved state of a `vsv_bin_open` input: u32 (little-endian) length of the `.vsv` image,
/// the `.vsv` image, then the `.bin` image (the split is clamped to the input).
pub fn open_vsv_bin(data: &[u8]) -> Option<vm2dmp::SavedState> {
    let (len, rest) = data.split_first_chunk::<4>()?;
    let split = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (vsv, bin) = rest.split_at(split);
    vm2dmp::SavedState::from_bytes(Path::new("fuzz.vsv"), vsv.to_vec(), Some(bin.to_vec())).ok()
}

/// Opens a `.vsv` + `.bin` pair held in memory ([`open_vsv_bin`]) and reads what it offers
/// (see [`exercise`]). Returns whether the input opened.
pub fn vsv_bin_open(data: &[u8]) -> bool {
    open_vsv_bin(data).map(|s| exercise(&s)).is_some()
}

/// One stored RAM block: raw 1 MiB or a token stream with Plain-LZ77 pages.
///
/// Returns whether the block decodes.
pub fn ram_block(data: &[u8]) -> bool {
    vm2dmp::hyperv::fuzzing::decode_ram_block(data)
}

/// A `partition_state` value: envelope, chunk stream, per-VP register chunks.
///
/// Returns whether the value parses.
pub fn partition_state(data: &[u8]) -> bool {
    vm2dmp::hyperv::fuzzing::parse_partition_state(data)
}

/// Plain LZ77 decoder, and a round trip through the encoder.
///
/// Input: a mode byte, then
/// - mode bit 0 clear: u16 (little-endian) output length, then a compressed stream, decoded
///   with `decompress_into` and `decompress_bounded` (which must agree), and
///   `decompress_page` when the length is 4096 or mode bit 1 is set;
/// - mode bit 0 set: plain bytes, compressed then decompressed, which must give them back.
pub fn xpress(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Some((len, src)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let want = usize::from(u16::from_le_bytes(*len));
        let mut out = vec![0u8; want];
        let exact = decompress_into(src, &mut out).is_ok();
        if let Ok(n) = decompress_bounded(src, &mut out) {
            assert!(n <= want);
            assert_eq!(n == want, exact, "bounded and exact decoders disagree");
        } else {
            assert!(
                !exact,
                "exact decode succeeded where the bounded one failed"
            );
        }
        if want == PAGE_SIZE || mode & 2 != 0 {
            let mut page = [0u8; PAGE_SIZE];
            let _ = decompress_page(src, &mut page);
        }
    } else {
        let mut stream = Vec::new();
        compress(rest, &mut stream);
        assert!(stream.len() <= max_compressed_len(rest.len()));
        let mut back = vec![0u8; rest.len()];
        decompress_into(&stream, &mut back).expect("a compressed stream must decode");
        assert_eq!(back, rest, "round trip changed the data");
    }
}

/// Kernel dump reader: header, run list or bitmap, page lookups. The input is a kernel dump.
///
/// The library reads only the prefix the header asks for, then pages on demand: that path
/// must agree with parsing the whole input. Pages listed as present must have a file offset.
///
/// Returns how many of the first 16 pages listed as present could not be read from the input
/// (0 when it does not parse): a truncated dump lists pages it does not hold, a whole one
/// none.
pub fn kdump_parse(data: &[u8]) -> usize {
    // The library reads only the prefix the header asks for, then pages on demand: that
    // path must agree with parsing the whole file.
    let head = &data[..data.len().min(KernelDump::HEADER_PREFIX as usize)];
    let need = KernelDump::metadata_len(head, data.len() as u64).min(data.len() as u64);
    let from_prefix = KernelDump::parse_prefix(&data[..need as usize], data.len() as u64);
    let whole = KernelDump::parse(data);
    assert_eq!(
        from_prefix.as_ref().ok(),
        whole.as_ref().ok(),
        "prefix parse disagrees with whole-file parse"
    );
    let Ok(dump) = whole else {
        return 0;
    };
    let _ = dump.info();
    let _ = dump.context();
    let _ = dump.runs();
    let _ = dump.bitmap();
    let _ = dump.dump_type();
    let _ = dump.machine_image_type();
    let _ = dump.required_dump_space();
    let _ = dump.data_offset();
    let count = dump.present_page_count();
    let mut listed = 0u64;
    let mut unreadable = 0;
    let mut buf = [0u8; 32];
    for (i, pfn) in dump.present_pfns().take(1000).enumerate() {
        listed += 1;
        if i < 16 {
            assert!(
                dump.page_file_offset(pfn).is_some(),
                "listed page {pfn:#x} has no offset"
            );
            if dump.page(data, pfn).is_err() {
                unreadable += 1;
            }
            let _ = dump.read_phys(data, (pfn << 12).wrapping_add(0xFF0), &mut buf);
        }
    }
    if count < 1000 {
        assert_eq!(
            listed, count,
            "present_pfns disagrees with present_page_count"
        );
    }
    for pfn in [0, 1, 0xFFFF_FFFF, u64::MAX >> 12, u64::MAX] {
        let _ = dump.page(data, pfn);
    }
    let _ = dump.read_phys(data, u64::MAX - 4, &mut buf);
    unreadable
}

/// Guest memory for [`page_tables`]: the input bytes from physical address 0, a hole beyond.
struct Image<'a>(&'a [u8]);

impl PhysMem for Image<'_> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let Some(src) = usize::try_from(gpa)
            .ok()
            .and_then(|s| self.0.get(s..s.checked_add(buf.len())?))
        else {
            return false;
        };
        buf.copy_from_slice(src);
        true
    }
    fn is_ram(&self, gpa: u64) -> bool {
        gpa < self.0.len() as u64
    }
}

/// Guest page-table walks (the kernel discovery of `convert` reads guest memory through them).
///
/// Input: a mode byte (paging mode in bits 0-1: 32-bit, PAE, 4-level, 5-level), u64 CR3, u64
/// virtual address, then guest memory from physical address 0 (what the input does not cover
/// is a hole).
///
/// Returns whether `check_dtb` accepts CR3 as a page-table root (false for an input too short
/// to hold the header).
pub fn page_tables(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let Some((cr3, rest)) = rest.split_first_chunk::<8>() else {
        return false;
    };
    let Some((va, mem)) = rest.split_first_chunk::<8>() else {
        return false;
    };
    let paging = [Paging::Bit32, Paging::Pae, Paging::Long4, Paging::Long5][usize::from(mode & 3)];
    let dtb = Dtb::new(paging, u64::from_le_bytes(*cr3));
    let va = u64::from_le_bytes(*va);
    let mem = Image(mem);
    for v in [va, va.wrapping_add(0xFF8), paging.shared_user_data()] {
        if let Some(t) = translate(&mem, dtb, v) {
            assert!(t.page_size.is_power_of_two() && t.page_size >= 4096);
            assert_eq!(t.gpa & 0xFFF, v & 0xFFF, "the page offset is kept");
        }
    }
    let mut buf = [0u8; 64];
    let _ = read_virt(&mem, dtb, va.wrapping_add(0xFE0), &mut buf);
    let _ = paging.is_kernel_address(va);
    let c = check_dtb(&mem, dtb);
    assert_eq!(c.valid, c.reason.is_empty());
    c.valid
}

/// Bytes of the `convert` target's header: a layout byte, then CR3, IDTR base, GS base,
/// kernel GS base and FS base (u64, little-endian).
pub const TINY_GUEST_HEADER: usize = 1 + 5 * 8;

/// Most guest memory a `convert` input gives (the rest of a longer input is ignored).
pub const TINY_GUEST_MAX_BYTES: usize = 1 << 20;

/// The tiny guest of a `convert` input (see [`convert`]; the layout byte's bits 0-5); `None`
/// when the input is shorter than the header or gives no memory.
pub fn tiny_guest(data: &[u8]) -> Option<FlatGuest> {
    let (head, mem) = data.split_at_checked(TINY_GUEST_HEADER)?;
    let mem = &mem[..mem.len().min(TINY_GUEST_MAX_BYTES)];
    let q = |i: usize| {
        let at = 1 + i * 8;
        head.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let layout = head[0];
    let pages = mem.len().div_ceil(PAGE_SIZE) as u64;
    if pages == 0 {
        return None;
    }
    // The memory is one range from address 0, or split at its middle page with the second
    // half moved up by 1 MiB (a hole, as below an MMIO window) or to 4 GiB.
    let split = (pages / 2) as usize * PAGE_SIZE;
    let ranges = match (layout >> 2) & 3 {
        0 => vec![(0, mem.to_vec())],
        s if split > 0 => {
            let high = if s == 1 {
                (split / PAGE_SIZE) as u64 + 256
            } else {
                1 << 20
            };
            vec![(0, mem[..split].to_vec()), (high, mem[split..].to_vec())]
        }
        _ => vec![(0, mem.to_vec())],
    };
    const PG_PE: u64 = 1 << 31 | 1;
    const PAE: u64 = 1 << 5;
    const LA57: u64 = 1 << 12;
    const LMA_LME: u64 = 1 << 10 | 1 << 8;
    let (cr0, cr4, efer) = match layout & 3 {
        0 => (PG_PE, PAE, LMA_LME),
        1 => (PG_PE, PAE | LA57, LMA_LME),
        2 => (PG_PE, PAE, 0),
        _ => (PG_PE, 0, 0),
    };
    let long = efer != 0;
    let seg = |selector: u16, attributes: u16, base: u64| SegmentRegister {
        base,
        limit: 0xFFFF_FFFF,
        selector,
        attributes,
    };
    // Code segment: present, S, execute/read, accessed; L for long mode, else D and G.
    let cs = if long {
        seg(0x10, 0xA09B, 0)
    } else {
        seg(0x08, 0xC09B, 0)
    };
    let data_seg = seg(if long { 0x18 } else { 0x10 }, 0xC093, 0);
    // One or four processors; each one's GS (x64) and FS (x86) base one page further on, as
    // the KPCRs of a Windows guest are laid out.
    let cpus = (0..if layout & 0x10 != 0 { 4u64 } else { 1 })
        .map(|i| CpuState {
            index: i as u32,
            rip: q(1),
            rsp: q(2),
            cr0,
            cr3: q(0),
            cr4,
            efer,
            cs,
            ss: data_seg,
            ds: data_seg,
            es: data_seg,
            fs: seg(0x30, 0xC093, q(4).wrapping_add(i << 12)),
            gs: seg(0x2B, 0xC093, q(2).wrapping_add(i << 12)),
            idtr: DescriptorTable {
                limit: 0xFFF,
                base: q(1),
            },
            msrs: Some(Msrs {
                kernel_gs_base: q(3),
                ..Msrs::default()
            }),
            has_gp: true,
            has_control: true,
            has_segments: true,
            ..CpuState::default()
        })
        .collect();
    let guest = FlatGuest::new(ranges, cpus)?;
    Some(if layout & 0x20 != 0 {
        guest.with_bugcheck(0xD1, [q(1), q(2), q(3), q(4)])
    } else {
        guest
    })
}

/// The conversion, which does not depend on where guest memory comes from, over tiny guests
/// held in memory ([`FlatGuest`]): guest kernel discovery (page tables, IDT, KPCR, PE
/// headers, exports, version resource, KDBG, KPRCBs), the pages it patches, the dump in the
/// layout the input asks for, and the dump verified ([`convert_and_verify_as`]).
///
/// Input: a layout byte, five u64 registers, then guest memory from address 0 (at most
/// [`TINY_GUEST_MAX_BYTES`], whole pages, the last one padded with zeros). Layout bits 0-1:
/// paging mode (x64 4-level, x64 5-level, x86 PAE, x86 32-bit); bits 2-3: one range, or the
/// memory split at its middle page with the second half 1 MiB higher or at 4 GiB; bit 4: four
/// processors instead of one; bit 5: the guest reports a bug check; bits 6-7: automatic,
/// bitmap, bitmap without zero pages, or full dump. Registers: CR3, IDTR base (also RIP), GS
/// base (also RSP), kernel GS base, FS base.
///
/// Returns `None` when the input gives no guest, else whether a dump was written and verified.
pub fn convert(data: &[u8]) -> Option<bool> {
    use vm2dmp::DumpFormat;
    let guest = tiny_guest(data)?;
    let (format, skip_zero) = match data[0] >> 6 {
        0 => (DumpFormat::Auto, false),
        1 => (DumpFormat::Bitmap, false),
        2 => (DumpFormat::Bitmap, true),
        _ => (DumpFormat::Full, false),
    };
    Some(convert_and_verify_as(&guest, format, skip_zero))
}

/// PDB files given with `--symbols`: the `pdb` crate's parsing as the library drives it
/// (information stream, DBI age, address map, global symbols).
///
/// Returns the number of symbols read, `None` when the library refuses the PDB.
pub fn pdb_symbols(data: &[u8]) -> Option<usize> {
    vm2dmp::guest::fuzzing::parse_pdb(data)
}

/// The input as an in-memory ELF core (QEMU's `dump-guest-memory`, VirtualBox's
/// `dumpvmcore`).
pub fn open_elf_core(data: &[u8]) -> Option<vm2dmp::qemu::elf::ElfCore> {
    let file = InputFile::from_bytes(Path::new("fuzz.elf"), data.to_vec());
    vm2dmp::qemu::elf::ElfCore::from_input(file).ok()
}

/// Opens the input as an ELF core ([`open_elf_core`]: program headers, PT_LOAD segments,
/// QEMU / NT_PRSTATUS / VBCPU notes) and reads what it offers (see [`exercise_source`]).
/// Returns whether the input opened.
pub fn elf_core_open(data: &[u8]) -> bool {
    open_elf_core(data).map(|s| exercise_source(&s)).is_some()
}

/// The input as an in-memory kdump-compressed file, plain or flattened.
pub fn open_diskdump(data: &[u8]) -> Option<vm2dmp::qemu::kdump::KdumpFile> {
    let file = InputFile::from_bytes(Path::new("fuzz.kdump"), data.to_vec());
    vm2dmp::qemu::kdump::KdumpFile::from_input(file).ok()
}

/// Opens the input as a kdump-compressed file ([`open_diskdump`]: header, sub-header, notes,
/// bitmaps, page descriptors; pages are fuzzed by [`diskdump_page`]) and reads what it offers
/// (see [`exercise_source`]). Returns whether the input opened.
pub fn diskdump_open(data: &[u8]) -> bool {
    open_diskdump(data).map(|s| exercise_source(&s)).is_some()
}

/// One page of a kdump-compressed file through its decompressor.
///
/// Input: a method byte (0 zlib, 1 LZO1X, 2 snappy, 3 zstd; higher values wrap), then the
/// compressed page. Returns the decoded length when the stream is valid.
pub fn diskdump_page(data: &[u8]) -> Option<usize> {
    let (&method, src) = data.split_first()?;
    vm2dmp::qemu::kdump::fuzzing::decode_page(method, src)
}

/// A VMware state file and its `.vmem` held in memory: u32 (little-endian) length of the
/// state file, the state file, then the `.vmem` (the split is clamped to the input; an empty
/// `.vmem` is passed as none, for memory kept in the state file).
pub fn open_vmware(data: &[u8]) -> Option<vm2dmp::vmware::VmwareState> {
    let (len, rest) = data.split_first_chunk::<4>()?;
    let split = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (state, vmem) = rest.split_at(split);
    let vmem = (!vmem.is_empty()).then(|| vmem.to_vec());
    vm2dmp::vmware::VmwareState::from_bytes(Path::new("fuzz.vmss"), state.to_vec(), vmem).ok()
}

/// Opens a VMware state file and its `.vmem` ([`open_vmware`]) and reads what they offer (see
/// [`exercise_source`]). Returns whether the input opened.
pub fn vmware_open(data: &[u8]) -> bool {
    open_vmware(data).map(|s| exercise_source(&s)).is_some()
}

/// A raw memory image with a memory map: the map (`START-END,...` as `--memory-map` takes
/// it) up to the first newline, then the image. A map that does not parse reads the image
/// from address 0.
pub fn open_raw(data: &[u8]) -> Option<vm2dmp::raw::RawImage> {
    use vm2dmp::raw::{MemoryMap, RawImage, RawOptions};
    let (spec, image) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let map = std::str::from_utf8(spec)
        .ok()
        .and_then(|s| MemoryMap::parse(s).ok());
    let opts = RawOptions {
        map,
        ..RawOptions::default()
    };
    let file = InputFile::from_bytes(Path::new("fuzz.raw"), image.to_vec());
    RawImage::from_input(file, &opts).ok()
}

/// Opens a raw memory image with its map ([`open_raw`]) and reads what it offers (see
/// [`exercise_source`]). Returns whether the input opened.
pub fn raw_open(data: &[u8]) -> bool {
    open_raw(data).map(|s| exercise_source(&s)).is_some()
}
