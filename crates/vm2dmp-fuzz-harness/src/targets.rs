//! One function per fuzz target, named after it, with the target's whole body. The
//! documentation of each function gives the target's input format.

use std::path::Path;
use std::sync::OnceLock;

use vm2dmp::guest::translate::{check_dtb, read_virt, translate, Dtb, Paging, PhysMem};
use vm2dmp::source::InputFile;
use vm2dmp_kdump::KernelDump;
use vm2dmp_xpress::{
    compress, decompress_bounded, decompress_into, decompress_page, max_compressed_len, PAGE_SIZE,
};

use crate::{convert_and_verify, exercise, fix_hvs_checksums, KernelTemplate};

/// Opens the input as an in-memory `.vmrs` and reads everything it offers, keys included
/// (see [`exercise`]).
///
/// Inputs of even length get their HVS checksums recomputed first ([`fix_hvs_checksums`]), so
/// that mutations reach the structures behind the CRC-32 fields; odd-length inputs are read
/// exactly as given, which keeps the checksum checks themselves under test.
///
/// Returns the number of dumps written and verified (0 when the input does not open).
pub fn vmrs_open(data: &[u8]) -> usize {
    let mut bytes = data.to_vec();
    if bytes.len() % 2 == 0 {
        fix_hvs_checksums(&mut bytes);
    }
    // Every key, as `vm2dmp keys` lists them (also for files without memory).
    let _ = vm2dmp::hyperv::list_keys_from_bytes(Path::new("fuzz.vmrs"), bytes.clone(), false);
    if let Ok(state) = vm2dmp::SavedState::from_bytes(Path::new("fuzz.vmrs"), bytes, None) {
        exercise(&state)
    } else {
        0
    }
}

/// Opens a `.vsv` + `.bin` pair held in memory and reads everything it offers (see
/// [`exercise`]).
///
/// Input: u32 (little-endian) length of the `.vsv` image, the `.vsv` image, then the `.bin`
/// image (the split is clamped to the input).
///
/// Returns the number of dumps written and verified (0 when the input does not open).
pub fn vsv_bin_open(data: &[u8]) -> usize {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return 0;
    };
    let split = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (vsv, bin) = rest.split_at(split);
    if let Ok(state) =
        vm2dmp::SavedState::from_bytes(Path::new("fuzz.vsv"), vsv.to_vec(), Some(bin.to_vec()))
    {
        exercise(&state)
    } else {
        0
    }
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

static TEMPLATE: OnceLock<KernelTemplate> = OnceLock::new();

/// Guest kernel discovery (page tables, IDT, KPCR, PE headers, exports, version resource,
/// KDBG) over guest memory and registers the input provides, in a 1 MiB x64 or x86 saved
/// state; what is found is converted and the dump verified ([`convert_and_verify`]).
///
/// Input: see [`KernelTemplate::build`] (a mode byte, five u64 registers, then guest memory
/// from physical address 0). The template is built once per process.
///
/// Returns `None` when no kernel image is found, else the number of dumps written and
/// verified.
pub fn kernel(data: &[u8]) -> Option<usize> {
    let template = TEMPLATE.get_or_init(KernelTemplate::new);
    let bytes = template.build(data)?;
    let state = vm2dmp::SavedState::from_bytes(Path::new("kernel.vmrs"), bytes, None)
        .expect("the template opens whatever the registers and memory");
    let k = vm2dmp::guest::find_kernel(&state, None);
    let _ = vm2dmp::guest::dump_patched_pages(&state, None);
    k.image.is_some().then(|| convert_and_verify(&state))
}

/// PDB files given with `--symbols`: the `pdb` crate's parsing as the library drives it
/// (information stream, DBI age, address map, global symbols).
///
/// Returns the number of symbols read, `None` when the library refuses the PDB.
pub fn pdb_symbols(data: &[u8]) -> Option<usize> {
    vm2dmp::guest::fuzzing::parse_pdb(data)
}

/// Opens the input as an in-memory ELF core (QEMU's `dump-guest-memory`, VirtualBox's
/// `dumpvmcore`: program headers, PT_LOAD segments, QEMU / NT_PRSTATUS / VBCPU notes) and
/// reads everything it offers (see [`exercise_source`](crate::exercise_source)).
///
/// Returns the number of dumps written and verified (0 when the input does not open).
pub fn elf_core_open(data: &[u8]) -> usize {
    let file = InputFile::from_bytes(Path::new("fuzz.elf"), data.to_vec());
    match vm2dmp::qemu::elf::ElfCore::from_input(file) {
        Ok(core) => crate::exercise_source(&core),
        Err(_) => 0,
    }
}

/// Opens the input as an in-memory kdump-compressed file (plain or flattened: header,
/// sub-header, notes, bitmaps, page descriptors, zlib / LZO / snappy / zstd pages) and reads
/// everything it offers (see [`exercise_source`](crate::exercise_source)).
///
/// Returns the number of dumps written and verified (0 when the input does not open).
pub fn diskdump_open(data: &[u8]) -> usize {
    let file = InputFile::from_bytes(Path::new("fuzz.kdump"), data.to_vec());
    match vm2dmp::qemu::kdump::KdumpFile::from_input(file) {
        Ok(kd) => crate::exercise_source(&kd),
        Err(_) => 0,
    }
}

/// One page of a kdump-compressed file through its decompressor.
///
/// Input: a method byte (0 zlib, 1 LZO1X, 2 snappy, 3 zstd; higher values wrap), then the
/// compressed page. Returns the decoded length when the stream is valid.
pub fn diskdump_page(data: &[u8]) -> Option<usize> {
    let (&method, src) = data.split_first()?;
    vm2dmp::qemu::kdump::fuzzing::decode_page(method, src)
}

/// Opens a VMware state file and its `.vmem` held in memory and reads everything they offer
/// (see [`exercise_source`](crate::exercise_source)).
///
/// Input: u32 (little-endian) length of the state file, the state file, then the `.vmem`
/// (the split is clamped to the input; an empty `.vmem` is passed as none, for memory kept
/// in the state file).
///
/// Returns the number of dumps written and verified (0 when the input does not open).
pub fn vmware_open(data: &[u8]) -> usize {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return 0;
    };
    let split = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (state, vmem) = rest.split_at(split);
    let vmem = (!vmem.is_empty()).then(|| vmem.to_vec());
    match vm2dmp::vmware::VmwareState::from_bytes(Path::new("fuzz.vmss"), state.to_vec(), vmem) {
        Ok(s) => crate::exercise_source(&s),
        Err(_) => 0,
    }
}

/// A raw memory image with a memory map.
///
/// Input: a memory map (`START-END,...` as `--memory-map` takes it) up to the first newline,
/// then the image. A map that does not parse reads the image from address 0. Returns the
/// number of dumps written and verified.
pub fn raw_open(data: &[u8]) -> usize {
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
    match RawImage::from_input(file, &opts) {
        Ok(raw) => crate::exercise_source(&raw),
        Err(_) => 0,
    }
}
