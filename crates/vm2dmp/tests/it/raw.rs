//! Raw physical memory images: no header, no registers. A synthetic Windows guest is converted
//! once from a source with registers; the dump's memory, written out as a raw image with
//! holes left out, converts again with the kernel found by scanning memory and each
//! processor's registers read from its KPRCB, which hold what the first conversion stored.

use std::io::Write;

use vm2dmp::raw::{MemoryMap, RawImage, RawOptions};
use vm2dmp::source::{PagingMode, PAGE_SIZE};
use vm2dmp::{convert, verify, Cancel, ConvertOptions, DumpFile, Error, MemorySource, NoProgress};

use crate::flat::flat_image;
use crate::guest::{build, Clues};

/// The guest-physical memory of `dump` over `ranges`, back to back, and the map saying so.
fn raw_image_of(dump: &DumpFile, ranges: &[vm2dmp::source::RamRange]) -> (Vec<u8>, String) {
    let mut bytes = Vec::new();
    let mut map = Vec::new();
    for r in ranges {
        let start = bytes.len();
        bytes.resize(start + r.page_count as usize * PAGE_SIZE, 0);
        dump.read_phys(r.gpa_start(), &mut bytes[start..]).unwrap();
        map.push(format!("{:#x}-{:#x}", r.gpa_start(), r.gpa_end() - 1));
    }
    (bytes, map.join(","))
}

#[test]
fn a_raw_image_converts_with_registers_from_the_kprcbs() {
    let (vm, truth) = build(&Clues::x64());
    let image = flat_image(&vm);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.dmp");
    convert(
        &image,
        &first,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    let dump = DumpFile::open(&first).unwrap();
    let (bytes, spec) = raw_image_of(&dump, image.ram_ranges());
    let raw_path = dir.path().join("guest.raw");
    std::fs::File::create(&raw_path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();

    let opts = RawOptions {
        map: Some(MemoryMap::parse(&spec).unwrap()),
        ..RawOptions::default()
    };
    let raw = RawImage::open(&raw_path, &opts).unwrap();
    assert_eq!(raw.ram_ranges(), image.ram_ranges());
    assert!(raw.machine().processors_from_kernel);

    // No CR3 given: the kernel is found through page-table roots found by a scan.
    let kernel = vm2dmp::guest::find_kernel(&raw, None);
    assert!(kernel.found(), "{:?}", kernel.notes);
    assert_eq!(kernel.kd_debugger_data_block.value, Some(truth.kdbg_va));
    let cpus = vm2dmp::guest::kprcb::processor_states(&raw, &kernel);
    assert_eq!(cpus.len(), vm.vps.len());
    for (got, want) in cpus.iter().zip(image.vcpus()) {
        assert_eq!(
            (got.rip, got.rsp, got.rax, got.r15, got.rflags),
            (want.rip, want.rsp, want.rax, want.r15, want.rflags),
            "processor {}",
            want.index
        );
        assert_eq!((got.cr0, got.cr3, got.cr4), (want.cr0, want.cr3, want.cr4));
        assert_eq!(got.cs.selector, want.cs.selector);
        assert_eq!(got.gdtr, want.gdtr);
        assert_eq!(got.idtr, want.idtr);
    }

    let second = dir.path().join("second.dmp");
    let report = convert(
        &raw,
        &second,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!(report.directory_table_base, truth.system_dtb);
    assert_eq!(report.number_processors as usize, vm.vps.len());
    assert!(
        report.notes.iter().any(|n| n.contains("KPRCB")),
        "{:?}",
        report.notes
    );
    let again = DumpFile::open(&second).unwrap();
    let v = verify(&again, &raw, None, &NoProgress, &Cancel::new()).unwrap();
    assert!(v.ok(), "{v:?}");
    // Nothing is patched but the decoded KDBG: the KPRCBs already hold the registers.
    let patched = vm2dmp::guest::dump_patched_pages(&raw, None);
    let first_patched = vm2dmp::guest::dump_patched_pages(&image, None);
    assert!(
        patched.len() < first_patched.len(),
        "{patched:?} vs {first_patched:?}"
    );

    // An outside reader agrees on the context record and the pages.
    let parser = kdmp_parser::parse::KernelDumpParser::new(&second).unwrap();
    assert_eq!(parser.headers().directory_table_base, truth.system_dtb);
    assert_eq!(parser.context_record().rip, image.vcpus()[0].rip);
    assert_eq!(parser.context_record().rsp, image.vcpus()[0].rsp);
    let reader = kdmp_parser::phys::Reader::new(&parser);
    let mut page = [0u8; PAGE_SIZE];
    let mut want = [0u8; PAGE_SIZE];
    for r in raw.ram_ranges() {
        for pfn in (r.gpa_page_start..r.gpa_page_end()).step_by(7) {
            if patched.contains(&pfn) {
                continue;
            }
            reader
                .read_exact(kdmp_parser::gxa::Gpa::new(pfn << 12), &mut page)
                .unwrap();
            raw.read_phys(pfn << 12, &mut want).unwrap();
            assert!(page == want, "page {pfn:#x}");
        }
    }

    // Given the CR3, discovery starts there.
    let with_cr3 = RawImage::open(
        &raw_path,
        &RawOptions {
            cr3: Some(truth.system_dtb),
            ..opts.clone()
        },
    )
    .unwrap();
    let k = vm2dmp::guest::find_kernel(&with_cr3, None);
    assert!(k.found(), "{:?}", k.notes);
    assert_eq!(k.directory_table_base.value, Some(truth.system_dtb));
}

#[test]
fn a_raw_image_without_a_map_is_memory_from_address_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.mem");
    let mut bytes: Vec<u8> = (0..3 * PAGE_SIZE + 100).map(|i| (i % 251) as u8).collect();
    bytes[5] = 0xEE;
    std::fs::write(&path, &bytes).unwrap();
    let raw = RawImage::open(&path, &RawOptions::default()).unwrap();
    assert_eq!(raw.ram_pages(), 3);
    assert_eq!(raw.ram_ranges()[0].gpa_page_start, 0);
    let mut b = [0u8; 16];
    raw.read_phys(0, &mut b).unwrap();
    assert_eq!(b[..], bytes[..16]);
    assert!(matches!(
        raw.read_phys(3 * PAGE_SIZE as u64 - 8, &mut b),
        Err(Error::Hole { gpa }) if gpa == 3 * PAGE_SIZE as u64
    ));
    let m = raw.machine();
    assert!(
        m.notes.iter().any(|n| n.contains("100 bytes")),
        "{:?}",
        m.notes
    );
    assert!(
        m.notes.iter().any(|n| n.contains("64-bit")),
        "{:?}",
        m.notes
    );
    assert_eq!(raw.vcpus()[0].paging_mode(), PagingMode::Long);

    // A map describing more than the file holds is refused.
    let too_big = RawOptions {
        map: Some(MemoryMap::parse("0-0x3fff").unwrap()),
        ..RawOptions::default()
    };
    let e = RawImage::open(&path, &too_big).unwrap_err().to_string();
    assert!(
        e.contains("16384 bytes") && e.contains("small.mem: memory map at offset 0x3064"),
        "{e}"
    );
    // An empty file has no page.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        RawImage::open(&path, &RawOptions::default()),
        Err(Error::NoMemoryImage { .. })
    ));
}

#[test]
fn memory_maps_parse_strictly() {
    let a = MemoryMap::parse("0x0-0x9ffff, 0x100000-0xbfffffff,0x100000000-0x13fffffff").unwrap();
    let b = MemoryMap::parse("0-0xa0000,0x100000-0xc0000000,4294967296-0x140000000").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.bytes(), 0xA0000 + 0xBFF0_0000 + 0x4000_0000);
    for bad in [
        "",
        "0x0",
        "0x0-0x123",
        "0x10-0x2000",
        "0x2000-0x1000",
        "0x0-0x2000,0x1000-0x3000",
        "zz-0x1000",
        "0x0-0xffffffffffffffff",
    ] {
        let e = MemoryMap::parse(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
    }
}
