//! Shared helpers: synthetic page content and a minimal dump writer using the layout.

use vm2dmp_kdump::{Arch, CpuContext, DumpHeaderInfo, DumpLayout, MemoryRun, PageBitmap};

pub const PAGE: usize = 0x1000;

/// Every u64 at physical address A holds `0xD0D0_0000_0000_0000 | A`.
pub fn page_content(pfn: u64) -> Vec<u8> {
    let base = pfn << 12;
    (0..PAGE as u64 / 8)
        .flat_map(|i| (0xD0D0_0000_0000_0000u64 | (base + i * 8)).to_le_bytes())
        .collect()
}

pub fn run(base: u64, count: u64) -> MemoryRun {
    MemoryRun::new(base, count)
}

/// PFNs covered by `runs`.
pub fn run_pfns(runs: &[MemoryRun]) -> Vec<u64> {
    runs.iter()
        .flat_map(|r| r.base_page..r.base_page + r.page_count)
        .collect()
}

/// Header bytes, then each present page written at `page_offset` (as the converter
/// does), checking that `present_spans` agrees with `page_offset`.
pub fn build_dump(layout: &DumpLayout, info: &DumpHeaderInfo, present: &[u64]) -> Vec<u8> {
    let mut out = layout.header_bytes(info);
    assert_eq!(out.len() as u64, layout.data_offset());
    out.resize(usize::try_from(layout.file_size()).unwrap(), 0);
    for &pfn in present {
        let off = usize::try_from(layout.page_offset(pfn).expect("present page")).unwrap();
        out[off..off + PAGE].copy_from_slice(&page_content(pfn));
    }
    let mut from_spans = Vec::new();
    for span in layout.present_spans() {
        assert_eq!(
            layout.span_offset(span.first_pfn, span.page_count),
            Some(span.file_offset)
        );
        for i in 0..span.page_count {
            assert_eq!(
                layout.page_offset(span.first_pfn + i),
                Some(span.file_offset + i * PAGE as u64)
            );
            from_spans.push(span.first_pfn + i);
        }
    }
    assert_eq!(from_spans, present);
    assert_eq!(layout.present_pages(), present.len() as u64);
    out
}

/// Bitmap of `pfns` sized to the end of `runs`.
pub fn bitmap_of(runs: &[MemoryRun], pfns: &[u64]) -> PageBitmap {
    let end = runs.last().map_or(0, |r| r.base_page + r.page_count);
    PageBitmap::from_pfns(end, pfns.iter().copied())
}

pub fn x64_info() -> DumpHeaderInfo {
    DumpHeaderInfo {
        major_version: 0xF,
        minor_version: 22621,
        // PFN 2 is present in the test dumps; its content has no present bit set in any
        // would-be page-table entry, so virtual translation fails cleanly.
        directory_table_base: 0x2000,
        pfn_database: 0xFFFF_D000_0000_0000,
        ps_loaded_module_list: 0xFFFF_F807_1A42_A2D0,
        ps_active_process_head: 0xFFFF_F807_1A41_E090,
        kd_debugger_data_block: 0xFFFF_F807_1A40_0000,
        number_processors: 6,
        bugcheck_code: 0x161,
        bugcheck_parameters: [0, 0, 0, 0],
        system_time: 0x01DB_1234_5678_9ABC,
        system_uptime: 0x0000_0012_3456_789A,
        comment: "synthetic test dump".into(),
        product_type: 1,
        suite_mask: 0x110,
        kd_secondary_version: 0x41,
        attributes: 0,
        exception_code: 0,
        exception_address: 0,
        context: CpuContext {
            rax: 0x1111,
            rbx: 0x2222,
            rsp: 0xFFFF_F807_2000_0FF8,
            rip: 0xFFFF_F807_1A01_2345,
            rflags: 0x0004_0246,
            cs: 0x10,
            ss: 0x18,
            ds: 0x2B,
            es: 0x2B,
            fs: 0x53,
            gs: 0x2B,
            mxcsr: 0x1F80,
            ..CpuContext::default()
        },
    }
}

pub fn x86_info(pae: bool) -> DumpHeaderInfo {
    let _ = Arch::X86 { pae };
    DumpHeaderInfo {
        minor_version: 2600,
        directory_table_base: if pae { 0x0031_C020 } else { 0x0003_9000 },
        ps_loaded_module_list: 0xFFFF_FFFF_8055_A420,
        ps_active_process_head: 0xFFFF_FFFF_8055_A358,
        kd_debugger_data_block: 0xFFFF_FFFF_8054_CDE0,
        number_processors: 2,
        context: CpuContext {
            rip: 0x8052_1234,
            rsp: 0xF78D_2C00,
            rflags: 0x202,
            cs: 0x08,
            ss: 0x10,
            ds: 0x23,
            es: 0x23,
            fs: 0x30,
            gs: 0,
            ..CpuContext::default()
        },
        ..x64_info()
    }
}
