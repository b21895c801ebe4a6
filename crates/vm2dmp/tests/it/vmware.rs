//! A synthetic Windows guest saved as a VMware checkpoint (`.vmss` + `.vmem`, regions with the
//! hole below 4 GiB left out of the `.vmem`): recognised by content, its kernel found, the dump
//! verified, the registers we wrote in the dump's context record, and the dump read by
//! kdmp-parser.

use vm2dmp::input::{Input, OpenOptions};
use vm2dmp::source::PAGE_SIZE;
use vm2dmp::{convert, verify, Cancel, ConvertOptions, DumpFile, MemorySource, NoProgress};
use vm2dmp_synth::vmware::{Guest, MemoryPlacement, RegStyle, Region, Vcpu, MAGIC};

use crate::flat::flat_image;
use crate::guest::{build, Clues};

/// The VMware registers of a processor of the flat image.
fn vcpu(c: &vm2dmp::CpuState) -> Vcpu {
    Vcpu {
        gp: [
            c.rax, c.rcx, c.rdx, c.rbx, c.rsp, c.rbp, c.rsi, c.rdi, c.r8, c.r9, c.r10, c.r11,
            c.r12, c.r13, c.r14, c.r15,
        ],
        rip: c.rip,
        rflags: c.rflags as u32,
        cr: [c.cr0, 0, c.cr2, c.cr3, c.cr4, 0, 0, 0, c.cr8],
        dr: [c.dr0, c.dr1, c.dr2, c.dr3, 0, 0, c.dr6, c.dr7],
        gdtr: (c.gdtr.limit, c.gdtr.base),
        idtr: (c.idtr.limit, c.idtr.base),
        selectors: [
            c.es.selector,
            c.cs.selector,
            c.ss.selector,
            c.ds.selector,
            c.fs.selector,
            c.gs.selector,
            c.ldtr.selector,
            c.tr.selector,
        ],
        bases: [
            c.es.base,
            c.cs.base,
            c.ss.base,
            c.ds.base,
            c.fs.base,
            c.gs.base,
            c.ldtr.base,
            c.tr.base,
        ],
    }
}

#[test]
fn a_windows_guest_in_a_vmware_checkpoint_converts() {
    let (vm, truth) = build(&Clues::x64());
    let image = flat_image(&vm);
    // Regions stored back to back in the .vmem, as VMware leaves the hole out.
    let mut regions = Vec::new();
    let mut vmem = Vec::new();
    for r in image.ram_ranges() {
        regions.push(Region {
            gpa_page: r.gpa_page_start,
            vmem_page: (vmem.len() / PAGE_SIZE) as u64,
            pages: r.page_count,
        });
        let at = vmem.len();
        vmem.resize(at + r.page_count as usize * PAGE_SIZE, 0);
        image.read_phys(r.gpa_start(), &mut vmem[at..]).unwrap();
    }
    let guest = Guest {
        magic: MAGIC,
        regions,
        plain_pages: 0,
        vcpus: image.vcpus().iter().map(vcpu).collect(),
        reg_style: RegStyle::Tags,
        placement: MemoryPlacement::Vmem,
    };
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = guest.checkpoint().to_bytes();
    std::fs::write(dir.path().join("win.vmss"), state).unwrap();
    std::fs::write(dir.path().join("win.vmem"), &vmem).unwrap();

    // Opened by content, from the state file or from its .vmem.
    for name in ["win.vmss", "win.vmem"] {
        let input = Input::open(dir.path().join(name), &OpenOptions::default()).unwrap();
        assert_eq!(input.format(), vm2dmp::input::Format::Vmware);
        assert_eq!(input.ram_ranges(), image.ram_ranges());
        assert_eq!(input.files().len(), 2);
    }
    let input = Input::open(dir.path().join("win.vmss"), &OpenOptions::default()).unwrap();
    let cpus = input.vcpus();
    assert_eq!(cpus.len(), image.vcpus().len());
    for (got, want) in cpus.iter().zip(image.vcpus()) {
        assert_eq!(
            (got.rax, got.rsp, got.r15, got.rip, got.cr3, got.cr4),
            (want.rax, want.rsp, want.r15, want.rip, want.cr3, want.cr4)
        );
        assert_eq!(got.architecture(), vm2dmp::source::Architecture::X64);
    }
    let kernel = vm2dmp::guest::find_kernel(&input, None);
    assert!(kernel.found(), "{:?}", kernel.notes);
    assert_eq!(kernel.kd_debugger_data_block.value, Some(truth.kdbg_va));

    let out = dir.path().join("win.dmp");
    let report = convert(
        &input,
        &out,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!(report.directory_table_base, truth.system_dtb);
    assert_eq!(report.number_processors as usize, image.vcpus().len());
    assert!(
        report.notes.iter().any(|n| n.contains("EFER")),
        "{:?}",
        report.notes
    );
    let dump = DumpFile::open(&out).unwrap();
    let v = verify(&dump, &input, None, &NoProgress, &Cancel::new()).unwrap();
    assert!(v.ok(), "{v:?}");
    let info = dump.dump().info();
    assert!(
        info.comment.contains("VMware suspended state win.vmss"),
        "{}",
        info.comment
    );

    let parser = kdmp_parser::parse::KernelDumpParser::new(&out).unwrap();
    let ctx = parser.context_record();
    let boot = &image.vcpus()[0];
    assert_eq!(
        (ctx.rip, ctx.rsp, ctx.rax, ctx.r15),
        (boot.rip, boot.rsp, boot.rax, boot.r15)
    );
    assert_eq!(parser.headers().directory_table_base, truth.system_dtb);
}
