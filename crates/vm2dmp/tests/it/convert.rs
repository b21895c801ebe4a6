//! Conversion: dumps of the real sample and of synthetic guests, opened by an independent
//! reader (the kdmp-parser crate) for x64 and by our own dump reader for x86, page by page.

use std::path::{Path, PathBuf};

use vm2dmp::kdump::{Arch, KernelDump};
use vm2dmp::{
    convert, verify, Cancel, ConvertOptions, DumpFile, DumpFormat, Error, NoProgress, Progress,
    SavedState, WritePath,
};
use vm2dmp_synth::{
    write_vmrs, write_vsv_bin, BlockEncoding, MixedContent, PagePolicy, PageSource, SparsePages,
    SynthRange, SynthVm, SynthVp,
};

const MIB_PAGES: u64 = 256;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}

fn x64_vps(n: u32) -> Vec<SynthVp> {
    (0..n)
        .map(|i| {
            let mut vp = SynthVp::x64_long_mode(
                i,
                0x1AA000 + u64::from(i) * 0x1000,
                0xFFFF_F800_1234_0000 + u64::from(i),
                0xFFFF_F800_0010_0000 + u64::from(i) * 0x1000,
            );
            vp.vtl0.gp.rax = 0xAA00 + u64::from(i);
            vp.vtl0.gp.r12 = 0x1212;
            vp.vtl0.fp.mxcsr = 0x1F80;
            vp
        })
        .collect()
}

/// x64 guest: RAM 0..3 MiB, a hole, 8 MiB..10 MiB, a hole, 4 GiB..4 GiB+2 MiB; mixed contents
/// (a third of the pages zero) in every token kind.
fn x64_vm(nvps: u32) -> SynthVm {
    let mut vm = SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 3 * MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: 8 * MIB_PAGES,
            page_count: 2 * MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: 0x10_0000,
            page_count: 2 * MIB_PAGES,
        },
    ])
    .with_pages(MixedContent { seed: 3 })
    .with_vps(x64_vps(nvps))
    .with_encoding(BlockEncoding::Tokens(PagePolicy::Mixed));
    vm.block_encoding
        .insert(0, BlockEncoding::Tokens(PagePolicy::Compressed));
    vm.block_encoding.insert(4, BlockEncoding::RawBlock);
    vm
}

fn page(src: &dyn PageSource, pfn: u64) -> [u8; 4096] {
    let mut p = [0u8; 4096];
    src.read_page(pfn, &mut p);
    p
}

/// Opens `dump` with the kdmp-parser crate and checks every guest page and the header.
fn check_with_kdmp_parser(dump: &Path, vm: &SynthVm, bitmap: bool, skip_zero: bool) {
    use kdmp_parser::gxa::Gpa;
    use kdmp_parser::parse::KernelDumpParser;
    let p = KernelDumpParser::new(dump).unwrap();
    let h = p.headers();
    let boot = &vm.vps[0].vtl0;
    assert_eq!(h.directory_table_base, boot.control.cr3);
    assert_eq!(h.number_processors as usize, vm.vps.len());
    assert_eq!(h.machine_image_type, 0x8664);
    assert_eq!(h.bug_check_code, 0x161);
    assert_eq!(h.dump_type, if bitmap { 5 } else { 1 });
    assert_eq!(
        h.required_dump_space as u64,
        std::fs::metadata(dump).unwrap().len()
    );
    let c = p.context_record();
    assert_eq!(
        (c.rip, c.rsp, c.rax, c.r12),
        (boot.gp.rip, boot.gp.rsp, boot.gp.rax, 0x1212)
    );
    assert_eq!(
        (c.seg_cs, c.seg_ss, c.seg_ds, c.seg_fs, c.seg_gs),
        (0x10, 0x18, 0x2B, 0x53, 0x2B)
    );
    assert_eq!(c.mxcsr, 0x1F80);
    assert_eq!(c.mxcsr2, 0x1F80);

    let file = std::fs::read(dump).unwrap();
    let present: std::collections::HashMap<u64, u64> =
        p.physmem().map(|(gpa, off)| (gpa.pfn(), off)).collect();
    let reader = kdmp_parser::phys::Reader::new(&p);
    let mut guest_pages = 0u64;
    for r in &vm.ranges {
        for pfn in r.gpa_page_start..r.gpa_page_start + r.page_count {
            guest_pages += 1;
            let want = page(vm.pages.as_ref(), pfn);
            match present.get(&pfn) {
                Some(&off) => {
                    let off = off as usize;
                    assert_eq!(&file[off..off + 4096], &want[..], "page {pfn:#x}");
                    let mut buf = [0u8; 4096];
                    reader.read_exact(Gpa::new(pfn << 12), &mut buf).unwrap();
                    assert_eq!(buf, want, "phys read of {pfn:#x}");
                }
                None => {
                    assert!(
                        skip_zero,
                        "page {pfn:#x} missing from a dump that keeps every page"
                    );
                    assert!(
                        want.iter().all(|&b| b == 0),
                        "non-zero page {pfn:#x} missing"
                    );
                }
            }
        }
    }
    // Nothing outside guest RAM; holes fail to read.
    assert!(present.keys().all(|pfn| vm
        .ranges
        .iter()
        .any(|r| *pfn >= r.gpa_page_start && *pfn < r.gpa_page_start + r.page_count)));
    let mut b = [0u8; 8];
    assert!(reader.read_exact(Gpa::new(5 << 20), &mut b).is_err());
    if !skip_zero {
        assert_eq!(present.len() as u64, guest_pages);
    } else {
        assert!((present.len() as u64) < guest_pages);
    }
}

fn convert_to(state: &SavedState, out: &Path, opts: ConvertOptions) -> vm2dmp::ConvertReport {
    convert(state, out, &opts, &NoProgress, &Cancel::new()).unwrap()
}

#[test]
fn x64_full_and_bitmap_dumps_read_back_by_kdmp_parser() {
    let dir = tempfile::tempdir().unwrap();
    for nvps in [1, 64] {
        let vm = x64_vm(nvps);
        let vmrs = dir.path().join(format!("x64-{nvps}.vmrs"));
        write_vmrs(&vm, &vmrs).unwrap();
        let state = SavedState::open(&vmrs).unwrap();

        let full = dir.path().join(format!("full-{nvps}.dmp"));
        let r = convert_to(&state, &full, ConvertOptions::default());
        assert_eq!(r.dump_type, 1);
        assert_eq!(r.pages_written, 7 * MIB_PAGES);
        assert_eq!(r.bytes, 0x2000 + 7 * MIB_PAGES * 4096);
        assert_eq!(r.number_processors, nvps);
        check_with_kdmp_parser(&full, &vm, false, false);

        let bitmap = dir.path().join(format!("bitmap-{nvps}.dmp"));
        let r = convert_to(
            &state,
            &bitmap,
            ConvertOptions {
                format: DumpFormat::Bitmap,
                ..Default::default()
            },
        );
        assert_eq!((r.dump_type, r.pages_written), (5, 7 * MIB_PAGES));
        check_with_kdmp_parser(&bitmap, &vm, true, false);

        let sparse = dir.path().join(format!("sparse-{nvps}.dmp"));
        let r = convert_to(
            &state,
            &sparse,
            ConvertOptions {
                skip_zero: true,
                ..Default::default()
            },
        );
        assert_eq!(r.dump_type, 5);
        assert!(r.pages_skipped > MIB_PAGES, "{r:?}");
        check_with_kdmp_parser(&sparse, &vm, true, true);
        let v = verify(
            &DumpFile::open(&sparse).unwrap(),
            &state,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .unwrap();
        assert!(v.ok() && v.absent_zero_pages == r.pages_skipped, "{v:?}");
    }
}

/// Raw blocks are copied from the input file inside the kernel where the platform can; an
/// input held in memory takes the read-and-write path. Both give the same pages, full and
/// bitmap, and the copied dump reads back right.
#[test]
fn raw_blocks_copied_or_written_give_the_same_dump() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = x64_vm(2);
    // Raw blocks at the start of a range, in the middle, and at the end of the last range.
    for b in [3, 5, 6] {
        vm.block_encoding.insert(b, BlockEncoding::RawBlock);
    }
    let vmrs = dir.path().join("raw.vmrs");
    write_vmrs(&vm, &vmrs).unwrap();
    let from_file = SavedState::open(&vmrs).unwrap();
    let in_memory =
        SavedState::from_bytes(Path::new("raw.vmrs"), std::fs::read(&vmrs).unwrap(), None).unwrap();
    for format in [DumpFormat::Full, DumpFormat::Bitmap] {
        let opts = || ConvertOptions {
            format,
            ..Default::default()
        };
        let a = dir.path().join(format!("{format:?}-file.dmp"));
        let b = dir.path().join(format!("{format:?}-memory.dmp"));
        convert_to(&from_file, &a, opts());
        convert_to(&in_memory, &b, opts());
        let (a_bytes, b_bytes) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(a_bytes.len(), b_bytes.len());
        let data = DumpFile::open(&a).unwrap().dump().data_offset() as usize;
        assert!(
            a_bytes[data..] == b_bytes[data..],
            "{format:?}: page data differs"
        );
        check_with_kdmp_parser(&a, &vm, format == DumpFormat::Bitmap, false);
    }
}

/// Both write paths (one writer thread fed by the decoders, or every decoder writing) give
/// the same bytes, for decoded pages, raw blocks copied file to file and skipped zero pages,
/// with one and with several workers.
#[test]
fn write_paths_give_identical_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = x64_vm(4);
    for b in [0, 3, 6] {
        vm.block_encoding.insert(b, BlockEncoding::RawBlock);
    }
    let vmrs = dir.path().join("paths.vmrs");
    write_vmrs(&vm, &vmrs).unwrap();
    let state = SavedState::open(&vmrs).unwrap();
    for (format, skip_zero) in [(DumpFormat::Full, false), (DumpFormat::Bitmap, true)] {
        let mut dumps = Vec::new();
        for threads in [1, 3] {
            for write_path in [WritePath::WriterThread, WritePath::Workers] {
                let out = dir.path().join(format!(
                    "{format:?}-{skip_zero}-{threads}-{write_path:?}.dmp"
                ));
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    convert_to(
                        &state,
                        &out,
                        ConvertOptions {
                            format,
                            skip_zero,
                            write_path,
                            ..Default::default()
                        },
                    )
                });
                dumps.push((out.clone(), std::fs::read(&out).unwrap()));
            }
        }
        for (path, bytes) in &dumps[1..] {
            assert!(
                *bytes == dumps[0].1,
                "{} differs from {}",
                path.display(),
                dumps[0].0.display()
            );
        }
        check_with_kdmp_parser(&dumps[0].0, &vm, format == DumpFormat::Bitmap, skip_zero);
    }
}

#[test]
fn vsv_bin_input_converts_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let vm = x64_vm(4);
    let (vsv, bin) = (dir.path().join("g.vsv"), dir.path().join("g.bin"));
    write_vsv_bin(&vm, &vsv, &bin).unwrap();
    let state = SavedState::open(&vsv).unwrap();
    let out = dir.path().join("g.dmp");
    convert_to(&state, &out, ConvertOptions::default());
    check_with_kdmp_parser(&out, &vm, false, false);
}

/// Our own reader for 32-bit dumps, which the kdmp-parser crate does not read.
fn check_with_own_reader(dump: &Path, state: &SavedState, pae: bool) {
    let bytes = std::fs::read(dump).unwrap();
    let d = KernelDump::parse(&bytes).unwrap();
    assert_eq!(d.arch(), Arch::X86 { pae });
    assert_eq!(d.machine_image_type(), 0x14C);
    assert_eq!(d.info().directory_table_base, state.boot_vcpu().cr3);
    assert_eq!(d.info().context.rip, state.boot_vcpu().rip);
    let mut it = state.pages();
    while let Some(p) = it.next() {
        let (pfn, want) = p.unwrap();
        assert_eq!(d.page(&bytes, pfn).unwrap(), want, "page {pfn:#x}");
    }
}

#[test]
fn x86_pae_and_32_bit_guests_get_32_bit_headers() {
    let dir = tempfile::tempdir().unwrap();
    for pae in [true, false] {
        let mut pages = SparsePages::new();
        pages.write(0x1234, b"x86 guest page");
        pages.fill_pattern(0x1F0, 0xCCCC_CCCC_CCCC_CCCC);
        let vp = if pae {
            SynthVp::x86_pae(0, 0x1000_0020, 0x8040_1000, 0x8080_0000)
        } else {
            SynthVp::x86_32(0, 0x3_9000, 0x8040_1000, 0x8080_0000)
        };
        let vm = SynthVm::new(vec![
            SynthRange {
                gpa_page_start: 0,
                page_count: 2 * MIB_PAGES,
            },
            SynthRange {
                gpa_page_start: 0x1_0000,
                page_count: MIB_PAGES,
            },
        ])
        .with_pages(pages)
        .with_vps(vec![vp, SynthVp::x86_pae(1, 0x1000_0020, 1, 2)]);
        let p = dir.path().join(format!("x86-{pae}.vmrs"));
        write_vmrs(&vm, &p).unwrap();
        let state = SavedState::open(&p).unwrap();
        let out = dir.path().join(format!("x86-{pae}.dmp"));
        let r = convert_to(&state, &out, ConvertOptions::default());
        assert_eq!(r.bytes, 0x1000 + 3 * MIB_PAGES * 4096);
        check_with_own_reader(&out, &state, pae);
        let out = dir.path().join(format!("x86-{pae}-bitmap.dmp"));
        let r = convert_to(
            &state,
            &out,
            ConvertOptions {
                skip_zero: true,
                ..Default::default()
            },
        );
        assert_eq!(r.pages_written, 2, "only the two non-zero pages");
        assert!(
            r.notes.iter().any(|n| n.contains("32-bit bitmap dump")
                && n.contains("full dumps that keep every page")),
            "{:?}",
            r.notes
        );
        let bytes = std::fs::read(&out).unwrap();
        let d = KernelDump::parse(&bytes).unwrap();
        assert_eq!(d.dump_type(), 5);
        assert_eq!(
            &d.page(&bytes, 1).unwrap()[0x234..0x234 + 14],
            b"x86 guest page"
        );
    }
}

#[test]
fn the_real_sample_converts_from_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["test_file.VMRS", "test_file.vsv"] {
        let state = SavedState::open(sample(name)).unwrap();
        let out = dir.path().join(format!("{name}.dmp"));
        let r = convert_to(&state, &out, ConvertOptions::default());
        assert_eq!((r.dump_type, r.pages_written), (1, 64512));
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("no Windows kernel is present")),
            "{:?}",
            r.notes
        );
        check_with_own_reader(&out, &state, false);
        let out = dir.path().join(format!("{name}.bitmap.dmp"));
        let r = convert_to(
            &state,
            &out,
            ConvertOptions {
                skip_zero: true,
                ..Default::default()
            },
        );
        // 234 non-zero pages in the VMRS (expected.json); zero pages stored compressed or raw
        // may remain.
        assert!(r.pages_written >= 234 && r.pages_written < 300, "{r:?}");
        let v = verify(
            &DumpFile::open(&out).unwrap(),
            &state,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .unwrap();
        assert!(v.ok(), "{v:?}");
    }
}

#[test]
fn more_than_42_ranges_become_a_bitmap_dump() {
    let dir = tempfile::tempdir().unwrap();
    let ranges: Vec<SynthRange> = (0..50)
        .map(|i| SynthRange {
            gpa_page_start: i * 2 * MIB_PAGES,
            page_count: 16,
        })
        .collect();
    let mut pages = SparsePages::new();
    for i in 0..50u64 {
        pages.write(i * 2 * MIB_PAGES * 4096 + 8, &i.to_le_bytes());
    }
    let vm = SynthVm::new(ranges).with_pages(pages).with_vps(x64_vps(2));
    let p = dir.path().join("many.vmrs");
    write_vmrs(&vm, &p).unwrap();
    let state = SavedState::open(&p).unwrap();
    let out = dir.path().join("many.dmp");
    let r = convert_to(&state, &out, ConvertOptions::default());
    assert_eq!((r.dump_type, r.pages_written), (5, 50 * 16));
    assert!(
        r.notes.iter().any(|n| n.contains("50 RAM ranges")),
        "{:?}",
        r.notes
    );
    check_with_kdmp_parser(&out, &vm, true, false);
    let e = convert(
        &state,
        &out,
        &ConvertOptions {
            format: DumpFormat::Full,
            force: true,
            ..Default::default()
        },
        &NoProgress,
        &Cancel::new(),
    );
    assert!(e.is_ok(), "full falls back to bitmap with a note");
}

/// A VM stopped in its firmware (real mode, no paging) with RAM above 4 GiB: a 32-bit header
/// without PAE, whose 32-bit PFN fields still describe the high RAM; every page verifies.
#[test]
fn real_mode_guest_with_ram_above_4_gib() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 2 * MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: 0x10_0000,
            page_count: 2 * MIB_PAGES,
        },
    ])
    .with_pages(MixedContent { seed: 9 });
    vm.vps = vec![SynthVp::real_mode(0, 0xF000, 0xFFF0)];
    let p = dir.path().join("bios.vmrs");
    write_vmrs(&vm, &p).unwrap();
    let state = SavedState::open(&p).unwrap();
    for format in [DumpFormat::Full, DumpFormat::Bitmap] {
        let out = dir.path().join(format!("bios-{format:?}.dmp"));
        let r = convert_to(
            &state,
            &out,
            ConvertOptions {
                format,
                ..Default::default()
            },
        );
        assert_eq!(r.pages_written, 4 * MIB_PAGES);
        let dump = DumpFile::open(&out).unwrap();
        assert_eq!(dump.dump().pae_enabled(), Some(false));
        let v = verify(&dump, &state, None, &NoProgress, &Cancel::new()).unwrap();
        assert!(v.ok() && v.pages_compared == 4 * MIB_PAGES, "{v:?}");
        let mut b = [0u8; 8];
        dump.read_phys((0x10_0000 << 12) + 8, &mut b).unwrap();
        let mut want = [0u8; 8];
        state.read_phys((0x10_0000 << 12) + 8, &mut want).unwrap();
        assert_eq!(b, want);
    }
}

/// Bitmap dumps that MemProcFS would not open get a note saying so; others do not.
#[test]
fn bitmap_dumps_memprocfs_cannot_open_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let bitmap = || ConvertOptions {
        format: DumpFormat::Bitmap,
        force: true,
        ..Default::default()
    };
    // RAM ending at 600 GiB: a 19 MiB page bitmap, so the pages start past 16 MiB.
    let far = 600 * 1024 * MIB_PAGES;
    let vm = SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: far - MIB_PAGES,
            page_count: MIB_PAGES,
        },
    ])
    .with_pages(MixedContent { seed: 5 })
    .with_vps(x64_vps(1));
    let p = dir.path().join("far.vmrs");
    write_vmrs(&vm, &p).unwrap();
    let state = SavedState::open(&p).unwrap();
    let out = dir.path().join("far.dmp");
    let r = convert_to(&state, &out, bitmap());
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("RAM ends at 600 GiB") && n.contains("MemProcFS")),
        "{:?}",
        r.notes
    );
    check_with_kdmp_parser(&out, &vm, true, false);
    // The usual x64 guest: no such note.
    let vm = x64_vm(1);
    let p = dir.path().join("near.vmrs");
    write_vmrs(&vm, &p).unwrap();
    let r = convert_to(&SavedState::open(&p).unwrap(), &out, bitmap());
    assert!(
        !r.notes.iter().any(|n| n.contains("MemProcFS")),
        "{:?}",
        r.notes
    );
}

/// Cancels after the first progress report.
struct CancelAfterFirst<'a>(&'a Cancel);

impl Progress for CancelAfterFirst<'_> {
    fn advance(&self, _n: u64) {
        self.0.cancel();
    }
}

fn only_entry(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn failures_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let mut vm = x64_vm(2);
    vm.ranges = vec![SynthRange {
        gpa_page_start: 0,
        page_count: 64 * MIB_PAGES,
    }];
    let p = inputs.path().join("big.vmrs");
    let layout = write_vmrs(&vm, &p).unwrap();
    let state = SavedState::open(&p).unwrap();
    let out = dir.path().join("out.dmp");

    // Cancelled midway (as Ctrl-C does).
    let cancel = Cancel::new();
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| {
            let e = convert(
                &state,
                &out,
                &ConvertOptions::default(),
                &CancelAfterFirst(&cancel),
                &cancel,
            )
            .unwrap_err();
            assert!(matches!(e, Error::Cancelled), "{e}");
        });
    assert!(
        only_entry(dir.path()).is_empty(),
        "{:?}",
        only_entry(dir.path())
    );

    // A RAM block that does not decode, found midway.
    let b = layout.ram_blocks.iter().find(|b| b.block == 40).unwrap();
    vm2dmp_synth::corrupt::set_u32(&p, b.value_offset, 0x1234_5678).unwrap();
    let state = SavedState::open(&p).unwrap();
    let e = convert(
        &state,
        &out,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("RAM block token stream") && msg.contains("RamBlock40"),
        "{msg}"
    );
    assert!(only_entry(dir.path()).is_empty());

    // An existing output survives a failed --force run unchanged.
    std::fs::write(&out, b"previous").unwrap();
    convert(
        &state,
        &out,
        &ConvertOptions {
            force: true,
            ..Default::default()
        },
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    assert_eq!(only_entry(dir.path()), vec!["out.dmp".to_string()]);
}
