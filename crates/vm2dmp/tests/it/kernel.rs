//! Kernel discovery and the dump header/memory it fills, on synthetic guests laid out like a
//! running Windows kernel (tests/guest), with every clue present and with each clue missing.

use std::path::PathBuf;

use crate::guest::{self, Clues, KdbgForm, Truth};
use vm2dmp::kdump::{Arch, KernelDump};
use vm2dmp::{
    convert, guest::find_kernel, guest::kdbg::KdbgKeys, guest::translate::read_virt,
    guest::translate::translate, guest::translate::Dtb, guest::translate::Paging,
    guest::translate::PhysMem, guest::KernelInfo, guest::Method, Cancel, ConvertOptions,
    ConvertReport, DumpFile, NoProgress, SavedState,
};
use vm2dmp_synth::{write_vmrs, SparsePages, SynthVm};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}

/// Guest memory of a dump, for reading it back through page tables.
struct DumpMem<'a>(&'a DumpFile);

impl PhysMem for DumpMem<'_> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.0.read_phys(gpa, buf).is_ok()
    }
    fn is_ram(&self, gpa: u64) -> bool {
        self.0.page(gpa >> 12).is_some()
    }
}

/// Guest memory straight from the synthetic pages.
struct SparseMem<'a>(&'a SparsePages, u64);

impl PhysMem for SparseMem<'_> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let a = gpa + done as u64;
            if a >= self.1 {
                return false;
            }
            let n = (4096 - (a & 0xFFF) as usize).min(buf.len() - done);
            match self.0.pages.get(&(a >> 12)) {
                Some(p) => buf[done..done + n]
                    .copy_from_slice(&p[(a & 0xFFF) as usize..(a & 0xFFF) as usize + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        true
    }
    fn is_ram(&self, gpa: u64) -> bool {
        gpa < self.1
    }
}

struct Run {
    _dir: tempfile::TempDir,
    vm: SynthVm,
    truth: Truth,
    state: SavedState,
    info: KernelInfo,
    dump: PathBuf,
    report: ConvertReport,
    symbols: Option<PathBuf>,
}

fn run(clues: &Clues) -> Run {
    run_with(clues, |_, _| None)
}

/// Like [`run`], with symbols from `symbols(dir, truth)`.
fn run_with(clues: &Clues, symbols: impl Fn(&std::path::Path, &Truth) -> Option<PathBuf>) -> Run {
    let (vm, truth) = guest::build(clues);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    write_vmrs(&vm, &input).unwrap();
    let state = SavedState::open(&input).unwrap();
    let syms = symbols(dir.path(), &truth);
    let info = find_kernel(&state, syms.as_deref());
    let dump = dir.path().join("guest.dmp");
    let report = convert(
        &state,
        &dump,
        &ConvertOptions {
            symbols: syms.clone(),
            ..ConvertOptions::default()
        },
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    Run {
        _dir: dir,
        vm,
        truth,
        state,
        info,
        dump,
        report,
        symbols: syms,
    }
}

/// Checks a dump header and dump memory against the guest's truth.
fn check_full_dump(r: &Run, x64: bool) {
    let t = &r.truth;
    let file = std::fs::read(&r.dump).unwrap();
    let kd = KernelDump::parse(&file).unwrap();
    let h = kd.info();
    assert_eq!(h.directory_table_base, t.system_dtb);
    assert_eq!(h.minor_version, guest::BUILD);
    assert_eq!(h.major_version, 0xF);
    let low = |v: u64| if x64 { v } else { v & 0xFFFF_FFFF };
    assert_eq!(h.kd_debugger_data_block, low(t.kdbg_va));
    assert_eq!(h.ps_loaded_module_list, low(t.ps_loaded_module_list));
    assert_eq!(h.ps_active_process_head, low(t.ps_active_process_head));
    assert_eq!(h.pfn_database, low(t.mm_pfn_database_value));
    assert_eq!(h.number_processors as usize, t.prcbs.len());
    assert_eq!(h.product_type, 1);
    assert_eq!(h.suite_mask, 0x110);
    assert_eq!(h.system_uptime, 0x0000_0001_2345_6789);
    assert_eq!(h.system_time, 0x01DA_0000_1111_2222);
    if !x64 {
        assert_eq!(kd.arch(), Arch::X86 { pae: true });
    }

    // Dump memory through the header's DirectoryTableBase.
    let df = DumpFile::open(&r.dump).unwrap();
    let mem = DumpMem(&df);
    let paging = if x64 { Paging::Long4 } else { Paging::Pae };
    let dtb = Dtb::new(paging, h.directory_table_base);
    let mut k = vec![0u8; t.kdbg_size as usize];
    read_virt(&mem, dtb, t.kdbg_va, &mut k).unwrap();
    assert_eq!(k, t.kdbg_plain, "the dump holds the decoded KDBG");
    let mut flag = [9u8];
    read_virt(&mem, dtb, t.flag_va, &mut flag).unwrap();
    assert_eq!(flag[0], 0, "KdpDataBlockEncoded is 0 in the dump");

    // Every processor's registers in its KPRCB: KPRCB.Context and ProcessorState.
    for (i, &prcb) in t.prcbs.iter().enumerate() {
        let vp = r
            .state
            .vcpus()
            .iter()
            .find(|v| v.index as usize == i)
            .unwrap();
        for at in [
            t.context_ptrs[i],
            prcb + u64::from(guest::PRCB_CONTEXT_FRAME),
        ] {
            if x64 {
                let mut c = vec![0u8; 0x4D0];
                read_virt(&mem, dtb, at, &mut c).unwrap();
                let q = |o: usize| u64::from_le_bytes(c[o..o + 8].try_into().unwrap());
                assert_eq!(
                    u32::from_le_bytes(c[0x30..0x34].try_into().unwrap()),
                    0x10001F
                );
                assert_eq!(q(0x78), vp.rax, "cpu {i} rax");
                assert_eq!(q(0x90), vp.rbx, "cpu {i} rbx");
                assert_eq!(q(0x98), vp.rsp, "cpu {i} rsp");
                assert_eq!(q(0xF0), vp.r15, "cpu {i} r15");
                assert_eq!(q(0xF8), vp.rip, "cpu {i} rip");
                assert_eq!(q(0x48), vp.dr0, "cpu {i} dr0");
                assert_eq!(u16::from_le_bytes([c[0x38], c[0x39]]), 0x10, "cpu {i} cs");
            } else {
                let mut c = vec![0u8; 0x2CC];
                read_virt(&mem, dtb, at, &mut c).unwrap();
                let d = |o: usize| u64::from(u32::from_le_bytes(c[o..o + 4].try_into().unwrap()));
                assert_eq!(d(0), 0x1003F);
                assert_eq!(d(0xB0), vp.rax & 0xFFFF_FFFF, "cpu {i} eax");
                assert_eq!(d(0xA4), vp.rbx & 0xFFFF_FFFF, "cpu {i} ebx");
                assert_eq!(d(0xB8), vp.rip & 0xFFFF_FFFF, "cpu {i} eip");
                assert_eq!(d(0xC4), vp.rsp & 0xFFFF_FFFF, "cpu {i} esp");
            }
        }
        let sr = prcb + u64::from(guest::PRCB_SPECIAL_REGS);
        let mut s = [0u8; 16];
        read_virt(&mem, dtb, sr, &mut s).unwrap();
        if x64 {
            assert_eq!(u64::from_le_bytes(s[8..16].try_into().unwrap()), vp.cr2);
        } else {
            assert_eq!(
                u64::from(u32::from_le_bytes(s[4..8].try_into().unwrap())),
                vp.cr2 & 0xFFFF_FFFF
            );
        }
    }

    // Every other page is the guest's page, unchanged; the input is unchanged too.
    let patched: Vec<u64> = [t.kdbg_va, t.flag_va]
        .into_iter()
        .chain(t.context_ptrs.iter().copied())
        .chain(t.prcbs.iter().flat_map(|&p| {
            [
                p + u64::from(guest::PRCB_CONTEXT_FRAME),
                p + u64::from(guest::PRCB_CONTEXT_FRAME) + 0x4D0,
                p + u64::from(guest::PRCB_SPECIAL_REGS),
            ]
        }))
        .filter_map(|va| translate(&mem, dtb, va).map(|t| t.gpa >> 12))
        .collect();
    let mut differing = Vec::new();
    for range in &r.vm.ranges {
        for pfn in range.gpa_page_start..range.gpa_page_end() {
            let mut want = [0u8; 4096];
            r.vm.pages.read_page(pfn, &mut want);
            let mut got = [0u8; 4096];
            r.state.read_phys(pfn << 12, &mut got).unwrap();
            assert_eq!(got, want, "input page {pfn:#x} unchanged");
            let d = df.page(pfn).unwrap();
            if d != want {
                differing.push(pfn);
                assert!(
                    patched.contains(&pfn),
                    "page {pfn:#x} changed but holds no patch"
                );
            }
        }
    }
    assert!(!differing.is_empty());
    // The library names every page it changes (and only pages that differ or may).
    let named = vm2dmp::guest::dump_patched_pages(&r.state, r.symbols.as_deref());
    assert!(
        differing.iter().all(|p| named.contains(p)),
        "{differing:?} vs {named:?}"
    );

    // `verify` compares the changed pages with what the conversion writes there: the dump
    // passes, and a copy with one byte of the decoded KDBG flipped does not.
    let verify = |path: &std::path::Path| {
        vm2dmp::verify(
            &DumpFile::open(path).unwrap(),
            &r.state,
            r.symbols.as_deref(),
            &NoProgress,
            &Cancel::new(),
        )
        .unwrap()
    };
    let v = verify(&r.dump);
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.patched_pages, named.len() as u64);
    let kdbg_pfn = translate(&mem, dtb, t.kdbg_va).unwrap().gpa >> 12;
    let off = KernelDump::parse(&file)
        .unwrap()
        .page_file_offset(kdbg_pfn)
        .unwrap() as usize
        + (t.kdbg_va & 0xFFF) as usize
        + 0x18;
    let mut bad = file.clone();
    bad[off] ^= 0x40;
    let bad_path = r.dump.with_extension("bad.dmp");
    std::fs::write(&bad_path, bad).unwrap();
    let v = verify(&bad_path);
    assert!(!v.ok());
    assert_eq!(
        (v.mismatched_pages, v.first_bad_pages.as_slice()),
        (1, &[kdbg_pfn][..])
    );
}

/// The dump opened by the kdmp-parser crate: it reads the KDBG at the header's address through
/// the header's DTB, walks KiProcessorBlock, compares KPRCB contexts with the header context,
/// and lists kernel modules from PsLoadedModuleList.
fn check_with_kdmp_parser(r: &Run) {
    use kdmp_parser::gxa::{Gva, Gxa};
    use kdmp_parser::parse::KernelDumpParser;
    let p = KernelDumpParser::new(&r.dump).unwrap();
    let h = p.headers();
    assert_eq!(h.kd_debugger_data_block, r.truth.kdbg_va);
    let modules: Vec<_> = p.kernel_modules().collect();
    assert_eq!(modules.len(), 1, "{modules:?}");
    assert_eq!(modules[0].0.start.u64(), r.truth.kernel_base);
    assert!(modules[0].1.ends_with("ntoskrnl.exe"));
    let reader = kdmp_parser::virt::Reader::new(&p);
    let mut tag = [0u8; 4];
    reader
        .read_exact(Gva::new(r.truth.kdbg_va + 0x10), &mut tag)
        .unwrap();
    assert_eq!(&tag, b"KDBG");
    for (i, &c) in r.truth.context_ptrs.iter().enumerate() {
        let mut rip = [0u8; 8];
        reader.read_exact(Gva::new(c + 0xF8), &mut rip).unwrap();
        assert_eq!(u64::from_le_bytes(rip), r.state.vcpus()[i].rip);
    }
}

/// Keys and addresses published in a worked example of decoding a real encoded KDBG: V.
/// Prutyanov, "Guest Windows debugging and crashdumping under QEMU/KVM: elf2dmp", Daynix
/// blog, 2023-05-23 (elf2dmp's log for a Windows Server 2022 guest: KernBase
/// 0xfffff80081400000, KdDebuggerDataBlock 0xfffff80082000a30, KdpDataBlockEncoded
/// 0xfffff8008210b148, [KiWaitNever] 0x1a5b030053af49fd, [KiWaitAlways] 0x0029d7b15ae2d898,
/// "Owner tag is 'KDBG'"). The post gives no stored bytes, so this checks that with those keys
/// the known plaintext of the header (KernBase, the tag) survives the encoding, that the
/// rotate count is the low byte of KiWaitNever taken mod 64 (0xFD -> 61, as `rol r64, cl`
/// does), and that the address solved from the known KernBase is the published one.
#[test]
fn kdbg_encoding_with_published_keys() {
    let kern_base = 0xFFFF_F800_8140_0000u64;
    let keys = KdbgKeys {
        ki_wait_never: 0x1A5B_0300_53AF_49FD,
        ki_wait_always: 0x0029_D7B1_5AE2_D898,
        kdp_data_block_encoded: 0xFFFF_F800_8210_B148,
    };
    let tag_and_size = 0x0000_0380_4742_444Bu64; // 'KDBG', Size 0x380
    for plain in [kern_base, tag_and_size] {
        let q = keys.encode(plain);
        assert_ne!(q, plain);
        assert_eq!(keys.decode(q), plain);
        // Decode written out step by step: rol(q ^ N, N & 0x3F), ^ &flag, bswap, ^ W.
        let t = (q ^ keys.ki_wait_never).rotate_left(61);
        let t = (t ^ keys.kdp_data_block_encoded).swap_bytes();
        assert_eq!(t ^ keys.ki_wait_always, plain);
        assert_eq!(
            KdbgKeys::solve_address(keys.ki_wait_never, keys.ki_wait_always, q, plain),
            keys.kdp_data_block_encoded
        );
    }
    // After the byte swap, the address's high bytes land on the tag and its low bytes on the
    // top of the plaintext: a wrong page of the address breaks the tag, a wrong offset in the
    // page breaks KernBase (which is why discovery checks both).
    let wrong_page = KdbgKeys {
        kdp_data_block_encoded: keys.kdp_data_block_encoded ^ 0x0000_0100_0000_0000,
        ..keys
    };
    assert_ne!(
        wrong_page.decode(keys.encode(tag_and_size)) as u32,
        0x4742_444B
    );
    let wrong_offset = KdbgKeys {
        kdp_data_block_encoded: keys.kdp_data_block_encoded + 8,
        ..keys
    };
    assert_ne!(wrong_offset.decode(keys.encode(kern_base)), kern_base);
}

#[test]
fn kdbg_encoding_round_trips_and_matches_the_kernel_formula() {
    let keys = KdbgKeys {
        ki_wait_never: guest::NEVER,
        ki_wait_always: guest::ALWAYS,
        kdp_data_block_encoded: 0xFFFF_F806_1A20_4400,
    };
    for plain in [0u64, 1, 0x4742_444B, 0xFFFF_F806_1A20_0000, u64::MAX] {
        let q = keys.encode(plain);
        assert_eq!(keys.decode(q), plain);
        // The decode step written out as KdCopyDataBlock computes it.
        let n = keys.ki_wait_never;
        let t = (q ^ n).rotate_left((n & 0xFF) as u32 % 64);
        let manual = (t ^ keys.kdp_data_block_encoded).swap_bytes() ^ keys.ki_wait_always;
        assert_eq!(manual, plain);
        assert_eq!(
            KdbgKeys::solve_address(n, keys.ki_wait_always, q, plain),
            keys.kdp_data_block_encoded
        );
    }
    assert_ne!(keys.encode(0x4742_444B), 0x4742_444B);
}

#[test]
fn x64_guest_everything_found_and_dump_filled() {
    let r = run(&Clues::x64());
    let i = &r.info;
    let t = &r.truth;
    assert_eq!(i.kernel_base.value, Some(t.kernel_base), "{i:#?}");
    assert!(i.kernel_base.how.contains("IDT"), "{}", i.kernel_base.how);
    assert_eq!(
        i.image.as_ref().unwrap().export_name.as_deref(),
        Some("ntkrnlmp.exe")
    );
    assert_eq!(i.version.as_deref(), Some("10.0.19041.1"));
    assert_eq!(i.build.value, Some(u64::from(guest::BUILD)));
    assert_eq!(i.nt_build_number, Some(0xF000_0000 | guest::BUILD));
    let pdb = i.image.as_ref().unwrap().pdb.as_ref().unwrap();
    assert_eq!(
        (pdb.name.as_str(), pdb.guid, pdb.age),
        ("ntkrnlmp.pdb", guest::PDB_GUID, 1)
    );
    assert_eq!(pdb.store_key(), "3844DBB920174967BE7AA4A2C20430FA1");
    assert_eq!(i.kd_debugger_data_block.value, Some(t.kdbg_va));
    assert!(i.kdbg_encoded);
    assert_eq!(i.kdbg_keys, t.keys);
    assert!(i.kd_debugger_data_block.how.contains("KdCopyDataBlock"));
    assert_eq!(i.ps_loaded_module_list.value, Some(t.ps_loaded_module_list));
    assert_eq!(
        i.ps_active_process_head.value,
        Some(t.ps_active_process_head)
    );
    assert_eq!(i.mm_pfn_database.value, Some(t.mm_pfn_database_value));
    assert_eq!(i.ki_processor_block.value, Some(t.ki_processor_block));
    assert_eq!(i.number_processors.value, Some(3));
    assert_eq!(i.prcbs, t.prcbs);
    assert_eq!(i.directory_table_base.value, Some(t.system_dtb));
    assert!(i.directory_table_base.how.contains("System process"));
    for (name, f) in i.fields() {
        assert_eq!(f.method, Method::Heuristic, "{name}");
    }
    assert!(i.unknown_header_fields().is_empty());
    assert!(
        r.report
            .notes
            .iter()
            .any(|n| n.contains("ntkrnlmp.exe") && n.contains("19041")),
        "{:?}",
        r.report.notes
    );
    check_full_dump(&r, true);
    check_with_kdmp_parser(&r);
}

#[test]
fn x64_plain_kdbg_large_pages_five_level() {
    let r = run(&Clues {
        kdbg: KdbgForm::Plain,
        large_pages: true,
        five_level: true,
        ..Clues::x64()
    });
    assert_eq!(r.info.dtb.unwrap().paging, Paging::Long5);
    assert!(!r.info.kdbg_encoded);
    assert!(r.info.kd_debugger_data_block.how.contains("plain"));
    assert_eq!(r.info.kd_debugger_data_block.value, Some(r.truth.kdbg_va));
    let file = std::fs::read(&r.dump).unwrap();
    let kd = KernelDump::parse(&file).unwrap();
    assert_eq!(kd.info().kd_debugger_data_block, r.truth.kdbg_va);
    assert_eq!(kd.info().number_processors, 3);
}

#[test]
fn x64_encoded_kdbg_with_keys_from_timer_code() {
    let r = run(&Clues {
        kdcopy_code: false,
        ..Clues::x64()
    });
    let i = &r.info;
    assert_eq!(
        i.kd_debugger_data_block.value,
        Some(r.truth.kdbg_va),
        "{i:#?}"
    );
    assert!(i.kd_debugger_data_block.how.contains("KeSetTimer"));
    assert_eq!(i.kdbg_keys, r.truth.keys);
    check_full_dump(&r, true);
}

/// Kernel base from the KPCR (GS base) when the IDTR is useless, and from a scan of kernel
/// space when the KPCR is gone too.
#[test]
fn x64_kernel_base_without_idt_and_kpcr() {
    let r = run(&Clues {
        idt: false,
        ..Clues::x64()
    });
    assert_eq!(r.info.kernel_base.value, Some(r.truth.kernel_base));
    assert!(
        r.info.kernel_base.how.contains("KPCR"),
        "{}",
        r.info.kernel_base.how
    );
    let r = run(&Clues {
        idt: false,
        kpcr: false,
        ..Clues::x64()
    });
    assert_eq!(r.info.kernel_base.value, Some(r.truth.kernel_base));
    assert!(r.info.kernel_base.how.contains("scan of kernel space"));
    check_full_dump(&r, true);
}

/// The boot vCPU's CR3 maps no kernel space: another vCPU's is used; when none does, a scan
/// of RAM finds the kernel's page tables.
#[test]
fn x64_kernel_dtb_when_boot_cr3_is_user_or_all_are() {
    let r = run(&Clues {
        boot_cr3_user: true,
        ..Clues::x64()
    });
    assert!(r
        .info
        .notes
        .iter()
        .any(|n| n.contains("VP 0") && n.contains("not a kernel address space")));
    assert_eq!(r.info.dtb.unwrap().root, r.truth.root);
    assert_eq!(r.info.kernel_base.value, Some(r.truth.kernel_base));
    let r = run(&Clues {
        all_cr3_user: true,
        ..Clues::x64()
    });
    assert_eq!(r.info.dtb.unwrap().root, r.truth.root, "{:#?}", r.info);
    check_full_dump(&r, true);
}

/// Each missing clue gives a clear "not found" and still a valid dump.
#[test]
fn x64_missing_clues_not_found_and_dump_valid() {
    // No kernel image (export name of another module).
    let r = run(&Clues {
        export_name: "hal.dll".into(),
        ..Clues::x64()
    });
    assert!(!r.info.found());
    assert_eq!(r.info.kernel_base.method, Method::NotFound);
    assert!(
        r.report
            .notes
            .iter()
            .any(|n| n.contains("no Windows kernel found") && n.contains("KdDebuggerDataBlock")),
        "{:?}",
        r.report.notes
    );
    let p = kdmp_parser::parse::KernelDumpParser::new(&r.dump).unwrap();
    assert_eq!(p.headers().kd_debugger_data_block, 0);
    assert_eq!(p.headers().directory_table_base, r.truth.root);

    // No KDBG at all: kernel found, KDBG-derived fields not found.
    let r = run(&Clues {
        kdbg: KdbgForm::Absent,
        ..Clues::x64()
    });
    assert!(r.info.found());
    assert_eq!(r.info.kd_debugger_data_block.method, Method::NotFound);
    assert_eq!(r.info.ps_active_process_head.method, Method::NotFound);
    assert_eq!(r.info.mm_pfn_database.method, Method::NotFound);
    // Exports still give these.
    assert_eq!(
        r.info.ps_loaded_module_list.value,
        Some(r.truth.ps_loaded_module_list)
    );
    assert_eq!(r.info.number_processors.value, Some(3));
    assert!(r.info.number_processors.how.contains("KeNumberProcessors"));
    assert!(
        r.report
            .notes
            .iter()
            .any(|n| n.contains("KdDebuggerDataBlock, PsActiveProcessHead, PfnDataBase")),
        "{:?}",
        r.report.notes
    );
    let p = kdmp_parser::parse::KernelDumpParser::new(&r.dump).unwrap();
    assert_eq!(p.headers().kd_debugger_data_block, 0);
    assert_eq!(p.headers().minor_version, guest::BUILD);

    // Encoded KDBG and no code to recover its keys.
    let r = run(&Clues {
        kdcopy_code: false,
        timer_code: false,
        ..Clues::x64()
    });
    assert_eq!(r.info.kd_debugger_data_block.method, Method::NotFound);
    assert!(r.info.kd_debugger_data_block.how.contains("no keys"));
    let file = std::fs::read(&r.dump).unwrap();
    KernelDump::parse(&file).unwrap();

    // No NtBuildNumber: the build comes from the version resource.
    let r = run(&Clues {
        nt_build_number: false,
        ..Clues::x64()
    });
    assert_eq!(r.info.build.value, Some(u64::from(guest::BUILD)));
    assert!(r.info.build.how.contains("version resource"));
}

#[test]
fn x86_pae_guest_everything_found_and_dump_filled() {
    let r = run(&Clues::x86_pae());
    let i = &r.info;
    let t = &r.truth;
    assert_eq!(i.dtb.unwrap().paging, Paging::Pae);
    assert_eq!(
        i.dtb.unwrap().root,
        t.root,
        "PDPT inside a page, 32-byte aligned"
    );
    assert_eq!(i.kernel_base.value, Some(t.kernel_base), "{i:#?}");
    assert_eq!(
        i.image.as_ref().unwrap().export_name.as_deref(),
        Some("ntkrnlpa.exe")
    );
    assert_eq!(i.kd_debugger_data_block.value, Some(t.kdbg_va));
    assert!(!i.kdbg_encoded);
    assert!(
        i.kd_debugger_data_block.how.contains("KdVersionBlock"),
        "{}",
        i.kd_debugger_data_block.how
    );
    assert_eq!(i.ps_loaded_module_list.value, Some(t.ps_loaded_module_list));
    assert_eq!(
        i.ps_active_process_head.value,
        Some(t.ps_active_process_head)
    );
    assert_eq!(i.mm_pfn_database.value, Some(t.mm_pfn_database_value));
    assert_eq!(i.number_processors.value, Some(3));
    assert_eq!(i.prcbs, t.prcbs);
    assert_eq!(i.build.value, Some(u64::from(guest::BUILD)));
    assert_eq!(r.report.architecture, vm2dmp::source::Architecture::X86);
    check_full_dump(&r, false);
}

#[test]
fn x86_pae_missing_clues() {
    // No KdVersionBlock: the plain KDBG is found by scanning .data.
    let r = run(&Clues {
        kd_version_block: false,
        ..Clues::x86_pae()
    });
    assert!(r.info.kd_debugger_data_block.how.contains("scan"));
    check_full_dump(&r, false);
    // No IDT, no KPCR: kernel space is scanned; every CR3 a user table: RAM is scanned.
    let r = run(&Clues {
        idt: false,
        kpcr: false,
        all_cr3_user: true,
        ..Clues::x86_pae()
    });
    assert_eq!(r.info.dtb.unwrap().root, r.truth.root);
    assert!(r.info.kernel_base.how.contains("scan of kernel space"));
    check_full_dump(&r, false);
    // No kernel.
    let r = run(&Clues {
        export_name: "bootvid.dll".into(),
        ..Clues::x86_pae()
    });
    assert!(!r.info.found());
    let file = std::fs::read(&r.dump).unwrap();
    let kd = KernelDump::parse(&file).unwrap();
    assert_eq!(kd.info().kd_debugger_data_block, 0);
    assert_eq!(kd.info().minor_version, 0);
}

/// 4-level, 5-level, PAE and 32-bit translation with large pages, on hand-made tables.
#[test]
fn translation_of_every_paging_mode() {
    // x64 4-level and 5-level through the guest builder.
    for five in [false, true] {
        let mut b = guest::Builder::new(false, five);
        let pa = b.data_page();
        b.map4k(0xFFFF_F806_0000_3000, pa);
        b.pages.write(pa + 0x10, b"four-k");
        b.map2m(0xFFFF_F806_0060_0000, 0x20_0000);
        b.pages.write(0x20_0000 + 0x1_2345, b"two-m");
        let mem = SparseMem(&b.pages, 16 << 20);
        let dtb = Dtb::new(if five { Paging::Long5 } else { Paging::Long4 }, b.root);
        let mut s = [0u8; 6];
        read_virt(&mem, dtb, 0xFFFF_F806_0000_3010, &mut s).unwrap();
        assert_eq!(&s, b"four-k");
        let t = translate(&mem, dtb, 0xFFFF_F806_0061_2345).unwrap();
        assert_eq!((t.gpa, t.page_size), (0x21_2345, 2 << 20));
        assert!(translate(&mem, dtb, 0xFFFF_F806_0000_4000).is_none());
        assert!(
            translate(&mem, dtb, 0x0000_8000_0000_0000).is_none(),
            "non-canonical"
        );
    }
    // PAE with a 2 MiB page.
    let mut b = guest::Builder::new(true, false);
    b.map2m(0x8060_0000, 0x20_0000);
    let mem = SparseMem(&b.pages, 16 << 20);
    let t = translate(&mem, Dtb::new(Paging::Pae, b.root), 0x8061_0008).unwrap();
    assert_eq!((t.gpa, t.page_size), (0x21_0008, 2 << 20));
    // 32-bit paging: a 4 KiB page and a 4 MiB page.
    let mut pages = SparsePages::new();
    let pd = 0x1000u64;
    let pt = 0x2000u64;
    pages.write(
        pd + (0x8040_0000u64 >> 22) * 4,
        &(pt as u32 | 3).to_le_bytes(),
    );
    pages.write(
        pt + ((0x8040_5000u64 >> 12) & 0x3FF) * 4,
        &(0x7000u32 | 3).to_le_bytes(),
    );
    pages.write(
        pd + (0xC000_0000u64 >> 22) * 4,
        &(0x40_0000u32 | 0x83).to_le_bytes(),
    );
    pages.write(0x7123, b"x");
    let mem = SparseMem(&pages, 16 << 20);
    let dtb = Dtb::new(Paging::Bit32, pd);
    let mut x = [0u8];
    read_virt(&mem, dtb, 0x8040_5123, &mut x).unwrap();
    assert_eq!(&x, b"x");
    let t = translate(&mem, dtb, 0xC012_3456).unwrap();
    assert_eq!((t.gpa, t.page_size), (0x52_3456, 4 << 20));
    // Sign-extended x86 pointers (as KDDEBUGGER_DATA64 stores them) translate too.
    assert_eq!(
        translate(&mem, dtb, 0xFFFF_FFFF_C012_3456).map(|t| t.gpa),
        Some(0x52_3456)
    );
}

/// Page tables full of garbage, self-references at every level and entries outside RAM
/// neither panic nor loop; the DTB check rejects them.
#[test]
fn hostile_page_tables_are_rejected_without_panics() {
    let mut pages = SparsePages::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for pfn in 0..64u64 {
        let mut p = [0u8; 4096];
        for c in p.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly present entries pointing into or just past the 256 KiB of "RAM".
            let e = (x & 0x7_F000) | (x & 0xFFF) | 1;
            c.copy_from_slice(&e.to_le_bytes());
        }
        pages.set_page(pfn, p);
    }
    let mem = SparseMem(&pages, 256 << 10);
    for paging in [Paging::Long4, Paging::Long5, Paging::Pae, Paging::Bit32] {
        for root in (0..64u64).map(|p| p << 12) {
            let dtb = Dtb::new(paging, root);
            let c = vm2dmp::guest::translate::check_dtb(&mem, dtb);
            assert!(!c.valid || c.maps_shared_user_data);
            let mut buf = [0u8; 64];
            let _ = read_virt(&mem, dtb, 0xFFFF_F806_1A20_0000, &mut buf);
            let _ = translate(&mem, dtb, 0x8000_1000);
        }
    }
}

#[test]
fn real_sample_has_no_kernel_and_converts_with_a_note() {
    let state = SavedState::open(sample("test_file.VMRS")).unwrap();
    let info = find_kernel(&state, None);
    assert!(!info.found());
    for (name, f) in info.fields() {
        assert_eq!(f.method, Method::NotFound, "{name}");
        assert!(f.how.contains("paging"), "{name}: {}", f.how);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample.dmp");
    let r = convert(
        &state,
        &out,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("no Windows kernel found")),
        "{:?}",
        r.notes
    );
    let df = DumpFile::open(&out).unwrap();
    assert_eq!(df.dump().info().kd_debugger_data_block, 0);
}

/// With a matching PDB (as a file, or in a symbol-store folder) every field comes from the
/// symbols, even when no heuristic could decode the KDBG.
#[test]
fn x64_symbols_win_over_heuristics() {
    let clues = Clues {
        kdcopy_code: false,
        timer_code: false,
        ..Clues::x64()
    };
    // A PDB file given directly.
    let r = run_with(&clues, |dir, t| {
        let p = dir.join("ntkrnlmp.pdb");
        guest::write_pdb(&p, t.pdb_guid, t.pdb_age, &t.symbols);
        Some(p)
    });
    let i = &r.info;
    assert!(i.symbols.is_some(), "{:?}", i.notes);
    assert_eq!(i.kd_debugger_data_block.value, Some(r.truth.kdbg_va));
    assert_eq!(i.kdbg_keys, r.truth.keys);
    for name in [
        "KdDebuggerDataBlock",
        "PsLoadedModuleList",
        "PsActiveProcessHead",
        "MmPfnDatabase",
        "KiProcessorBlock",
        "NumberProcessors",
        "Build",
        "DirectoryTableBase",
    ] {
        let f = i.fields().into_iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(f.method, Method::Symbols, "{name}: {f:?}");
    }
    assert_eq!(i.mm_pfn_database.value, Some(r.truth.mm_pfn_database_value));
    assert!(r.report.notes.iter().any(|n| n.contains("with symbols")));
    check_full_dump(&r, true);
    check_with_kdmp_parser(&r);

    // A symbol-store folder: <dir>/ntkrnlmp.pdb/<GUID><age>/ntkrnlmp.pdb.
    let r = run_with(&clues, |dir, t| {
        let store = dir.join("symbols");
        let leaf = store
            .join("ntkrnlmp.pdb")
            .join("3844DBB920174967BE7AA4A2C20430FA1");
        std::fs::create_dir_all(&leaf).unwrap();
        guest::write_pdb(
            &leaf.join("ntkrnlmp.pdb"),
            t.pdb_guid,
            t.pdb_age,
            &t.symbols,
        );
        Some(store)
    });
    assert_eq!(r.info.kd_debugger_data_block.method, Method::Symbols);
    assert!(r.info.symbols.as_deref().unwrap().contains("3844DBB9"));
}

/// A PDB of another build (GUID or age) is refused with a note; heuristics are used instead.
#[test]
fn mismatched_symbols_are_refused() {
    let r = run_with(&Clues::x64(), |dir, t| {
        let p = dir.join("other.pdb");
        let mut guid = t.pdb_guid;
        guid[0] ^= 1;
        guest::write_pdb(&p, guid, t.pdb_age, &t.symbols);
        Some(p)
    });
    assert!(r.info.symbols.is_none());
    assert!(
        r.info
            .notes
            .iter()
            .any(|n| n.contains("symbols not used") && n.contains("3844DBB9")),
        "{:?}",
        r.info.notes
    );
    assert_eq!(r.info.kd_debugger_data_block.method, Method::Heuristic);
    let r = run_with(&Clues::x64(), |dir, t| {
        let p = dir.join("old.pdb");
        guest::write_pdb(&p, t.pdb_guid, t.pdb_age + 1, &t.symbols);
        Some(p)
    });
    assert!(r.info.symbols.is_none());
    let r = run_with(&Clues::x64(), |dir, _| Some(dir.join("missing.pdb")));
    assert!(r.info.notes.iter().any(|n| n.contains("missing.pdb")));
    check_full_dump(&r, true);
}

/// A conversion decodes each RAM block once, also when kernel discovery has to scan guest RAM
/// for page-table roots (no processor's CR3 maps kernel space): the scan looks at the blocks
/// the conversion decodes, and the header and patched pages are written after the pass.
#[test]
fn conversion_decodes_each_block_once_when_discovery_scans_ram() {
    use crate::malformed_kernel_discovery::Counted;
    use std::sync::atomic::Ordering;
    use vm2dmp::MemorySource;
    let clues = Clues {
        all_cr3_user: true,
        ..Clues::x64()
    };
    let (vm, truth) = guest::build(&clues);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    write_vmrs(&vm, &input).unwrap();
    let state = SavedState::open(&input).unwrap();
    let counted = Counted::new(&state);
    let dump = dir.path().join("guest.dmp");
    let report = convert(
        &counted,
        &dump,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    let blocks_in_ram = (0..state.chunk_count())
        .filter(|&n| !state.chunk_spans(n).is_empty())
        .count() as u64;
    assert_eq!(counted.decodes.load(Ordering::Relaxed), blocks_in_ram);
    // Discovery still ended with the kernel: header fields and every KPRCB context.
    assert_eq!(report.directory_table_base, truth.system_dtb);
    let r = Run {
        _dir: dir,
        vm,
        info: find_kernel(&state, None),
        truth,
        state,
        dump,
        report,
        symbols: None,
    };
    check_full_dump(&r, true);
}
