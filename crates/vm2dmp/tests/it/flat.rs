//! The pipeline does not care where guest memory comes from: a second, minimal
//! [`MemorySource`] (a flat image per RAM range plus registers, no Hyper-V container) is
//! converted, its synthetic Windows kernel found, the dump verified and read back by
//! kdmp-parser, an outside reader.

use vm2dmp::guest::find_kernel;
use vm2dmp::source::{CpuState, DescriptorTable, Msrs, SegmentRegister, PAGE_SIZE};
use vm2dmp::{convert, verify, Cancel, ConvertOptions, DumpFile, MemorySource, NoProgress};
use vm2dmp_fuzz_harness::FlatGuest;
use vm2dmp_synth::{SynthVm, SynthVp};

use crate::guest::{build, Clues};

/// The synthetic guest `vm` as a flat image (`vm2dmp_fuzz_harness::FlatGuest`): its RAM
/// ranges' bytes and its processors' registers, no container.
pub(crate) fn flat_image(vm: &SynthVm) -> FlatGuest {
    let ranges = vm
        .ranges
        .iter()
        .map(|r| {
            let mut bytes = vec![0u8; (r.page_count as usize) * PAGE_SIZE];
            for (i, page) in bytes.chunks_exact_mut(PAGE_SIZE).enumerate() {
                let page: &mut [u8; PAGE_SIZE] = page.try_into().unwrap();
                vm.pages.read_page(r.gpa_page_start + i as u64, page);
            }
            (r.gpa_page_start, bytes)
        })
        .collect();
    FlatGuest::new(ranges, vm.vps.iter().map(cpu).collect()).unwrap()
}

fn seg(s: vm2dmp_synth::Segment) -> SegmentRegister {
    SegmentRegister {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        attributes: s.attributes,
    }
}

/// The registers a synthetic VP holds, as any source would report them.
fn cpu(vp: &SynthVp) -> CpuState {
    let r = &vp.vtl0;
    let (g, c, d, s) = (&r.gp, &r.control, &r.debug, &r.segments);
    CpuState {
        index: vp.index,
        rax: g.rax,
        rcx: g.rcx,
        rdx: g.rdx,
        rbx: g.rbx,
        rsp: g.rsp,
        rbp: g.rbp,
        rsi: g.rsi,
        rdi: g.rdi,
        r8: g.r8,
        r9: g.r9,
        r10: g.r10,
        r11: g.r11,
        r12: g.r12,
        r13: g.r13,
        r14: g.r14,
        r15: g.r15,
        rip: g.rip,
        rflags: g.rflags,
        cr0: c.cr0,
        cr2: c.cr2,
        cr3: c.cr3,
        cr4: c.cr4,
        cr8: c.cr8,
        efer: c.efer,
        dr0: d.dr0,
        dr1: d.dr1,
        dr2: d.dr2,
        dr3: d.dr3,
        dr6: d.dr6,
        dr7: d.dr7,
        es: seg(s.es),
        cs: seg(s.cs),
        ss: seg(s.ss),
        ds: seg(s.ds),
        fs: seg(s.fs),
        gs: seg(s.gs),
        ldtr: seg(s.ldtr),
        tr: seg(s.tr),
        cpl: s.cpl,
        idtr: DescriptorTable {
            limit: r.tables.idtr.limit,
            base: r.tables.idtr.base,
        },
        gdtr: DescriptorTable {
            limit: r.tables.gdtr.limit,
            base: r.tables.gdtr.base,
        },
        fp: None,
        msrs: Some(Msrs {
            kernel_gs_base: r.virtual_msrs[1],
            ..Msrs::default()
        }),
        has_gp: true,
        has_control: true,
        has_segments: true,
    }
}

#[test]
fn a_flat_image_converts_through_the_same_pipeline() {
    let (vm, truth) = build(&Clues::x64());
    let image = flat_image(&vm);

    // Kernel discovery on the flat image finds what the synthetic guest holds.
    let kernel = find_kernel(&image, None);
    assert!(kernel.found(), "{:?}", kernel.notes);
    assert_eq!(kernel.kd_debugger_data_block.value, Some(truth.kdbg_va));
    assert_eq!(
        kernel.ps_loaded_module_list.value,
        Some(truth.ps_loaded_module_list)
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flat.dmp");
    let report = convert(
        &image,
        &out,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!(report.dump_type, 1);
    assert_eq!(report.number_processors as usize, vm.vps.len());
    assert_eq!(report.directory_table_base, truth.system_dtb);

    // Our reader: every page equals the image (patched pages hold their patched bytes).
    let dump = DumpFile::open(&out).unwrap();
    let v = verify(&dump, &image, None, &NoProgress, &Cancel::new()).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.pages_compared, image.ram_pages());
    assert!(v.patched_pages > 0, "KDBG and KPRCB pages are patched");
    let info = dump.dump().info();
    assert!(
        info.comment.contains("flat memory image flat.img"),
        "{}",
        info.comment
    );

    // An outside reader: kdmp-parser opens the dump; its header and pages agree.
    let parser = kdmp_parser::parse::KernelDumpParser::new(&out).unwrap();
    assert_eq!(parser.headers().directory_table_base, truth.system_dtb);
    assert_eq!(parser.context_record().rip, image.vcpus()[0].rip);
    let patched = vm2dmp::guest::dump_patched_pages(&image, None);
    let reader = kdmp_parser::phys::Reader::new(&parser);
    let mut page = [0u8; PAGE_SIZE];
    let mut checked = 0;
    for r in image.ram_ranges() {
        for pfn in r.gpa_page_start..r.gpa_page_end() {
            if patched.contains(&pfn) {
                continue;
            }
            reader
                .read_exact(kdmp_parser::gxa::Gpa::new(pfn << 12), &mut page)
                .unwrap();
            let mut want = vec![0u8; PAGE_SIZE];
            image.read_phys(pfn << 12, &mut want).unwrap();
            assert!(page[..] == want[..], "page {pfn:#x} differs");
            checked += 1;
        }
    }
    assert!(checked > 0);
}
