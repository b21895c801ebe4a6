//! Our reader on dumps from our writer: x64 and x86 (PAE and not), full and bitmap,
//! plus a property test over random run and present-page sets.

use crate::common::*;
use proptest::prelude::*;
use vm2dmp_kdump::{
    Arch, ContextRecord, DumpError, DumpHeaderInfo, DumpLayout, KernelDump, LeField, MemoryRun,
};

/// What the reader should return for `info` written for `arch`.
fn expected_info(arch: Arch, info: &DumpHeaderInfo) -> DumpHeaderInfo {
    let mut e = info.clone();
    let img = info.context.fxsave_area();
    let mut bytes = [0u8; 512];
    img.write_le(&mut bytes);
    e.context.fxsave = Some(bytes);
    if let Arch::X86 { .. } = arch {
        let lo = |v: u64| v & 0xFFFF_FFFF;
        e.directory_table_base = lo(e.directory_table_base);
        e.pfn_database = lo(e.pfn_database);
        e.ps_loaded_module_list = lo(e.ps_loaded_module_list);
        e.ps_active_process_head = lo(e.ps_active_process_head);
        e.kd_debugger_data_block = lo(e.kd_debugger_data_block);
        e.bugcheck_parameters = e.bugcheck_parameters.map(lo);
        e.exception_address = lo(e.exception_address);
        let c = &mut e.context;
        for r in [
            &mut c.rax,
            &mut c.rcx,
            &mut c.rdx,
            &mut c.rbx,
            &mut c.rsp,
            &mut c.rbp,
            &mut c.rsi,
            &mut c.rdi,
            &mut c.rip,
            &mut c.rflags,
            &mut c.dr0,
            &mut c.dr1,
            &mut c.dr2,
            &mut c.dr3,
            &mut c.dr6,
            &mut c.dr7,
        ] {
            *r = lo(*r);
        }
        c.r8 = 0;
        c.r9 = 0;
        c.r10 = 0;
        c.r11 = 0;
        c.r12 = 0;
        c.r13 = 0;
        c.r14 = 0;
        c.r15 = 0;
    }
    e
}

/// Parses `bytes` and checks everything against what was written.
fn check_round_trip(
    bytes: &[u8],
    layout: &DumpLayout,
    info: &DumpHeaderInfo,
    present: &[u64],
    absent: &[u64],
) -> KernelDump {
    let d = KernelDump::parse(bytes).unwrap();
    assert_eq!(d.arch(), layout.arch());
    assert_eq!(d.dump_type(), layout.dump_type());
    assert_eq!(d.machine_image_type(), layout.arch().machine_image_type());
    assert_eq!(d.info(), &expected_info(layout.arch(), info));
    assert_eq!(d.required_dump_space(), bytes.len() as u64);
    assert_eq!(d.file_size(), bytes.len() as u64);
    assert_eq!(d.data_offset(), layout.data_offset());
    assert_eq!(d.runs(), layout.described_runs().as_slice());
    assert_eq!(d.present_page_count(), present.len() as u64);
    assert_eq!(d.present_pfns().collect::<Vec<_>>(), present);
    match (layout.bitmap_bits(), d.bitmap()) {
        (Some(bits), Some(b)) => {
            assert_eq!(b.pages, bits);
            assert_eq!(b.total_present_pages, present.len() as u64);
            assert_eq!(b.present_count, present.len() as u64);
            assert_eq!(b.first_page, layout.data_offset());
            assert_eq!(b.first_page % 0x1000, 0);
        }
        (None, None) => {}
        other => panic!("bitmap mismatch {other:?}"),
    }
    for &pfn in present {
        assert_eq!(d.page_file_offset(pfn), layout.page_offset(pfn));
        assert_eq!(d.page(bytes, pfn).unwrap(), &page_content(pfn)[..]);
    }
    for &pfn in absent {
        assert_eq!(d.page_file_offset(pfn), None);
        let mut b = [0u8; 8];
        assert_eq!(
            d.read_phys(bytes, (pfn << 12) + 8, &mut b),
            Err(DumpError::PageNotPresent {
                pfn,
                gpa: (pfn << 12) + 8
            })
        );
    }
    // Unaligned multi-page reads over each span of present pages.
    for span in layout.present_spans() {
        if span.page_count >= 3 {
            let gpa = (span.first_pfn << 12) + 0x123;
            let mut buf = vec![0u8; 2 * PAGE + 0x100];
            d.read_phys(bytes, gpa, &mut buf).unwrap();
            let mut expect = Vec::new();
            for pfn in span.first_pfn..span.first_pfn + 3 {
                expect.extend(page_content(pfn));
            }
            assert_eq!(&buf[..], &expect[0x123..0x123 + buf.len()]);
        }
        // A read running off the end of the span fails at the next PFN.
        let end = span.first_pfn + span.page_count;
        if !present.contains(&end) {
            let mut buf = vec![0u8; 0x20];
            assert_eq!(
                d.read_phys(bytes, (end << 12) - 0x10, &mut buf),
                Err(DumpError::PageNotPresent {
                    pfn: end,
                    gpa: end << 12
                })
            );
        }
    }
    d
}

fn sparse_runs() -> Vec<MemoryRun> {
    vec![
        run(0x1, 0x20),
        run(0x40, 0x10),
        run(0x9F, 0x1),
        run(0x8_0000, 0x40),
        run(0xF_FFF0, 0x10),
    ]
}

#[test]
fn x64_full_and_bitmap_round_trip() {
    let runs = vec![
        run(0x1, 0x20),
        run(0x40, 0x10),
        run(0x100000, 0x40),
        run(0x23_4567, 0x15),
    ];
    let info = x64_info();
    let all = run_pfns(&runs);
    let layout = DumpLayout::full(Arch::X64, &runs).unwrap();
    let bytes = build_dump(&layout, &info, &all);
    let d = check_round_trip(&bytes, &layout, &info, &all, &[0, 0x21, 0x100040]);
    let ContextRecord::X64(c) = d.context() else {
        panic!()
    };
    assert_eq!((c.mx_csr, c.flt_save.mx_csr), (0x1F80, 0x1F80));

    let present: Vec<u64> = all.iter().copied().filter(|p| p % 5 != 0).collect();
    let layout = DumpLayout::bitmap(Arch::X64, &runs, bitmap_of(&runs, &present)).unwrap();
    let bytes = build_dump(&layout, &info, &present);
    check_round_trip(&bytes, &layout, &info, &present, &[0, 5, 0x21, 0x100040]);
}

#[test]
fn x86_full_and_bitmap_round_trip() {
    for pae in [false, true] {
        let arch = Arch::X86 { pae };
        let mut runs = sparse_runs();
        if pae {
            // RAM above 4 GiB.
            runs.push(run(0x10_0000, 0x8));
            runs.push(run(0x12_3450, 0x3));
        }
        let info = x86_info(pae);
        let all = run_pfns(&runs);
        let layout = DumpLayout::full(arch, &runs).unwrap();
        let bytes = build_dump(&layout, &info, &all);
        assert_eq!(&bytes[..8], b"PAGEDUMP");
        let d = check_round_trip(&bytes, &layout, &info, &all, &[0, 0x21, 0xA0]);
        assert_eq!(d.pae_enabled(), Some(pae));
        assert_eq!(d.data_offset(), 0x1000);
        let ContextRecord::X86(c) = d.context() else {
            panic!()
        };
        assert_eq!(
            (c.eip, c.esp, c.seg_cs, c.seg_fs),
            (0x8052_1234, 0xF78D_2C00, 8, 0x30)
        );

        let present: Vec<u64> = all.iter().copied().filter(|p| p % 3 != 1).collect();
        let layout = DumpLayout::bitmap(arch, &runs, bitmap_of(&runs, &present)).unwrap();
        let bytes = build_dump(&layout, &info, &present);
        let d = check_round_trip(&bytes, &layout, &info, &present, &[0, 1, 0x21, 0xA0]);
        assert_eq!(d.bitmap().unwrap().signature, 0x504D_4446);
        assert_eq!(d.pae_enabled(), Some(pae));
    }
}

#[test]
fn read_phys_argument_errors() {
    let runs = [run(0, 4)];
    let layout = DumpLayout::full(Arch::X64, &runs).unwrap();
    let bytes = build_dump(&layout, &x64_info(), &run_pfns(&runs));
    let d = KernelDump::parse(&bytes).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        d.read_phys(&bytes, u64::MAX - 4, &mut buf),
        Err(DumpError::AddressOverflow {
            gpa: u64::MAX - 4,
            len: 16
        })
    );
    // Bytes shorter than what was parsed.
    assert!(matches!(
        d.read_phys(&bytes[..0x3000], 0x3000, &mut buf),
        Err(DumpError::PageOutsideInput { pfn: 3, .. })
    ));
    d.read_phys(&bytes, 0, &mut []).unwrap();
    assert_eq!(
        d.read_phys(&bytes, 0x4000, &mut buf)
            .unwrap_err()
            .to_string(),
        "physical page 0x4 (address 0x4000) is not in the dump"
    );
}

/// Random sorted, non-touching runs below `limit` and a random subset of their pages.
fn runs_and_present() -> impl Strategy<Value = (Vec<MemoryRun>, Vec<u64>, bool)> {
    (
        proptest::collection::vec((1u64..5000, 1u64..40), 1..60),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(raw, seed, all)| {
            let mut runs = Vec::new();
            let mut next = 0u64;
            for (gap, count) in raw {
                // Occasionally jump above 4 GiB.
                let gap = if gap % 17 == 0 { gap * 300 } else { gap };
                let base = next + gap;
                runs.push(run(base, count));
                next = base + count;
            }
            let mut x = seed | 1;
            let present = run_pfns(&runs)
                .into_iter()
                .filter(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    all || x % 4 != 0
                })
                .collect();
            (runs, present, all)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_layouts_round_trip((runs, present, all) in runs_and_present(), x86 in any::<bool>()) {
        let arch = if x86 { Arch::X86 { pae: true } } else { Arch::X64 };
        let info = if x86 { x86_info(true) } else { x64_info() };
        let all_pfns = run_pfns(&runs);
        let absent: Vec<u64> = all_pfns.iter().copied().filter(|p| !present.contains(p))
            .chain(runs.iter().map(|r| r.base_page - 1))
            .chain(runs.last().map(|r| r.base_page + r.page_count))
            .collect();

        let layout = DumpLayout::bitmap(arch, &runs, bitmap_of(&runs, &present)).unwrap();
        let bytes = build_dump(&layout, &info, &present);
        check_round_trip(&bytes, &layout, &info, &present, &absent);

        match DumpLayout::full(arch, &runs) {
            Ok(layout) if all => {
                let bytes = build_dump(&layout, &info, &all_pfns);
                check_round_trip(&bytes, &layout, &info, &all_pfns, &absent);
            }
            Ok(_) => {}
            Err(e) => prop_assert!(runs.len() > arch.max_runs(), "{e}"),
        }
    }
}
