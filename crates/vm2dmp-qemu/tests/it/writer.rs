//! Writes small ELF core files the way QEMU's `dump-guest-memory` and VirtualBox's
//! `dumpvmcore` lay them out, so tests describe their inputs in code.

use std::path::Path;

use vm2dmp_qemu::elf::ElfCore;
use vm2dmp_source::{InputFile, Result, PAGE_SIZE};

pub const EM_386: u16 = 3;
pub const EM_X86_64: u16 = 62;

/// One PT_LOAD: `data` is what the file stores (`p_filesz`), `memsz` what it spans.
#[derive(Clone)]
pub struct Seg {
    pub paddr: u64,
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
}

impl Seg {
    /// `pages` pages at `paddr`, every page filled with [`page_pattern`], all stored.
    pub fn pages(paddr: u64, pages: u64) -> Self {
        Self::partial(paddr, pages, pages)
    }

    /// `pages` pages at `paddr`, of which the first `stored` are in the file.
    pub fn partial(paddr: u64, stored: u64, pages: u64) -> Self {
        let data = (0..stored)
            .flat_map(|i| page_pattern(paddr / 4096 + i))
            .collect();
        Self {
            paddr,
            vaddr: 0,
            data,
            memsz: pages * 4096,
        }
    }
}

/// The bytes the writer stores for guest page `pfn`: its address, then a pattern.
pub fn page_pattern(pfn: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    page[..8].copy_from_slice(&(pfn << 12).to_le_bytes());
    for (i, b) in page.iter_mut().enumerate().skip(8) {
        *b = (pfn as u8).wrapping_mul(31) ^ (i as u8) | 1;
    }
    page
}

/// One note: name (as stored, with or without NUL), type, descriptor.
#[derive(Clone)]
pub struct NoteRec {
    pub name: Vec<u8>,
    pub kind: u32,
    pub desc: Vec<u8>,
}

impl NoteRec {
    pub fn new(name: &[u8], kind: u32, desc: Vec<u8>) -> Self {
        Self {
            name: name.to_vec(),
            kind,
            desc,
        }
    }
}

/// A whole core file.
#[derive(Clone)]
pub struct Core {
    pub elf64: bool,
    pub machine: u16,
    pub segments: Vec<Seg>,
    pub notes: Vec<NoteRec>,
    /// Write e_phnum as PN_XNUM and the count in section header 0.
    pub xnum: bool,
}

/// Where things landed in the file [`Core::build`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub phoff: u64,
    pub phentsize: u64,
    /// File offset of each note's header.
    pub note_offsets: Vec<u64>,
    pub notes_offset: u64,
    /// File offset of each segment's data.
    pub data_offsets: Vec<u64>,
    pub shoff: u64,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A note block: header, name padded to 4, descriptor padded to 4.
pub fn note_block(notes: &[NoteRec]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for n in notes {
        offsets.push(out.len() as u64);
        out.extend_from_slice(&(n.name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(n.desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&n.kind.to_le_bytes());
        out.extend_from_slice(&n.name);
        out.resize(align4(out.len()), 0);
        out.extend_from_slice(&n.desc);
        out.resize(align4(out.len()), 0);
    }
    (out, offsets)
}

impl Core {
    pub fn new(elf64: bool, machine: u16) -> Self {
        Self {
            elf64,
            machine,
            segments: Vec::new(),
            notes: Vec::new(),
            xnum: false,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with_layout().0
    }

    pub fn build_with_layout(&self) -> (Vec<u8>, Layout) {
        let (ehsize, phentsize, shentsize) = if self.elf64 {
            (64u64, 56u64, 64u64)
        } else {
            (52, 32, 40)
        };
        let phnum = 1 + self.segments.len() as u64;
        let shoff = if self.xnum { ehsize } else { 0 };
        let phoff = ehsize + if self.xnum { shentsize } else { 0 };
        let notes_offset = phoff + phnum * phentsize;
        let (block, rel) = note_block(&self.notes);
        // Segment data after the notes, at an offset that is not page-aligned (as QEMU's).
        let mut pos = notes_offset + block.len() as u64;
        let mut data_offsets = Vec::new();
        for s in &self.segments {
            data_offsets.push(pos);
            pos += s.data.len() as u64;
        }

        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF");
        f.push(if self.elf64 { 2 } else { 1 });
        f.push(1); // little-endian
        f.push(1); // EV_CURRENT
        f.resize(16, 0);
        put16(&mut f, 4); // ET_CORE
        put16(&mut f, self.machine);
        put32(&mut f, 1);
        let phnum_field = if self.xnum { 0xFFFF } else { phnum as u16 };
        if self.elf64 {
            put64(&mut f, 0);
            put64(&mut f, phoff);
            put64(&mut f, shoff);
        } else {
            put32(&mut f, 0);
            put32(&mut f, phoff as u32);
            put32(&mut f, shoff as u32);
        }
        put32(&mut f, 0); // e_flags
        put16(&mut f, 8); // e_ehsize, wrong as QEMU 7.2 writes it
        put16(&mut f, phentsize as u16);
        put16(&mut f, phnum_field);
        put16(&mut f, shentsize as u16);
        put16(&mut f, u16::from(self.xnum));
        put16(&mut f, 0);
        assert_eq!(f.len() as u64, ehsize);
        if self.xnum {
            let start = f.len();
            f.resize(start + shentsize as usize, 0);
            let info_at = start + if self.elf64 { 44 } else { 28 };
            f[info_at..info_at + 4].copy_from_slice(&(phnum as u32).to_le_bytes());
        }
        assert_eq!(f.len() as u64, phoff);
        self.phdr(
            &mut f,
            4,
            notes_offset,
            0,
            0,
            block.len() as u64,
            block.len() as u64,
        );
        for (s, &off) in self.segments.iter().zip(&data_offsets) {
            self.phdr(
                &mut f,
                1,
                off,
                s.vaddr,
                s.paddr,
                s.data.len() as u64,
                s.memsz,
            );
        }
        assert_eq!(f.len() as u64, notes_offset);
        f.extend_from_slice(&block);
        for s in &self.segments {
            f.extend_from_slice(&s.data);
        }
        let layout = Layout {
            phoff,
            phentsize,
            note_offsets: rel.iter().map(|r| r + notes_offset).collect(),
            notes_offset,
            data_offsets,
            shoff,
        };
        (f, layout)
    }

    #[allow(clippy::too_many_arguments)]
    fn phdr(
        &self,
        f: &mut Vec<u8>,
        kind: u32,
        offset: u64,
        vaddr: u64,
        paddr: u64,
        filesz: u64,
        memsz: u64,
    ) {
        if self.elf64 {
            put32(f, kind);
            put32(f, 4); // PF_R
            put64(f, offset);
            put64(f, vaddr);
            put64(f, paddr);
            put64(f, filesz);
            put64(f, memsz);
            put64(f, 0);
        } else {
            put32(f, kind);
            put32(f, offset as u32);
            put32(f, vaddr as u32);
            put32(f, paddr as u32);
            put32(f, filesz as u32);
            put32(f, memsz as u32);
            put32(f, 4);
            put32(f, 0);
        }
    }
}

pub fn put16(f: &mut Vec<u8>, v: u16) {
    f.extend_from_slice(&v.to_le_bytes());
}
pub fn put32(f: &mut Vec<u8>, v: u32) {
    f.extend_from_slice(&v.to_le_bytes());
}
pub fn put64(f: &mut Vec<u8>, v: u64) {
    f.extend_from_slice(&v.to_le_bytes());
}

/// Opens `bytes` as an ELF core named `core.elf`.
pub fn open(bytes: Vec<u8>) -> Result<ElfCore> {
    ElfCore::from_input(InputFile::from_bytes(Path::new("core.elf"), bytes))
}

/// A QEMU segment (`QEMUCPUSegment`): flags are the descriptor's high dword.
#[derive(Clone, Copy, Default)]
pub struct QSeg {
    pub selector: u32,
    pub limit: u32,
    pub flags: u32,
    pub base: u64,
}

/// What a `QEMUCPUState` holds.
#[derive(Clone, Copy, Default)]
pub struct QemuCpu {
    /// rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags.
    pub regs: [u64; 18],
    /// cs ds es fs gs ss ldt tr gdt idt.
    pub segs: [QSeg; 10],
    pub cr: [u64; 5],
    pub kernel_gs_base: Option<u64>,
}

impl QemuCpu {
    /// The note descriptor, as QEMU writes it (size 440 with kernel_gs_base, else 432).
    pub fn desc(&self) -> Vec<u8> {
        let size = if self.kernel_gs_base.is_some() {
            440
        } else {
            432
        };
        let mut d = Vec::new();
        put32(&mut d, 1);
        put32(&mut d, size);
        for r in self.regs {
            put64(&mut d, r);
        }
        for s in self.segs {
            put32(&mut d, s.selector);
            put32(&mut d, s.limit);
            put32(&mut d, s.flags);
            put32(&mut d, 0);
            put64(&mut d, s.base);
        }
        for c in self.cr {
            put64(&mut d, c);
        }
        if let Some(k) = self.kernel_gs_base {
            put64(&mut d, k);
        }
        assert_eq!(d.len(), size as usize);
        d
    }

    pub fn note(&self) -> NoteRec {
        NoteRec::new(b"QEMU\0", 0, self.desc())
    }
}

/// An x86-64 `elf_prstatus` (336 bytes) with `pr_reg` = `regs` (r15 r14 r13 r12 rbp rbx r11
/// r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs).
pub fn prstatus64(pid: u32, regs: [u64; 27]) -> NoteRec {
    let mut d = vec![0u8; 336];
    d[32..36].copy_from_slice(&pid.to_le_bytes());
    for (i, r) in regs.iter().enumerate() {
        d[112 + 8 * i..120 + 8 * i].copy_from_slice(&r.to_le_bytes());
    }
    NoteRec::new(b"CORE\0", 1, d)
}

/// An i386 `elf_prstatus` (144 bytes) with `pr_reg` = `regs` (ebx ecx edx esi edi ebp eax ds
/// es fs gs orig_eax eip cs eflags esp ss).
pub fn prstatus32(pid: u32, regs: [u32; 17]) -> NoteRec {
    let mut d = vec![0u8; 144];
    d[24..28].copy_from_slice(&pid.to_le_bytes());
    for (i, r) in regs.iter().enumerate() {
        d[72 + 4 * i..76 + 4 * i].copy_from_slice(&r.to_le_bytes());
    }
    NoteRec::new(b"CORE\0", 1, d)
}

/// VirtualBox's `DBGFCOREDESCRIPTOR` note (name without NUL in `n_namesz`, padded to 8).
pub fn vbcore(version: u32, cpus: u32) -> NoteRec {
    let mut d = Vec::new();
    put32(&mut d, 0xc01a_c0de);
    put32(&mut d, version);
    put32(&mut d, 24);
    put32(&mut d, 0x0700_0000);
    put32(&mut d, 12345);
    put32(&mut d, cpus);
    vbox_note(b"VBCORE", 0xb00, d)
}

/// A VirtualBox note: `n_namesz` without the NUL, name padded to 8 bytes.
pub fn vbox_note(name: &[u8], kind: u32, desc: Vec<u8>) -> NoteRec {
    // The name field as stored is 8 bytes; n_namesz excludes the NUL. The note_block writer
    // pads names to 4, so store the name unpadded and let its n_namesz be the bare length:
    // 5 ("VBCPU") and 6 ("VBCORE") both round up to 8, as VirtualBox writes them.
    NoteRec {
        name: name.to_vec(),
        kind,
        desc,
    }
}

/// A VirtualBox segment (`DBGFCORESEL`).
#[derive(Clone, Copy, Default)]
pub struct VSeg {
    pub base: u64,
    pub limit: u32,
    pub attr: u32,
    pub sel: u16,
}

/// What a `DBGFCORECPU` (format 0x00010005) holds, for tests.
#[derive(Clone, Default)]
pub struct VboxCpu {
    /// rax rbx rcx rdx rsi rdi r8..r15 rip rsp rbp rflags.
    pub regs: [u64; 18],
    /// cs ds es fs gs ss.
    pub segs: [VSeg; 6],
    /// cr0 cr2 cr3 cr4.
    pub cr: [u64; 4],
    pub dr: [u64; 8],
    pub gdtr: (u64, u32),
    pub idtr: (u64, u32),
    pub ldtr: VSeg,
    pub tr: VSeg,
    /// EFER STAR PAT LSTAR CSTAR SFMASK KernelGSBase ApicBase.
    pub msrs: [u64; 8],
    /// The FXSAVE image (first 512 bytes of the XSAVE area), when any.
    pub fxsave: Option<[u8; 512]>,
}

impl VboxCpu {
    pub fn note(&self) -> NoteRec {
        let mut d = Vec::new();
        for r in self.regs {
            put64(&mut d, r);
        }
        let seg = |d: &mut Vec<u8>, s: &VSeg| {
            put64(d, s.base);
            put32(d, s.limit);
            put32(d, s.attr);
            put16(d, s.sel);
            put16(d, 0);
            put32(d, 0);
        };
        for s in &self.segs {
            seg(&mut d, s);
        }
        for c in self.cr {
            put64(&mut d, c);
        }
        for r in self.dr {
            put64(&mut d, r);
        }
        for (base, limit) in [self.gdtr, self.idtr] {
            put64(&mut d, base);
            put32(&mut d, limit);
            put32(&mut d, 0);
        }
        seg(&mut d, &self.ldtr);
        seg(&mut d, &self.tr);
        d.extend_from_slice(&[0u8; 24]); // SYSENTER
        for m in self.msrs {
            put64(&mut d, m);
        }
        d.extend_from_slice(&[0u8; 16]); // xcr0, xcr1
        assert_eq!(d.len(), 568);
        put32(&mut d, if self.fxsave.is_some() { 512 + 64 } else { 0 });
        put32(&mut d, 0);
        let mut ext = vec![0u8; 8192];
        if let Some(fx) = self.fxsave {
            ext[..512].copy_from_slice(&fx);
        }
        d.extend_from_slice(&ext);
        vbox_note(b"VBCPU", 0xb01, d)
    }
}
