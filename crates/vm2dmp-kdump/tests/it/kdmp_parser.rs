//! Dumps written with `DumpLayout` opened by an independent reader, the `kdmp-parser`
//! crate: every page, the header fields, the context and absent pages.

use crate::common::*;
use kdmp_parser::gxa::{Gpa, Gxa};
use kdmp_parser::parse::KernelDumpParser;
use kdmp_parser::phys;
use std::collections::BTreeMap;
use std::io::Write;
use vm2dmp_kdump::{Arch, DumpHeaderInfo, DumpLayout, KernelDump, MemoryRun};

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// Opens `bytes` with kdmp-parser and checks it against what was written.
fn check_with_kdmp_parser(
    bytes: &[u8],
    layout: &DumpLayout,
    info: &DumpHeaderInfo,
    present: &[u64],
    absent: &[u64],
) {
    let file = write_temp(bytes);
    let p = KernelDumpParser::new(file.path()).unwrap();
    let h = p.headers();
    assert_eq!(h.directory_table_base, info.directory_table_base);
    assert_eq!(h.number_processors, info.number_processors);
    assert_eq!(h.machine_image_type, 0x8664);
    assert_eq!(h.minor_version, info.minor_version);
    assert_eq!(h.kd_debugger_data_block, info.kd_debugger_data_block);
    assert_eq!(h.ps_loaded_module_list, info.ps_loaded_module_list);
    assert_eq!(h.bug_check_code, info.bugcheck_code);
    assert_eq!(h.required_dump_space as u64, bytes.len() as u64);
    assert_eq!(h.dump_type, layout.dump_type());
    let c = p.context_record();
    let ctx = &info.context;
    assert_eq!(c.context_flags, 0x10_001F);
    assert_eq!(c.rip, ctx.rip);
    assert_eq!(c.rsp, ctx.rsp);
    assert_eq!(c.rax, ctx.rax);
    assert_eq!(c.rbx, ctx.rbx);
    assert_eq!(c.eflags as u64, ctx.rflags);
    assert_eq!(
        (c.seg_cs, c.seg_ds, c.seg_es, c.seg_fs, c.seg_gs, c.seg_ss),
        (ctx.cs, ctx.ds, ctx.es, ctx.fs, ctx.gs, ctx.ss)
    );
    assert_eq!(c.mxcsr, ctx.mxcsr);
    assert_eq!(c.mxcsr2, ctx.mxcsr);
    assert_eq!(c.control_word, 0x27F);

    // Its page map equals ours, offset for offset.
    let theirs: BTreeMap<u64, u64> = p
        .physmem()
        .map(|(gpa, off)| (gpa.u64() >> 12, off))
        .collect();
    let ours: BTreeMap<u64, u64> = present
        .iter()
        .map(|&pfn| (pfn, layout.page_offset(pfn).unwrap()))
        .collect();
    assert_eq!(theirs, ours);

    // Every page's bytes, read page by page (the crate's multi-page unaligned reads are
    // wrong, see the format reference 7.1).
    let reader = phys::Reader::new(&p);
    let mut buf = vec![0u8; PAGE];
    for &pfn in present {
        reader.read_exact(Gpa::new(pfn << 12), &mut buf).unwrap();
        assert!(buf == page_content(pfn), "page {pfn:#x}");
    }
    // A two-page read across a page boundary inside present memory.
    if let Some(w) = present.windows(2).find(|w| w[1] == w[0] + 1) {
        let mut two = [0u8; 16];
        reader
            .read_exact(Gpa::new((w[1] << 12) - 8), &mut two)
            .unwrap();
        let a = (w[1] << 12) - 8;
        assert_eq!(
            u64::from_le_bytes(two[..8].try_into().unwrap()),
            0xD0D0_0000_0000_0000 | a
        );
        assert_eq!(
            u64::from_le_bytes(two[8..].try_into().unwrap()),
            0xD0D0_0000_0000_0000 | (a + 8)
        );
    }
    for &pfn in absent {
        assert!(
            reader.read_exact(Gpa::new(pfn << 12), &mut buf).is_err(),
            "absent page {pfn:#x} readable"
        );
    }

    // Our own reader agrees.
    let ours = KernelDump::parse(bytes).unwrap();
    for &pfn in present {
        assert_eq!(ours.page(bytes, pfn).unwrap(), &page_content(pfn)[..]);
    }
    for &pfn in absent {
        assert!(ours.page(bytes, pfn).is_err());
    }
}

/// RAM with holes and memory above 4 GiB, kept small: 5 runs, 182 pages.
fn sparse_runs() -> Vec<MemoryRun> {
    vec![
        run(0x1, 0x20),
        run(0x40, 0x10),
        run(0x9F, 0x1),
        run(0x100000, 0x80),
        run(0x23_4567, 0x15),
    ]
}

const ABSENT: [u64; 7] = [0x0, 0x21, 0x3F, 0x50, 0xA0, 0x100080, 0x23_4566];

#[test]
fn full_dump_opens_in_kdmp_parser() {
    let runs = sparse_runs();
    let layout = DumpLayout::full(Arch::X64, &runs).unwrap();
    let info = x64_info();
    let present = run_pfns(&runs);
    let bytes = build_dump(&layout, &info, &present);
    let p = KernelDumpParser::new(write_temp(&bytes).path()).unwrap();
    assert!(matches!(
        p.dump_type(),
        kdmp_parser::structs::DumpType::Full
    ));
    drop(p);
    check_with_kdmp_parser(&bytes, &layout, &info, &present, &ABSENT);
}

#[test]
fn bitmap_dump_opens_in_kdmp_parser() {
    let runs = sparse_runs();
    // Leave out some pages inside the runs as well (e.g. all-zero pages).
    let present: Vec<u64> = run_pfns(&runs)
        .into_iter()
        .filter(|p| p % 7 != 3 && *p != 0x100000)
        .collect();
    let layout = DumpLayout::bitmap(Arch::X64, &runs, bitmap_of(&runs, &present)).unwrap();
    assert_eq!(layout.data_offset() % 0x1000, 0);
    assert_eq!(layout.bitmap_bits().unwrap() % 8, 0);
    let info = x64_info();
    let bytes = build_dump(&layout, &info, &present);
    let p = KernelDumpParser::new(write_temp(&bytes).path()).unwrap();
    assert!(matches!(p.dump_type(), kdmp_parser::structs::DumpType::Bmp));
    drop(p);
    let mut absent = ABSENT.to_vec();
    absent.extend([0x3, 0xA, 0x100000]);
    check_with_kdmp_parser(&bytes, &layout, &info, &present, &absent);
}

#[test]
fn bitmap_dump_with_many_runs_opens_in_kdmp_parser() {
    // 60 runs: too many for a full dump, fine as a bitmap.
    let runs: Vec<MemoryRun> = (0..60)
        .map(|i| run(i * 3 + (i / 20) * 0x80000, 2))
        .collect();
    assert!(DumpLayout::full(Arch::X64, &runs).is_err());
    let present = run_pfns(&runs);
    let layout = DumpLayout::bitmap(Arch::X64, &runs, bitmap_of(&runs, &present)).unwrap();
    let info = x64_info();
    let bytes = build_dump(&layout, &info, &present);
    check_with_kdmp_parser(&bytes, &layout, &info, &present, &[2, 5, 0x80000 + 62]);
}

#[test]
fn forty_two_runs_open_in_kdmp_parser() {
    let runs: Vec<MemoryRun> = (0..42).map(|i| run(i * 4 + 1, 1 + i % 3)).collect();
    let layout = DumpLayout::full(Arch::X64, &runs).unwrap();
    assert_eq!(layout.runs().len(), 42);
    let info = x64_info();
    let present = run_pfns(&runs);
    let bytes = build_dump(&layout, &info, &present);
    check_with_kdmp_parser(&bytes, &layout, &info, &present, &[0, 4, 8, 42 * 4 + 1]);

    let mut more = runs.clone();
    more.push(run(0x1000, 1));
    assert!(DumpLayout::full(Arch::X64, &more).is_err());
}
