//! Header bytes, run validation, page offsets and bitmap summaries of [`DumpLayout`]
//! on small layouts, with every offset checked against the format reference.

use super::*;
use crate::context::CpuContext;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
fn is_page_fill(b: &[u8], range: std::ops::Range<usize>) -> bool {
    range.clone().all(|i| b[i] == b"PAGE"[i % 4])
}
fn is_zero(b: &[u8], range: std::ops::Range<usize>) -> bool {
    b[range].iter().all(|&x| x == 0)
}
fn r(base: u64, count: u64) -> MemoryRun {
    MemoryRun::new(base, count)
}
fn sample_info() -> DumpHeaderInfo {
    DumpHeaderInfo {
        major_version: 0xF,
        minor_version: 19041,
        directory_table_base: 0x1AD000,
        pfn_database: 0xFFFF_FA80_0000_0000,
        ps_loaded_module_list: 0xFFFF_F800_1234_5670,
        ps_active_process_head: 0xFFFF_F800_1234_5680,
        kd_debugger_data_block: 0xFFFF_F800_1200_0000,
        number_processors: 4,
        bugcheck_code: 0x161,
        bugcheck_parameters: [1, 2, 3, 4],
        system_time: 0x01DA_0000_0000_0000,
        system_uptime: 123_456_789,
        comment: "vm2dmp test".into(),
        product_type: 1,
        suite_mask: 0x110,
        kd_secondary_version: 0x41,
        attributes: 0,
        exception_code: 0,
        exception_address: 0,
        context: CpuContext {
            rip: 0xFFFF_F800_1000_0000,
            rsp: 0xFFFF_8000_0000_1000,
            cs: 0x10,
            ss: 0x18,
            ds: 0x2B,
            es: 0x2B,
            fs: 0x53,
            gs: 0x2B,
            mxcsr: 0x1FA0,
            ..CpuContext::default()
        },
    }
}

#[test]
fn x64_full_header_fields_and_fill() {
    let runs = [r(1, 0x9E), r(0x100, 0x100), r(0x100000, 0x10)];
    let l = DumpLayout::full(Arch::X64, &runs).unwrap();
    let info = sample_info();
    let b = l.header_bytes(&info);
    assert_eq!(b.len(), 0x2000);
    assert_eq!(&b[..8], b"PAGEDU64");
    assert_eq!(u32_at(&b, 0x008), 0xF);
    assert_eq!(u32_at(&b, 0x00C), 19041);
    assert_eq!(u64_at(&b, 0x010), 0x1AD000);
    assert_eq!(u64_at(&b, 0x018), info.pfn_database);
    assert_eq!(u64_at(&b, 0x020), info.ps_loaded_module_list);
    assert_eq!(u64_at(&b, 0x028), info.ps_active_process_head);
    assert_eq!(u32_at(&b, 0x030), 0x8664);
    assert_eq!(u32_at(&b, 0x034), 4);
    assert_eq!(u32_at(&b, 0x038), 0x161);
    assert_eq!(u64_at(&b, 0x040), 1);
    assert_eq!(u64_at(&b, 0x058), 4);
    assert_eq!(u64_at(&b, 0x080), info.kd_debugger_data_block);
    // Run list.
    assert_eq!(u32_at(&b, 0x088), 3);
    assert_eq!(u32_at(&b, 0x08C), 0);
    assert_eq!(u64_at(&b, 0x090), 0x9E + 0x100 + 0x10);
    assert_eq!((u64_at(&b, 0x098), u64_at(&b, 0x0A0)), (1, 0x9E));
    assert_eq!((u64_at(&b, 0x0A8), u64_at(&b, 0x0B0)), (0x100, 0x100));
    assert_eq!((u64_at(&b, 0x0B8), u64_at(&b, 0x0C0)), (0x100000, 0x10));
    // Context.
    assert_eq!(u32_at(&b, 0x348 + 0x30), 0x10_001F);
    assert_eq!(u32_at(&b, 0x37C), 0x1FA0);
    assert_eq!(u32_at(&b, 0x460), 0x1FA0);
    assert_eq!(u64_at(&b, 0x348 + 0xF8), info.context.rip);
    assert_eq!(u64_at(&b, 0x348 + 0x98), info.context.rsp);
    assert_eq!(b[0x348 + 0x100], 0x7F); // FCW 0x27F
    assert_eq!(u32_at(&b, 0xF98), 1);
    assert_eq!(u64_at(&b, 0xFA0), l.file_size());
    assert_eq!(l.file_size(), 0x2000 + (0x9E + 0x100 + 0x10) * 0x1000);
    assert_eq!(u64_at(&b, 0xFA8), info.system_time);
    assert_eq!(&b[0xFB0..0xFBC], b"vm2dmp test\0");
    assert_eq!(u64_at(&b, 0x1030), info.system_uptime);
    assert_eq!(u32_at(&b, 0x1040), 1);
    assert_eq!(u32_at(&b, 0x1044), 0x110);
    assert_eq!(b[0x104D], 0x41);
    // Fill convention (reference 2.5).
    assert!(is_zero(&b, 0x03C..0x040));
    assert!(is_zero(&b, 0x060..0x080));
    assert!(is_page_fill(&b, 0x0C8..0x344));
    assert!(is_zero(&b, 0x344..0x348));
    assert!(is_zero(&b, 0x348 + 0x4D0..0xF00));
    assert!(is_zero(&b, 0xF00..0xF98));
    assert!(is_zero(&b, 0xF9C..0xFA0));
    assert!(is_zero(&b, 0xFBC..0x1030));
    assert!(is_zero(&b, 0x1038..0x1040));
    assert!(is_zero(&b, 0x1048..0x104D));
    assert!(is_zero(&b, 0x104E..0x1058));
    assert!(is_page_fill(&b, 0x1058..0x2000));
}

#[test]
fn x86_full_header_fields_and_fill() {
    let runs = [r(1, 0x9E), r(0x100, 0x100)];
    let info = DumpHeaderInfo {
        directory_table_base: 0x0031_C020,
        ps_loaded_module_list: 0xFFFF_FFFF_8055_A420,
        kd_debugger_data_block: 0xFFFF_FFFF_8054_CDE0,
        ..sample_info()
    };
    for pae in [false, true] {
        let l = DumpLayout::full(Arch::X86 { pae }, &runs).unwrap();
        let b = l.header_bytes(&info);
        assert_eq!(b.len(), 0x1000);
        assert_eq!(&b[..8], b"PAGEDUMP");
        assert_eq!(u32_at(&b, 0x010), 0x0031_C020);
        assert_eq!(u32_at(&b, 0x018), 0x8055_A420);
        assert_eq!(u32_at(&b, 0x020), 0x14C);
        assert_eq!(u32_at(&b, 0x024), 4);
        assert_eq!(u32_at(&b, 0x028), 0x161);
        assert_eq!(u32_at(&b, 0x02C), 1);
        assert_eq!(b[0x05C], u8::from(pae));
        assert_eq!(b[0x05D], 0x41);
        assert_eq!(u32_at(&b, 0x060), 0x8054_CDE0);
        assert_eq!(u32_at(&b, 0x064), 2);
        assert_eq!(u32_at(&b, 0x068), 0x19E);
        assert_eq!((u32_at(&b, 0x06C), u32_at(&b, 0x070)), (1, 0x9E));
        assert_eq!((u32_at(&b, 0x074), u32_at(&b, 0x078)), (0x100, 0x100));
        assert_eq!(u32_at(&b, 0x320), 0x1_003F);
        assert_eq!(u32_at(&b, 0x320 + 0xB8), 0x1000_0000); // Eip low half
        assert_eq!(u32_at(&b, 0x320 + 0xBC), 0x10);
        assert_eq!(u32_at(&b, 0x320 + 0xCC + 0x18), 0x1FA0);
        assert_eq!(&b[0x820..0x82C], b"vm2dmp test\0");
        assert_eq!(u32_at(&b, 0xF88), 1);
        assert_eq!(u32_at(&b, 0xF94), 1);
        assert_eq!(u32_at(&b, 0xF98), 0x110);
        assert_eq!(u64_at(&b, 0xFA0), 0x1000 + 0x19E * 0x1000);
        assert_eq!(u64_at(&b, 0xFB8), info.system_uptime);
        assert_eq!(u64_at(&b, 0xFC0), info.system_time);
        // Fill convention.
        assert!(is_zero(&b, 0x03C..0x05C));
        assert!(is_zero(&b, 0x05E..0x060));
        assert!(is_page_fill(&b, 0x07C..0x320));
        assert!(is_zero(&b, 0x320 + 0x2CC..0x7D0));
        assert!(is_zero(&b, 0x7D0..0x820));
        assert!(is_zero(&b, 0x8A0..0x8A8));
        assert!(is_page_fill(&b, 0x8A8..0xF88));
        assert!(is_zero(&b, 0xF8C..0xF94));
        assert!(is_zero(&b, 0xF9C..0xFA0));
        assert!(is_page_fill(&b, 0xFA8..0xFB8));
        assert!(is_page_fill(&b, 0xFC8..0x1000));
    }
}

#[test]
fn run_limits() {
    let runs = |n: u64| (0..n).map(|i| r(i * 2, 1)).collect::<Vec<_>>();
    assert!(DumpLayout::full(Arch::X64, &runs(42)).is_ok());
    assert_eq!(
        DumpLayout::full(Arch::X64, &runs(43)),
        Err(LayoutError::TooManyRuns { runs: 43, max: 42 })
    );
    let x86 = Arch::X86 { pae: true };
    assert!(DumpLayout::full(x86, &runs(86)).is_ok());
    assert_eq!(
        DumpLayout::full(x86, &runs(87)),
        Err(LayoutError::TooManyRuns { runs: 87, max: 86 })
    );
    // Touching runs merge, so 100 adjacent runs are one.
    let touching: Vec<_> = (0..100).map(|i| r(i * 4, 4)).collect();
    let l = DumpLayout::full(Arch::X64, &touching).unwrap();
    assert_eq!(l.runs(), &[r(0, 400)]);
    // A bitmap dump takes any number of runs; the header lists 42 of them.
    let many = runs(100);
    let present = PageBitmap::new(200);
    for run in &many {
        present.set(run.base_page);
    }
    let l = DumpLayout::bitmap(Arch::X64, &many, present).unwrap();
    let described = l.described_runs();
    assert_eq!(described.len(), 42);
    let b = l.header_bytes(&DumpHeaderInfo::default());
    assert_eq!(u32_at(&b, 0x088), 42);
    assert_eq!(
        u64_at(&b, 0x090),
        described.iter().map(|r| r.page_count).sum::<u64>()
    );
    assert_eq!(described.first().unwrap().base_page, 0);
    let last = described.last().unwrap();
    assert_eq!(last.base_page + last.page_count, 199);
}

#[test]
fn run_validation() {
    assert_eq!(DumpLayout::full(Arch::X64, &[]), Err(LayoutError::NoRuns));
    assert_eq!(
        DumpLayout::full(Arch::X64, &[r(0, 1), r(5, 0)]),
        Err(LayoutError::EmptyRun { index: 1 })
    );
    assert_eq!(
        DumpLayout::full(Arch::X64, &[r(0, 10), r(5, 10)]),
        Err(LayoutError::RunsNotAscending {
            index: 1,
            base_page: 5
        })
    );
    assert_eq!(
        DumpLayout::full(Arch::X64, &[r(10, 1), r(5, 1)]),
        Err(LayoutError::RunsNotAscending {
            index: 1,
            base_page: 5
        })
    );
    assert!(matches!(
        DumpLayout::full(Arch::X64, &[r(u64::MAX, 2)]),
        Err(LayoutError::RunBeyondLimit { index: 0, .. })
    ));
    // RAM above 4 GiB fits a 32-bit header with or without PAE; above 16 TiB it does not.
    let high = [r(0, 0x10), r(0x100000, 0x10)];
    assert!(DumpLayout::full(Arch::X86 { pae: false }, &high).is_ok());
    assert!(DumpLayout::full(Arch::X86 { pae: true }, &high).is_ok());
    let beyond = [r(0, 0x10), r(0xFFFF_FFF8, 0x10)];
    for pae in [false, true] {
        assert!(matches!(
            DumpLayout::full(Arch::X86 { pae }, &beyond),
            Err(LayoutError::RunBeyondLimit {
                index: 1,
                end: 0x1_0000_0008,
                limit: 0x1_0000_0000
            })
        ));
    }
}

#[test]
fn full_page_offsets() {
    let l = DumpLayout::full(Arch::X64, &[r(1, 3), r(0x10, 2), r(0x100000, 4)]).unwrap();
    assert_eq!(l.page_offset(0), None);
    assert_eq!(l.page_offset(1), Some(0x2000));
    assert_eq!(l.page_offset(3), Some(0x4000));
    assert_eq!(l.page_offset(4), None);
    assert_eq!(l.page_offset(0x10), Some(0x5000));
    assert_eq!(l.page_offset(0x11), Some(0x6000));
    assert_eq!(l.page_offset(0x100003), Some(0xA000));
    assert_eq!(l.page_offset(0x100004), None);
    assert_eq!(l.file_size(), 0xB000);
    assert_eq!(l.span_offset(1, 3), Some(0x2000));
    assert_eq!(l.span_offset(1, 4), None);
    assert_eq!(l.span_offset(2, 0), None);
    assert_eq!(l.span_offset(u64::MAX, 2), None);
    assert_eq!(
        l.present_spans().collect::<Vec<_>>(),
        vec![
            PageSpan {
                first_pfn: 1,
                page_count: 3,
                file_offset: 0x2000
            },
            PageSpan {
                first_pfn: 0x10,
                page_count: 2,
                file_offset: 0x5000
            },
            PageSpan {
                first_pfn: 0x100000,
                page_count: 4,
                file_offset: 0x7000
            },
        ]
    );
    let x86 = DumpLayout::full(Arch::X86 { pae: false }, &[r(0, 2)]).unwrap();
    assert_eq!(x86.page_offset(1), Some(0x2000));
}

#[test]
fn bitmap_rounding_and_summary() {
    // RAM ends at PFN 0x1002: Pages rounds up to 0x1008.
    let runs = [r(0, 0xA0), r(0x100, 0xF02)];
    let present = PageBitmap::new(0x1002);
    present.set_range(0, 0xA0);
    present.set_range(0x1000, 2);
    present.clear(5);
    let l = DumpLayout::bitmap(Arch::X64, &runs, present).unwrap();
    assert_eq!(l.dump_type(), 5);
    assert_eq!(l.bitmap_bits(), Some(0x1008));
    assert_eq!(l.present_pages(), 0xA0 - 1 + 2);
    // 0x2000 + 0x38 + 0x201 bitmap bytes -> first page at 0x3000.
    assert_eq!(l.data_offset(), 0x3000);
    assert_eq!(l.file_size(), 0x3000 + 0xA1 * 0x1000);
    let b = l.header_bytes(&DumpHeaderInfo::default());
    assert_eq!(b.len(), 0x3000);
    assert_eq!(u32_at(&b, 0xF98), 5);
    assert_eq!(u64_at(&b, 0xFA0), l.file_size());
    assert_eq!(&b[0x2000..0x2008], b"FDMPDUMP");
    assert_eq!(u32_at(&b, 0x2008), 0);
    assert!(is_zero(&b, 0x200C..0x2020));
    assert_eq!(u64_at(&b, 0x2020), 0x3000);
    assert_eq!(u64_at(&b, 0x2028), 0xA1);
    assert_eq!(u64_at(&b, 0x2030), 0x1008);
    let bitmap = &b[0x2038..0x2038 + 0x201];
    assert_eq!(bitmap[0], 0b1101_1111);
    assert_eq!(bitmap[0x200], 0b0000_0011);
    let ones: u32 = bitmap.iter().map(|x| x.count_ones()).sum();
    assert_eq!(u64::from(ones), 0xA1);
    assert!(is_zero(&b, 0x2038 + 0x201..0x3000));
    // Offsets follow PFN order.
    assert_eq!(l.page_offset(0), Some(0x3000));
    assert_eq!(l.page_offset(5), None);
    assert_eq!(l.page_offset(6), Some(0x3000 + 5 * 0x1000));
    assert_eq!(l.page_offset(0x1001), Some(0x3000 + 0xA0 * 0x1000));
    assert_eq!(l.span_offset(6, 0x9A), Some(0x8000));
    assert_eq!(l.span_offset(4, 2), None);
    assert_eq!(l.present_spans().count(), 3);
    // x86 bitmap: summary at 0x1000.
    let present = PageBitmap::from_pfns(16, [0, 3]);
    let l = DumpLayout::bitmap(Arch::X86 { pae: false }, &[r(0, 16)], present).unwrap();
    let b = l.header_bytes(&DumpHeaderInfo::default());
    assert_eq!(&b[0x1000..0x1008], b"FDMPDUMP");
    assert_eq!(l.data_offset(), 0x2000);
    assert_eq!(u64_at(&b, 0x1030), 16);
}

#[test]
fn bitmap_rejects_pages_outside_runs() {
    let runs = [r(0x10, 0x10), r(0x40, 0x10)];
    for pfn in [0x5, 0x20, 0x3F, 0x50, 0x1000] {
        let present = PageBitmap::from_pfns(0x2000, [0x10, pfn]);
        assert_eq!(
            DumpLayout::bitmap(Arch::X64, &runs, present),
            Err(LayoutError::PresentPageOutsideRuns { pfn })
        );
    }
    let empty = DumpLayout::bitmap(Arch::X64, &runs, PageBitmap::new(0)).unwrap();
    assert_eq!(empty.present_pages(), 0);
    assert_eq!(empty.file_size(), empty.data_offset());
}

#[test]
fn coalesce_closes_smallest_gaps() {
    let runs = [r(0, 1), r(3, 1), r(100, 1), r(101 + 1, 1), r(1000, 1)];
    assert_eq!(coalesce_runs(&runs, 5), runs.to_vec());
    assert_eq!(
        coalesce_runs(&runs, 3),
        vec![r(0, 4), r(100, 3), r(1000, 1)]
    );
    assert_eq!(coalesce_runs(&runs, 1), vec![r(0, 1001)]);
    assert_eq!(coalesce_runs(&runs, 0), vec![]);
}
