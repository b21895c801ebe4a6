//! ELF notes holding processor state, as QEMU's ELF cores and kdump-compressed files and
//! VirtualBox's cores carry them.
//!
//! # Note records
//! A note block is a sequence of records: a 12-byte header (`n_namesz`, `n_descsz`, `n_type`,
//! little-endian `u32`s, the same in ELF32 and ELF64), the name (`n_namesz` bytes, padded to 4
//! bytes), then the descriptor (`n_descsz` bytes, padded to 4 bytes). The name's trailing NUL
//! is counted by QEMU (`"CORE"` has `n_namesz` 5) and not by VirtualBox (`"VBCPU"` has 5,
//! `"VBCORE"` 6); both pad names to 8 bytes, so 4-byte alignment reads both.
//!
//! # QEMU (`target/i386/arch_dump.c`)
//! For each processor, in order, QEMU writes a `CORE` note of type 1 (NT_PRSTATUS), then, after
//! all of them, one `QEMU` note of type 0 per processor in the same order:
//! - NT_PRSTATUS is Linux's `struct elf_prstatus`. x86-64 (336 bytes, written when the first
//!   processor is in long mode): `pr_reg` at byte 112, 27 `u64`s r15 r14 r13 r12 rbp rbx r11
//!   r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
//!   i386 (144 bytes): `pr_reg` at byte 72, `u32`s ebx ecx edx esi edi ebp eax ds es fs gs
//!   orig_eax eip cs eflags esp ss (selectors in the low 16 bits). Only general registers and
//!   selectors.
//! - The `QEMU` note is `QEMUCPUState`: `u32` version (1), `u32` size, then `u64`s rax rbx rcx
//!   rdx rsi rdi rsp rbp r8..r15 rip rflags (byte 8), ten segments cs ds es fs gs ss ldt tr gdt
//!   idt (byte 152, 24 bytes each: `u32` selector, limit, flags, pad, `u64` base), `cr[5]`
//!   (byte 392) and, in newer QEMUs (size 440), `kernel_gs_base` (byte 432). Segment `flags`
//!   are QEMU's `SegmentCache` flags, the descriptor's high dword: type in bits 8..11, S 12,
//!   DPL 13..14, P 15, AVL 20, L 21, D/B 22, G 23. For GDT and IDT only base and limit count.
//! - EFER is in neither. It is derived: long mode (LME, LMA) when CR0.PG and CR4.PAE are set
//!   and CS.L is, or the NT_PRSTATUS notes have the x86-64 layout (QEMU chooses it when the
//!   first processor is in long mode, so a processor running 32-bit code under a 64-bit
//!   kernel still counts); NXE with it, since 64-bit Windows requires NX.
//! - The CPL is SS.DPL (as QEMU keeps it), 3 in virtual-8086 mode, 0 in real mode.
//!
//! # VirtualBox (`include/VBox/vmm/dbgfcorefmt.h`, `DBGFCoreWrite.cpp`)
//! A `VBCORE` note (type 0xb00) holds `DBGFCOREDESCRIPTOR`: `u32` magic 0xc01ac0de, format
//! version, size, VirtualBox version, revision, processor count. One `VBCPU` note (type
//! 0xb01) per processor holds `DBGFCORECPU`: `u64`s rax rbx rcx rdx rsi rdi r8..r15 rip rsp
//! rbp rflags; six segments cs ds es fs gs ss (byte 144, 24 bytes each: `u64` base, `u32`
//! limit, `u32` attributes in the VT-x layout, `u16` selector, 6 reserved); cr0 cr2 cr3 cr4
//! (byte 288); dr0..dr7 (byte 320); gdtr and idtr (byte 384, `u64` base, `u32` limit, 4
//! reserved); ldtr and tr (byte 416); SYSENTER cs eip esp (byte 464); EFER STAR PAT LSTAR
//! CSTAR SFMASK KernelGSBase ApicBase (byte 488); xcr0 xcr1 (byte 552); then, in format
//! 0x00010005, `u32` cbExt and padding (byte 568) and the XSAVE area (byte 576, FXSAVE
//! image first). Formats 0x00010004 and 0x00010005 agree up to byte 568; older VirtualBoxes
//! stored their internal CPUMCTX, which is not read.

use vm2dmp_source::le;
use vm2dmp_source::{CpuState, DescriptorTable, FileCtx, FpState, Msrs, Result, SegmentRegister};

/// Note type of NT_PRSTATUS (`CORE` notes).
pub const NT_PRSTATUS: u32 = 1;
/// Note type of QEMU's `QEMU` notes.
pub const NT_QEMU: u32 = 0;
/// Note type of VirtualBox's `VBCORE` note.
pub const NT_VBOXCORE: u32 = 0xb00;
/// Note type of VirtualBox's `VBCPU` notes.
pub const NT_VBOXCPU: u32 = 0xb01;
/// `DBGFCOREDESCRIPTOR::u32Magic`.
pub const DBGFCORE_MAGIC: u32 = 0xc01a_c0de;

/// Size of a note header.
const NOTE_HEADER: usize = 12;
/// Size of an x86-64 `struct elf_prstatus`.
const PRSTATUS64_SIZE: usize = 336;
/// Offset of `pr_reg` in an x86-64 `struct elf_prstatus`.
const PRSTATUS64_REGS: usize = 112;
/// Size of an i386 `struct elf_prstatus`.
const PRSTATUS32_SIZE: usize = 144;
/// Offset of `pr_reg` in an i386 `struct elf_prstatus`.
const PRSTATUS32_REGS: usize = 72;
/// Size of `QEMUCPUState` without `kernel_gs_base`.
const QEMU_STATE_MIN: usize = 432;
/// Size of `QEMUCPUState` with `kernel_gs_base`.
const QEMU_STATE_GSBASE: usize = 440;
/// Bytes of `DBGFCORECPU` read (everything before `cbExt`).
const VBOX_CPU_MIN: usize = 568;
/// Offset of the XSAVE area in `DBGFCORECPU` format 0x00010005.
const VBOX_CPU_EXT: usize = 576;
/// Size of `DBGFCOREDESCRIPTOR`.
const VBOX_DESCRIPTOR_SIZE: usize = 24;

const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const RFLAGS_VM: u64 = 1 << 17;
/// EFER.LME | EFER.LMA | EFER.NXE.
const EFER_LONG_NX: u64 = (1 << 8) | (1 << 10) | (1 << 11);
/// CS.L in the Hyper-V attribute layout.
const ATTR_L: u16 = 1 << 13;

/// One note record of a note block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    /// File offset of the note's header.
    pub offset: u64,
    /// The name, without trailing NULs (`CORE`, `QEMU`, `VBCPU`...).
    pub name: &'a [u8],
    /// The note type (`n_type`).
    pub kind: u32,
    /// The descriptor (`n_descsz` bytes).
    pub desc: &'a [u8],
}

impl Note<'_> {
    /// True when the note has name `name` and type `kind`.
    pub fn is(&self, name: &[u8], kind: u32) -> bool {
        self.name == name && self.kind == kind
    }
}

/// The note records of a note block (`bytes`, found at `offset` in the file `ctx` names).
/// Trailing zero bytes too short for a header are padding; anything else that does not fit
/// is [`Error::Corrupt`](vm2dmp_source::Error::Corrupt) naming the note's offset.
pub fn parse<'a>(ctx: &FileCtx, offset: u64, bytes: &'a [u8]) -> Result<Vec<Note<'a>>> {
    let mut notes = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let at = offset.saturating_add(pos as u64);
        let rest = bytes.get(pos..).unwrap_or(&[]);
        if rest.len() < NOTE_HEADER {
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err(ctx.corrupt(
                "ELF note",
                at,
                format!(
                    "{} bytes left in the note block, too few for a 12-byte note header",
                    rest.len()
                ),
            ));
        }
        let field = |off| le::u32(rest, off).unwrap_or(0) as usize;
        let (namesz, descsz) = (field(0), field(4));
        let kind = le::u32(rest, 8).unwrap_or(0);
        let name_end = NOTE_HEADER.checked_add(namesz);
        let desc_start = name_end.and_then(|e| e.checked_add(3)).map(|e| e & !3);
        let desc_end = desc_start.and_then(|s| s.checked_add(descsz));
        let (Some(name_end), Some(desc_start), Some(desc_end)) = (name_end, desc_start, desc_end)
        else {
            return Err(ctx.corrupt("ELF note", at, "name and descriptor sizes overflow"));
        };
        if desc_end > rest.len() {
            return Err(ctx.corrupt(
                "ELF note",
                at,
                format!(
                    "name of {namesz} bytes and descriptor of {descsz} bytes run past the end of the note block ({} bytes left)",
                    rest.len()
                ),
            ));
        }
        let mut name = rest.get(NOTE_HEADER..name_end).unwrap_or(&[]);
        while let [head @ .., 0] = name {
            name = head;
        }
        notes.push(Note {
            offset: at,
            name,
            kind,
            desc: rest.get(desc_start..desc_end).unwrap_or(&[]),
        });
        // The descriptor's padding may be missing after the last note.
        let next = desc_end.checked_add(3).map_or(usize::MAX, |e| e & !3);
        pos = pos.saturating_add(next.min(rest.len()));
    }
    Ok(notes)
}

/// Who wrote the processor notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Producer {
    /// QEMU (`CORE` and `QEMU` notes), or no processor notes at all.
    Qemu,
    /// VirtualBox (`VBCORE` and `VBCPU` notes).
    VirtualBox,
}

/// Processor state read from notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processors {
    /// Registers of each processor, in note order (the index is the position).
    pub cpus: Vec<CpuState>,
    /// What was inferred or could not be read, in words, for the user.
    pub notes: Vec<String>,
    /// Who wrote the notes.
    pub producer: Producer,
}

/// Processor state read from a block of ELF notes (`bytes`, found at `offset` in the file
/// `ctx` names), ordered by processor index, and notes for the user on what was inferred.
pub fn cpu_states(
    ctx: &FileCtx,
    offset: u64,
    bytes: &[u8],
) -> Result<(Vec<CpuState>, Vec<String>)> {
    let p = processors(ctx, &parse(ctx, offset, bytes)?)?;
    Ok((p.cpus, p.notes))
}

/// Processor state from parsed notes: VirtualBox's when a `VBCORE` note is present, else
/// QEMU's. Notes of other names and types are ignored.
pub fn processors(ctx: &FileCtx, notes: &[Note<'_>]) -> Result<Processors> {
    match notes.iter().find(|n| n.is(b"VBCORE", NT_VBOXCORE)) {
        Some(descriptor) => virtualbox(ctx, descriptor, notes),
        None => qemu(ctx, notes),
    }
}

/// Reads `u64` fields of a descriptor already checked to be long enough.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn q(&self, off: usize) -> u64 {
        le::u64(self.0, off).unwrap_or(0)
    }
    fn d(&self, off: usize) -> u32 {
        le::u32(self.0, off).unwrap_or(0)
    }
    fn w(&self, off: usize) -> u16 {
        le::u16(self.0, off).unwrap_or(0)
    }
}

/// The layout of NT_PRSTATUS notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrstatusLayout {
    X64,
    I386,
}

fn prstatus_layout(ctx: &FileCtx, note: &Note<'_>) -> Result<PrstatusLayout> {
    match note.desc.len() {
        PRSTATUS64_SIZE => Ok(PrstatusLayout::X64),
        PRSTATUS32_SIZE => Ok(PrstatusLayout::I386),
        n => Err(ctx.corrupt(
            "NT_PRSTATUS note",
            note.offset,
            format!(
                "descriptor of {n} bytes is neither an x86-64 elf_prstatus ({PRSTATUS64_SIZE}) nor an i386 one ({PRSTATUS32_SIZE})"
            ),
        )),
    }
}

/// General registers and selectors of an NT_PRSTATUS note.
fn from_prstatus(cpu: &mut CpuState, desc: &[u8], layout: PrstatusLayout) {
    let f = Fields(desc);
    let selector = |v: u64| SegmentRegister {
        selector: v as u16,
        ..SegmentRegister::default()
    };
    match layout {
        PrstatusLayout::X64 => {
            let r = |i: usize| f.q(PRSTATUS64_REGS + 8 * i);
            cpu.r15 = r(0);
            cpu.r14 = r(1);
            cpu.r13 = r(2);
            cpu.r12 = r(3);
            cpu.rbp = r(4);
            cpu.rbx = r(5);
            cpu.r11 = r(6);
            cpu.r10 = r(7);
            cpu.r9 = r(8);
            cpu.r8 = r(9);
            cpu.rax = r(10);
            cpu.rcx = r(11);
            cpu.rdx = r(12);
            cpu.rsi = r(13);
            cpu.rdi = r(14);
            cpu.rip = r(16);
            cpu.cs = selector(r(17));
            cpu.rflags = r(18);
            cpu.rsp = r(19);
            cpu.ss = selector(r(20));
            cpu.ds = selector(r(23));
            cpu.es = selector(r(24));
            cpu.fs = SegmentRegister {
                base: r(21),
                ..selector(r(25))
            };
            cpu.gs = SegmentRegister {
                base: r(22),
                ..selector(r(26))
            };
        }
        PrstatusLayout::I386 => {
            let r = |i: usize| u64::from(f.d(PRSTATUS32_REGS + 4 * i));
            cpu.rbx = r(0);
            cpu.rcx = r(1);
            cpu.rdx = r(2);
            cpu.rsi = r(3);
            cpu.rdi = r(4);
            cpu.rbp = r(5);
            cpu.rax = r(6);
            cpu.ds = selector(r(7));
            cpu.es = selector(r(8));
            cpu.fs = selector(r(9));
            cpu.gs = selector(r(10));
            cpu.rip = r(12);
            cpu.cs = selector(r(13));
            cpu.rflags = r(14);
            cpu.rsp = r(15);
            cpu.ss = selector(r(16));
        }
    }
    cpu.has_gp = true;
}

/// Attributes in the Hyper-V layout from QEMU's segment flags (the descriptor's high dword).
fn qemu_attributes(flags: u32) -> u16 {
    (((flags >> 8) & 0xFF) | (((flags >> 20) & 0xF) << 12)) as u16
}

/// A `QEMUCPUSegment` at `off`.
fn qemu_segment(f: &Fields<'_>, off: usize) -> SegmentRegister {
    SegmentRegister {
        selector: f.d(off) as u16,
        limit: f.d(off + 4),
        attributes: qemu_attributes(f.d(off + 8)),
        base: f.q(off + 16),
    }
}

/// Everything a `QEMUCPUState` holds; EFER is left to the caller.
fn from_qemu_state(cpu: &mut CpuState, desc: &[u8], size: usize) {
    let f = Fields(desc);
    cpu.rax = f.q(8);
    cpu.rbx = f.q(16);
    cpu.rcx = f.q(24);
    cpu.rdx = f.q(32);
    cpu.rsi = f.q(40);
    cpu.rdi = f.q(48);
    cpu.rsp = f.q(56);
    cpu.rbp = f.q(64);
    cpu.r8 = f.q(72);
    cpu.r9 = f.q(80);
    cpu.r10 = f.q(88);
    cpu.r11 = f.q(96);
    cpu.r12 = f.q(104);
    cpu.r13 = f.q(112);
    cpu.r14 = f.q(120);
    cpu.r15 = f.q(128);
    cpu.rip = f.q(136);
    cpu.rflags = f.q(144);
    cpu.cs = qemu_segment(&f, 152);
    cpu.ds = qemu_segment(&f, 176);
    cpu.es = qemu_segment(&f, 200);
    cpu.fs = qemu_segment(&f, 224);
    cpu.gs = qemu_segment(&f, 248);
    cpu.ss = qemu_segment(&f, 272);
    cpu.ldtr = qemu_segment(&f, 296);
    cpu.tr = qemu_segment(&f, 320);
    cpu.gdtr = DescriptorTable {
        limit: f.d(344 + 4) as u16,
        base: f.q(344 + 16),
    };
    cpu.idtr = DescriptorTable {
        limit: f.d(368 + 4) as u16,
        base: f.q(368 + 16),
    };
    cpu.cr0 = f.q(392);
    cpu.cr2 = f.q(408);
    cpu.cr3 = f.q(416);
    cpu.cr4 = f.q(424);
    cpu.msrs = (size >= QEMU_STATE_GSBASE).then(|| Msrs {
        kernel_gs_base: f.q(432),
        ..Msrs::default()
    });
    cpu.cpl = cpl(cpu);
    cpu.has_gp = true;
    cpu.has_control = true;
    cpu.has_segments = true;
}

/// The CPL: SS.DPL in protected mode, 3 in virtual-8086 mode, 0 in real mode.
fn cpl(cpu: &CpuState) -> u8 {
    if cpu.cr0 & CR0_PE == 0 {
        0
    } else if cpu.rflags & RFLAGS_VM != 0 {
        3
    } else {
        ((cpu.ss.attributes >> 5) & 3) as u8
    }
}

fn qemu(ctx: &FileCtx, notes: &[Note<'_>]) -> Result<Processors> {
    let mut out = Vec::new();
    let prstatus: Vec<&Note<'_>> = notes
        .iter()
        .filter(|n| n.is(b"CORE", NT_PRSTATUS))
        .collect();
    let states: Vec<&Note<'_>> = notes.iter().filter(|n| n.is(b"QEMU", NT_QEMU)).collect();

    let mut layout = None;
    for note in &prstatus {
        let this = prstatus_layout(ctx, note)?;
        if layout.is_some_and(|l| l != this) {
            return Err(ctx.corrupt(
                "NT_PRSTATUS note",
                note.offset,
                "x86-64 and i386 NT_PRSTATUS notes in one file",
            ));
        }
        layout = Some(this);
    }
    // QEMU writes the x86-64 layout only when the first processor is in long mode.
    let long_mode_core = layout == Some(PrstatusLayout::X64);

    let mut usable_states = Vec::new();
    for note in &states {
        let f = Fields(note.desc);
        if note.desc.len() < 8 {
            return Err(ctx.corrupt(
                "QEMU note",
                note.offset,
                format!(
                    "descriptor of {} bytes is too short for a QEMUCPUState",
                    note.desc.len()
                ),
            ));
        }
        let (version, size) = (f.d(0), f.d(4) as usize);
        if version != 1 {
            out.push(format!(
                "QEMUCPUState version {version} is not one this reader knows (1): control and segment registers not read"
            ));
            usable_states.clear();
            break;
        }
        if size < QEMU_STATE_MIN || size > note.desc.len() {
            return Err(ctx.corrupt(
                "QEMU note",
                note.offset,
                format!(
                    "QEMUCPUState says {size} bytes, its descriptor holds {} (at least {QEMU_STATE_MIN} needed)",
                    note.desc.len()
                ),
            ));
        }
        usable_states.push((*note, size));
    }

    let count = prstatus.len().max(usable_states.len());
    if !prstatus.is_empty() && !usable_states.is_empty() && prstatus.len() != usable_states.len() {
        out.push(format!(
            "{} NT_PRSTATUS notes but {} QEMU notes: matched by order",
            prstatus.len(),
            usable_states.len()
        ));
    }
    let mut cpus = Vec::with_capacity(count);
    let mut derived = false;
    let mut without_state = 0usize;
    for i in 0..count {
        let mut cpu = CpuState {
            index: i as u32,
            ..CpuState::default()
        };
        if let (Some(note), Some(layout)) = (prstatus.get(i), layout) {
            from_prstatus(&mut cpu, note.desc, layout);
        }
        match usable_states.get(i) {
            Some((note, size)) => {
                from_qemu_state(&mut cpu, note.desc, *size);
                let paging = cpu.cr0 & CR0_PG != 0 && cpu.cr4 & CR4_PAE != 0;
                let long = paging && (long_mode_core || cpu.cs.attributes & ATTR_L != 0);
                cpu.efer = if long { EFER_LONG_NX } else { 0 };
                derived = true;
            }
            None => {
                without_state += 1;
                if long_mode_core {
                    cpu.efer = EFER_LONG_NX;
                }
            }
        }
        cpus.push(cpu);
    }
    if derived {
        out.push(
            "EFER is not in QEMU's notes: long mode derived from CS.L, CR0.PG and CR4.PAE (or the x86-64 NT_PRSTATUS notes QEMU writes when the first processor is in long mode), with NXE set since 64-bit Windows requires NX"
                .to_string(),
        );
    }
    if without_state > 0 {
        out.push(format!(
            "{without_state} of {count} processors have no QEMU note (only NT_PRSTATUS): general registers and selectors only, control registers unknown{}",
            if long_mode_core {
                "; long mode assumed from the x86-64 NT_PRSTATUS layout"
            } else {
                ""
            }
        ));
    }
    Ok(Processors {
        cpus,
        notes: out,
        producer: Producer::Qemu,
    })
}

fn virtualbox(ctx: &FileCtx, descriptor: &Note<'_>, notes: &[Note<'_>]) -> Result<Processors> {
    let f = Fields(descriptor.desc);
    if descriptor.desc.len() < VBOX_DESCRIPTOR_SIZE {
        return Err(ctx.corrupt(
            "VBCORE note",
            descriptor.offset,
            format!(
                "descriptor of {} bytes is too short for a DBGFCOREDESCRIPTOR ({VBOX_DESCRIPTOR_SIZE})",
                descriptor.desc.len()
            ),
        ));
    }
    let magic = f.d(0);
    if magic != DBGFCORE_MAGIC {
        return Err(ctx.corrupt(
            "VBCORE note",
            descriptor.offset,
            format!("magic {magic:#x}, expected {DBGFCORE_MAGIC:#x}"),
        ));
    }
    let version = f.d(4);
    let declared = f.d(20) as usize;
    let cpu_notes: Vec<&Note<'_>> = notes
        .iter()
        .filter(|n| n.is(b"VBCPU", NT_VBOXCPU))
        .collect();
    let mut out = Vec::new();
    if !matches!(version, 0x0001_0004 | 0x0001_0005) {
        out.push(format!(
            "VirtualBox core format {version:#010x} is not one this reader knows (0x00010004, 0x00010005): processor state not read"
        ));
        return Ok(Processors {
            cpus: Vec::new(),
            notes: out,
            producer: Producer::VirtualBox,
        });
    }
    if declared != cpu_notes.len() {
        out.push(format!(
            "the VirtualBox core descriptor counts {declared} processors, {} VBCPU notes found",
            cpu_notes.len()
        ));
    }
    let mut cpus = Vec::with_capacity(cpu_notes.len());
    for (i, note) in cpu_notes.iter().enumerate() {
        if note.desc.len() < VBOX_CPU_MIN {
            return Err(ctx.corrupt(
                "VBCPU note",
                note.offset,
                format!(
                    "descriptor of {} bytes is too short for a DBGFCORECPU (at least {VBOX_CPU_MIN})",
                    note.desc.len()
                ),
            ));
        }
        let mut cpu = vbox_cpu(note.desc);
        cpu.index = i as u32;
        if version == 0x0001_0005 {
            cpu.fp = vbox_fxsave(note.desc);
        }
        cpus.push(cpu);
    }
    Ok(Processors {
        cpus,
        notes: out,
        producer: Producer::VirtualBox,
    })
}

/// A `DBGFCORESEL` at `off`.
fn vbox_segment(f: &Fields<'_>, off: usize) -> SegmentRegister {
    SegmentRegister {
        base: f.q(off),
        limit: f.d(off + 8),
        // VT-x layout: the same as Hyper-V's once the limit's high bits (8..11) and the
        // unusable bit (16) are dropped.
        attributes: (f.d(off + 12) & 0xF0FF) as u16,
        selector: f.w(off + 16),
    }
}

/// The registers of a `DBGFCORECPU` at least [`VBOX_CPU_MIN`] bytes long.
fn vbox_cpu(desc: &[u8]) -> CpuState {
    let f = Fields(desc);
    let mut cpu = CpuState {
        rax: f.q(0),
        rbx: f.q(8),
        rcx: f.q(16),
        rdx: f.q(24),
        rsi: f.q(32),
        rdi: f.q(40),
        r8: f.q(48),
        r9: f.q(56),
        r10: f.q(64),
        r11: f.q(72),
        r12: f.q(80),
        r13: f.q(88),
        r14: f.q(96),
        r15: f.q(104),
        rip: f.q(112),
        rsp: f.q(120),
        rbp: f.q(128),
        rflags: f.q(136),
        cs: vbox_segment(&f, 144),
        ds: vbox_segment(&f, 168),
        es: vbox_segment(&f, 192),
        fs: vbox_segment(&f, 216),
        gs: vbox_segment(&f, 240),
        ss: vbox_segment(&f, 264),
        cr0: f.q(288),
        cr2: f.q(296),
        cr3: f.q(304),
        cr4: f.q(312),
        dr0: f.q(320),
        dr1: f.q(328),
        dr2: f.q(336),
        dr3: f.q(344),
        dr6: f.q(368),
        dr7: f.q(376),
        gdtr: DescriptorTable {
            base: f.q(384),
            limit: f.d(392) as u16,
        },
        idtr: DescriptorTable {
            base: f.q(400),
            limit: f.d(408) as u16,
        },
        ldtr: vbox_segment(&f, 416),
        tr: vbox_segment(&f, 440),
        efer: f.q(488),
        msrs: Some(Msrs {
            tsc: 0,
            star: f.q(496),
            lstar: f.q(512),
            cstar: f.q(520),
            sfmask: f.q(528),
            kernel_gs_base: f.q(536),
            apic_base: f.q(544),
        }),
        has_gp: true,
        has_control: true,
        has_segments: true,
        ..CpuState::default()
    };
    cpu.cpl = cpl(&cpu);
    cpu
}

/// The x87/SSE state of a format 0x00010005 `DBGFCORECPU`, when its XSAVE area holds at
/// least the FXSAVE image.
fn vbox_fxsave(desc: &[u8]) -> Option<FpState> {
    let cb_ext = le::u32(desc, VBOX_CPU_MIN)? as usize;
    let area = desc.get(VBOX_CPU_EXT..VBOX_CPU_EXT.checked_add(512)?)?;
    if cb_ext < 512 {
        return None;
    }
    let f = Fields(area);
    let mut fp = FpState {
        fcw: f.w(0),
        fsw: f.w(2),
        ftw: le::u8(area, 4)?,
        fop: f.w(6),
        fip: f.q(8),
        fdp: f.q(16),
        mxcsr: f.d(24),
        mxcsr_mask: f.d(28),
        ..FpState::default()
    };
    for (i, st) in fp.st.iter_mut().enumerate() {
        *st = le::u128(area, 32 + 16 * i)?;
    }
    for (i, xmm) in fp.xmm.iter_mut().enumerate() {
        *xmm = le::u128(area, 160 + 16 * i)?;
    }
    Some(fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_flags_become_hyperv_attributes() {
        // 64-bit code: type 0xB, S, DPL 0, P, L, G; base bits in 0..7 and 24..31 ignored.
        assert_eq!(qemu_attributes(0xFFAF_9BFF), 0xA09B);
        // 32-bit flat data, DPL 3: type 3, S, DPL 3, P, D/B, G.
        assert_eq!(qemu_attributes(0x00CF_F300), 0xC0F3);
        assert_eq!(qemu_attributes(0), 0);
    }

    #[test]
    fn trailing_zero_padding_is_not_a_note() {
        let ctx = FileCtx::new(std::path::Path::new("t"));
        assert!(parse(&ctx, 0, &[0; 11]).unwrap().is_empty());
        assert!(parse(&ctx, 0, &[0, 0, 1]).is_err());
    }
}
