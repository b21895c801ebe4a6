//! Processor state from the notes: QEMU's NT_PRSTATUS and QEMUCPUState, VirtualBox's
//! DBGFCORECPU; EFER derivation and the notes telling the user about it.

use std::path::Path;

use vm2dmp_qemu::notes::{self, Producer};
use vm2dmp_source::{
    Architecture, CpuState, DescriptorTable, FileCtx, MemorySource, Msrs, PagingMode,
    SegmentRegister,
};

use crate::writer::{
    note_block, open, prstatus32, prstatus64, vbcore, Core, NoteRec, QSeg, QemuCpu, Seg, VSeg,
    VboxCpu, EM_386, EM_X86_64,
};

const KGS: u64 = 0xffff_f800_1234_0000;

/// A processor of a 64-bit Windows guest in kernel mode (`user`: in a 32-bit WoW64 thread).
fn long_mode_cpu(n: u64, user: bool) -> QemuCpu {
    let mut regs = [0u64; 18];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = 0x1000 * n + i as u64;
    }
    regs[16] = 0xffff_f800_0000_1000 + n; // rip
    regs[17] = 0x246;
    let (cs, ss) = if user {
        (
            QSeg {
                selector: 0x23,
                limit: 0xffff_ffff,
                flags: 0x00cf_fb00,
                base: 0,
            },
            QSeg {
                selector: 0x2b,
                limit: 0xffff_ffff,
                flags: 0x00cf_f300,
                base: 0,
            },
        )
    } else {
        (
            QSeg {
                selector: 0x10,
                limit: 0,
                flags: 0x0020_9b00,
                base: 0,
            },
            QSeg {
                selector: 0x18,
                limit: 0xffff_ffff,
                flags: 0x00cf_9300,
                base: 0,
            },
        )
    };
    let data = QSeg {
        selector: 0x2b,
        limit: 0xffff_ffff,
        flags: 0x00cf_f300,
        base: 0,
    };
    QemuCpu {
        regs,
        segs: [
            cs,
            data,
            data,
            QSeg {
                selector: 0x53,
                limit: 0x3c00,
                flags: 0x0040_f300,
                base: 0x7ff0_0000 + n,
            },
            QSeg {
                selector: 0x2b,
                limit: 0xffff_ffff,
                flags: 0x00cf_f300,
                base: 0xffff_f800_5550_0000 + n,
            },
            ss,
            QSeg::default(),
            QSeg {
                selector: 0x40,
                limit: 0x67,
                flags: 0x0000_8b00,
                base: 0xffff_f800_6660_0000,
            },
            QSeg {
                selector: 0,
                limit: 0x57,
                flags: 0,
                base: 0xffff_f800_7770_0000,
            },
            QSeg {
                selector: 0,
                limit: 0xfff,
                flags: 0,
                base: 0xffff_f800_8880_0000,
            },
        ],
        cr: [0x8005_0033, 0, 0xffff_f800_9990_0000, 0x1aa000, 0x0035_06f8],
        kernel_gs_base: Some(KGS + n),
    }
}

/// The x86-64 NT_PRSTATUS QEMU writes for `cpu` (pr_reg order).
fn prstatus_of(pid: u32, c: &QemuCpu) -> NoteRec {
    let r = &c.regs;
    let s = &c.segs;
    prstatus64(
        pid,
        [
            r[15],
            r[14],
            r[13],
            r[12],
            r[7],
            r[1],
            r[11],
            r[10],
            r[9],
            r[8],
            r[0],
            r[2],
            r[3],
            r[4],
            r[5],
            0,
            r[16],
            u64::from(s[0].selector),
            r[17],
            r[6],
            u64::from(s[5].selector),
            s[3].base,
            s[4].base,
            u64::from(s[1].selector),
            u64::from(s[2].selector),
            u64::from(s[3].selector),
            u64::from(s[4].selector),
        ],
    )
}

fn assert_gp(cpu: &CpuState, c: &QemuCpu) {
    let r = &c.regs;
    let got = [
        cpu.rax, cpu.rbx, cpu.rcx, cpu.rdx, cpu.rsi, cpu.rdi, cpu.rsp, cpu.rbp, cpu.r8, cpu.r9,
        cpu.r10, cpu.r11, cpu.r12, cpu.r13, cpu.r14, cpu.r15, cpu.rip, cpu.rflags,
    ];
    assert_eq!(&got, r);
}

fn qemu_core(elf64: bool, machine: u16, notes: Vec<NoteRec>) -> Core {
    let mut core = Core::new(elf64, machine);
    core.segments = vec![Seg::pages(0, 4)];
    core.notes = notes;
    core
}

#[test]
fn qemu_long_mode_processors() {
    let cpus = [long_mode_cpu(0, false), long_mode_cpu(1, true)];
    let mut notes: Vec<NoteRec> = cpus
        .iter()
        .enumerate()
        .map(|(i, c)| prstatus_of(i as u32 + 1, c))
        .collect();
    notes.extend(cpus.iter().map(QemuCpu::note));
    // QEMU also writes a VMCOREINFO note when the guest gave one: ignored.
    notes.push(NoteRec::new(b"VMCOREINFO\0", 0, b"OSRELEASE=x\n".to_vec()));
    let elf = open(qemu_core(true, EM_X86_64, notes).build()).unwrap();
    let v = elf.vcpus();
    assert_eq!(v.len(), 2);
    for (i, (cpu, c)) in v.iter().zip(&cpus).enumerate() {
        assert_eq!(cpu.index, i as u32);
        assert_gp(cpu, c);
        assert!(cpu.has_gp && cpu.has_control && cpu.has_segments);
        assert_eq!(cpu.cr0, 0x8005_0033);
        assert_eq!(cpu.cr2, 0xffff_f800_9990_0000);
        assert_eq!(cpu.cr3, 0x1aa000);
        assert_eq!(cpu.cr4, 0x0035_06f8);
        assert_eq!(cpu.efer, 0xd00, "LME, LMA and NXE");
        assert_eq!(cpu.architecture(), Architecture::X64);
        assert_eq!(cpu.paging_mode(), PagingMode::Long);
        assert_eq!(
            cpu.msrs,
            Some(Msrs {
                kernel_gs_base: KGS + i as u64,
                ..Msrs::default()
            })
        );
        assert_eq!(
            cpu.gdtr,
            DescriptorTable {
                limit: 0x57,
                base: 0xffff_f800_7770_0000
            }
        );
        assert_eq!(
            cpu.idtr,
            DescriptorTable {
                limit: 0xfff,
                base: 0xffff_f800_8880_0000
            }
        );
        assert_eq!(
            cpu.tr,
            SegmentRegister {
                base: 0xffff_f800_6660_0000,
                limit: 0x67,
                selector: 0x40,
                attributes: 0x8b
            }
        );
        assert_eq!(cpu.ldtr, SegmentRegister::default());
        assert_eq!(
            cpu.gs,
            SegmentRegister {
                base: 0xffff_f800_5550_0000 + i as u64,
                limit: 0xffff_ffff,
                selector: 0x2b,
                attributes: 0xc0f3
            }
        );
        assert_eq!(cpu.fs.base, 0x7ff0_0000 + i as u64);
        assert_eq!(cpu.fs.attributes, 0x40f3);
        assert_eq!(cpu.ds.attributes, 0xc0f3);
        assert_eq!(cpu.fp, None);
    }
    // Kernel mode, 64-bit code segment: L set, D clear.
    assert_eq!(v[0].cs.attributes, 0x209b);
    assert_eq!(v[0].cs.selector, 0x10);
    assert_eq!(v[0].ss.attributes, 0xc093);
    assert_eq!(v[0].cpl, 0);
    // A WoW64 thread: CS.L clear, still long mode (the x86-64 NT_PRSTATUS layout says so).
    assert_eq!(v[1].cs.attributes, 0xc0fb);
    assert_eq!(v[1].cpl, 3);
    let m = elf.machine();
    assert!(m
        .notes
        .iter()
        .any(|n| n.contains("EFER is not in QEMU's notes")
            && n.contains("CS.L")
            && n.contains("NX")));
    assert_eq!(m.kind, "QEMU ELF core");
    assert_eq!(elf.producer(), Producer::Qemu);
    assert_eq!(elf.boot_vcpu().map(|c| c.index), Some(0));
}

#[test]
fn efer_follows_cs_l_without_prstatus() {
    // QEMU notes alone (no NT_PRSTATUS): CS.L decides.
    let mut compat = long_mode_cpu(1, true);
    compat.kernel_gs_base = None;
    let mut real = long_mode_cpu(2, false);
    real.cr = [0x10, 0, 0, 0, 0];
    real.segs[0] = QSeg {
        selector: 0xf000,
        limit: 0xffff,
        flags: 0x9b00,
        base: 0xffff_0000,
    };
    let cpus = [long_mode_cpu(0, false), compat, real];
    let core = qemu_core(true, EM_X86_64, cpus.iter().map(QemuCpu::note).collect());
    let elf = open(core.build()).unwrap();
    let v = elf.vcpus();
    assert_eq!(v[0].efer, 0xd00);
    assert_eq!(
        v[1].efer, 0,
        "CS.L clear and no x86-64 NT_PRSTATUS: not derived as long mode"
    );
    assert_eq!(
        v[1].msrs, None,
        "a 432-byte QEMUCPUState has no kernel_gs_base"
    );
    assert_eq!(v[2].efer, 0);
    assert_eq!(v[2].cpl, 0);
    assert_eq!(v[2].mode_description(), "real mode");
}

#[test]
fn elf32_pae_guest() {
    let mut c = QemuCpu {
        cr: [0x8001_0033, 0, 0x8000_1000, 0x0030_0000, 0x6f9],
        ..QemuCpu::default()
    };
    for (i, r) in c.regs.iter_mut().enumerate() {
        *r = 0x8000_0000 + i as u64;
    }
    let flat = |sel, dpl: u32| QSeg {
        selector: sel,
        limit: 0xffff_ffff,
        flags: 0x00cf_9300 | (dpl << 13),
        base: 0,
    };
    c.segs[0] = QSeg {
        flags: 0x00cf_9b00,
        ..flat(0x8, 0)
    };
    c.segs[1] = flat(0x23, 3);
    c.segs[2] = flat(0x23, 3);
    c.segs[3] = QSeg {
        base: 0x8273_3000,
        ..flat(0x30, 0)
    };
    c.segs[5] = flat(0x10, 0);
    let pr = |n: u32| {
        prstatus32(
            n + 1,
            [
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                0x23,
                0x23,
                0x30,
                0,
                0,
                0x8000_0010,
                8,
                0x202,
                0x8000_0006,
                0x10,
            ],
        )
    };
    for elf64 in [false, true] {
        // QEMU writes ELF64 with EM_386 for a 32-bit guest with RAM above 4 GiB.
        let notes = vec![pr(0), pr(1), c.note(), c.note()];
        let mut core = qemu_core(elf64, EM_386, notes);
        if elf64 {
            core.segments.push(Seg::pages(1 << 32, 2));
        }
        let elf = open(core.build()).unwrap();
        let v = elf.vcpus();
        assert_eq!(v.len(), 2);
        for cpu in v {
            assert_gp(cpu, &c);
            assert_eq!(cpu.efer, 0);
            assert_eq!(cpu.architecture(), Architecture::X86);
            assert_eq!(cpu.paging_mode(), PagingMode::Pae);
            assert_eq!(cpu.mode_description(), "protected mode, PAE paging");
            assert_eq!(cpu.cs.attributes, 0xc09b);
            assert_eq!(cpu.fs.base, 0x8273_3000);
            assert_eq!(cpu.msrs, None);
            assert_eq!(cpu.cpl, 0);
        }
    }
}

#[test]
fn prstatus_only_gives_general_registers() {
    // A core with NT_PRSTATUS notes and no QEMU notes: general registers and selectors only.
    let cpus = [long_mode_cpu(0, false), long_mode_cpu(1, false)];
    let notes = cpus
        .iter()
        .enumerate()
        .map(|(i, c)| prstatus_of(i as u32, c))
        .collect();
    let elf = open(qemu_core(true, EM_X86_64, notes).build()).unwrap();
    let v = elf.vcpus();
    assert_eq!(v.len(), 2);
    for (cpu, c) in v.iter().zip(&cpus) {
        assert_gp(cpu, c);
        assert!(cpu.has_gp);
        assert!(!cpu.has_control && !cpu.has_segments);
        assert_eq!(cpu.cr3, 0);
        assert_eq!(cpu.architecture(), Architecture::X64);
        assert_eq!(cpu.cs.selector, 0x10);
        assert_eq!(cpu.ss.selector, 0x18);
        assert_eq!(cpu.gs.base, c.segs[4].base);
        assert_eq!(cpu.fs.base, c.segs[3].base);
    }
    let m = elf.machine();
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("2 of 2 processors have no QEMU note") && n.contains("unknown")),
        "{:?}",
        m.notes
    );
    assert!(!m.notes.iter().any(|n| n.contains("EFER is not")));

    // i386 NT_PRSTATUS alone.
    let regs = [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        0x23,
        0x2b,
        0x30,
        0x38,
        0xffff_ffff,
        0x8000_0010,
        8,
        0x202,
        0x9000,
        0x10,
    ];
    let core = qemu_core(false, EM_386, vec![prstatus32(1, regs)]);
    let v = open(core.build()).unwrap().vcpus().to_vec();
    let cpu = &v[0];
    assert_eq!(
        [cpu.rbx, cpu.rcx, cpu.rdx, cpu.rsi, cpu.rdi, cpu.rbp, cpu.rax],
        [1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        [
            cpu.ds.selector,
            cpu.es.selector,
            cpu.fs.selector,
            cpu.gs.selector
        ],
        [0x23, 0x2b, 0x30, 0x38]
    );
    assert_eq!(
        (cpu.rip, cpu.cs.selector, cpu.rflags),
        (0x8000_0010, 8, 0x202)
    );
    assert_eq!((cpu.rsp, cpu.ss.selector), (0x9000, 0x10));
    assert_eq!(cpu.architecture(), Architecture::X86);
}

#[test]
fn no_notes_no_processors() {
    let elf = open(qemu_core(true, EM_X86_64, Vec::new()).build()).unwrap();
    assert!(elf.vcpus().is_empty());
    assert!(elf.boot_vcpu().is_none());
    assert!(elf.machine().notes.is_empty());
}

#[test]
fn cpu_states_reads_a_bare_note_block() {
    // What the kdump reader hands over: the note block of the file, at its offset.
    let cpus = [long_mode_cpu(0, false)];
    let mut notes = vec![prstatus_of(1, &cpus[0])];
    notes.push(cpus[0].note());
    let (block, _) = note_block(&notes);
    let ctx = FileCtx::new(Path::new("dump.kdump"));
    let (v, n) = notes::cpu_states(&ctx, 0x2000, &block).unwrap();
    assert_eq!(v.len(), 1);
    assert_gp(&v[0], &cpus[0]);
    assert_eq!(v[0].efer, 0xd00);
    assert_eq!(n.len(), 1);
    // Errors name the note's offset in the file.
    let mut bad = block.clone();
    bad[4..8].copy_from_slice(&100u32.to_le_bytes()); // NT_PRSTATUS descsz 100
    bad.truncate(12 + 8 + 100);
    match notes::cpu_states(&ctx, 0x2000, &bad) {
        Err(vm2dmp_source::Error::Corrupt {
            structure, offset, ..
        }) => assert_eq!((structure, offset), ("NT_PRSTATUS note", 0x2000)),
        other => panic!("{other:?}"),
    }
    let parsed = notes::parse(&ctx, 0x2000, &block).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].name, b"CORE");
    assert_eq!(parsed[1].name, b"QEMU");
    assert_eq!(parsed[1].offset, 0x2000 + 12 + 8 + 336);
    assert_eq!(parsed[1].desc.len(), 440);
}

fn vbox_cpu(n: u64) -> VboxCpu {
    let mut regs = [0u64; 18];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = 0x100 * (n + 1) + i as u64;
    }
    // VT-x attributes: limit bits 8..11 and the unusable bit 16 are not Hyper-V's.
    let code = VSeg {
        base: 0,
        limit: 0xffff_ffff,
        attr: 0xa09b | 0xf00,
        sel: 0x10,
    };
    let data = VSeg {
        base: 0,
        limit: 0xffff_ffff,
        attr: 0xc093 | 0xf00,
        sel: 0x18,
    };
    let null = VSeg {
        attr: 0x1_0000,
        ..VSeg::default()
    };
    let mut fx = [0u8; 512];
    fx[0..2].copy_from_slice(&0x27fu16.to_le_bytes());
    fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    fx[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    fx[160..176].copy_from_slice(&(0x1122_3344_5566_7788u128 + u128::from(n)).to_le_bytes());
    VboxCpu {
        regs,
        segs: [code, data, data, null, data, data],
        cr: [0x8005_0033, 0x1234, 0x1aa000 + n, 0x6f8],
        dr: [1, 2, 3, 4, 0, 0, 0xffff_0ff0, 0x400],
        gdtr: (0xffff_f800_1000_0000, 0x57),
        idtr: (0xffff_f800_2000_0000, 0xfff),
        ldtr: null,
        tr: VSeg {
            base: 0xffff_f800_3000_0000,
            limit: 0x67,
            attr: 0x8b,
            sel: 0x40,
        },
        msrs: [
            0xd01,
            0x23_0010_0000_0000,
            0x7040600070406,
            0xffff_f800_4000_0000,
            0xffff_f800_5000_0000,
            0x4700,
            KGS + n,
            0xfee0_0900,
        ],
        fxsave: Some(fx),
    }
}

fn vbox_core(version: u32, cpus: &[VboxCpu]) -> Core {
    let mut core = Core::new(true, EM_X86_64);
    core.segments = vec![Seg::pages(0, 4)];
    // An MMIO range: a PT_LOAD with nothing in the file.
    core.segments.push(Seg::partial(0xe000_0000, 0, 16));
    core.segments.push(Seg::pages(0x100000, 2));
    core.notes = vec![vbcore(version, cpus.len() as u32)];
    core.notes.extend(cpus.iter().map(VboxCpu::note));
    core
}

#[test]
fn virtualbox_processors() {
    let cpus = [vbox_cpu(0), vbox_cpu(1)];
    let elf = open(vbox_core(0x0001_0005, &cpus).build()).unwrap();
    assert_eq!(elf.producer(), Producer::VirtualBox);
    assert_eq!(elf.machine().kind, "VirtualBox core");
    assert_eq!(
        elf.ram_ranges()
            .iter()
            .map(|r| (r.gpa_start(), r.page_count))
            .collect::<Vec<_>>(),
        [(0, 4), (0x100000, 2)],
        "the MMIO range is not RAM"
    );
    assert!(elf
        .machine()
        .notes
        .iter()
        .any(|n| n.contains("1 PT_LOAD segments store no bytes") && n.contains("MMIO")));
    let v = elf.vcpus();
    assert_eq!(v.len(), 2);
    for (i, (cpu, c)) in v.iter().zip(&cpus).enumerate() {
        let r = &c.regs;
        assert_eq!(cpu.index, i as u32);
        assert_eq!(
            [
                cpu.rax, cpu.rbx, cpu.rcx, cpu.rdx, cpu.rsi, cpu.rdi, cpu.r8, cpu.r9, cpu.r10,
                cpu.r11, cpu.r12, cpu.r13, cpu.r14, cpu.r15, cpu.rip, cpu.rsp, cpu.rbp, cpu.rflags
            ],
            *r
        );
        assert_eq!(cpu.cs.attributes, 0xa09b);
        assert_eq!(cpu.cs.selector, 0x10);
        assert_eq!(cpu.ss.attributes, 0xc093);
        assert_eq!(cpu.fs.attributes, 0, "unusable bit dropped");
        assert_eq!(cpu.tr.attributes, 0x8b);
        assert_eq!(cpu.tr.base, 0xffff_f800_3000_0000);
        assert_eq!(
            (cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4),
            (0x8005_0033, 0x1234, 0x1aa000 + i as u64, 0x6f8)
        );
        assert_eq!(
            (cpu.dr0, cpu.dr1, cpu.dr2, cpu.dr3, cpu.dr6, cpu.dr7),
            (1, 2, 3, 4, 0xffff_0ff0, 0x400)
        );
        assert_eq!(
            cpu.gdtr,
            DescriptorTable {
                limit: 0x57,
                base: 0xffff_f800_1000_0000
            }
        );
        assert_eq!(
            cpu.idtr,
            DescriptorTable {
                limit: 0xfff,
                base: 0xffff_f800_2000_0000
            }
        );
        assert_eq!(cpu.efer, 0xd01, "EFER straight from the note");
        assert_eq!(
            cpu.msrs,
            Some(Msrs {
                tsc: 0,
                kernel_gs_base: KGS + i as u64,
                apic_base: 0xfee0_0900,
                star: 0x23_0010_0000_0000,
                lstar: 0xffff_f800_4000_0000,
                cstar: 0xffff_f800_5000_0000,
                sfmask: 0x4700,
            })
        );
        let fp = cpu.fp.expect("FXSAVE image");
        assert_eq!(fp.fcw, 0x27f);
        assert_eq!(fp.mxcsr, 0x1f80);
        assert_eq!(fp.xmm[0], 0x1122_3344_5566_7788 + i as u128);
        assert_eq!(cpu.cpl, 0);
        assert_eq!(cpu.architecture(), Architecture::X64);
        assert!(cpu.has_gp && cpu.has_control && cpu.has_segments);
    }
    assert!(!elf.machine().notes.iter().any(|n| n.contains("EFER")));
}

#[test]
fn virtualbox_formats() {
    let cpus = [vbox_cpu(0)];
    // Format 0x00010004: the same registers, the FXSAVE image is not read.
    let elf = open(vbox_core(0x0001_0004, &cpus).build()).unwrap();
    assert_eq!(elf.vcpus().len(), 1);
    assert_eq!(elf.vcpus()[0].efer, 0xd01);
    assert_eq!(elf.vcpus()[0].fp, None);
    // An older format (raw CPUMCTX): memory is read, processors are not.
    let elf = open(vbox_core(0x0001_0000, &cpus).build()).unwrap();
    assert!(elf.vcpus().is_empty());
    assert_eq!(elf.ram_pages(), 6);
    assert!(elf
        .machine()
        .notes
        .iter()
        .any(|n| n.contains("0x00010000") && n.contains("not read")));
    // The descriptor's processor count disagrees with the notes: said, not fatal.
    let mut core = vbox_core(0x0001_0005, &cpus);
    core.notes[0] = vbcore(0x0001_0005, 4);
    let elf = open(core.build()).unwrap();
    assert_eq!(elf.vcpus().len(), 1);
    assert!(elf
        .machine()
        .notes
        .iter()
        .any(|n| n.contains("counts 4 processors, 1 VBCPU")));
}
