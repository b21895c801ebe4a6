//! Synthetic Windows-like guests for the kernel-discovery tests: page tables (x64 4- or
//! 5-level, PAE), a kernel PE image with the right export name, sections, exports, CodeView
//! record and version resource, a `KDBG` block stored plain or encoded the way Windows 8+
//! encodes it, the code shapes that load the keys, KPCR/KPRCB for each vCPU, IDTs, the System
//! process, `KUSER_SHARED_DATA` and a loaded-module list. Every clue can be left out.

#![allow(dead_code)]

use std::collections::HashMap;

use vm2dmp::guest::kdbg::KdbgKeys;
use vm2dmp_synth::{SparsePages, SynthRange, SynthVm, SynthVp};

pub const MIB_PAGES: u64 = 256;

/// How the KDBG is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdbgForm {
    Encoded,
    Plain,
    Absent,
}

/// Which clues the guest has.
#[derive(Debug, Clone)]
pub struct Clues {
    pub x86_pae: bool,
    pub five_level: bool,
    /// Map the kernel image with one large page.
    pub large_pages: bool,
    pub cpus: u32,
    /// vCPU IDTRs point at the IDT.
    pub idt: bool,
    /// GS base (x64) / FS base (x86) point at each KPCR.
    pub kpcr: bool,
    /// x86: KPCR.KdVersionBlock is set.
    pub kd_version_block: bool,
    /// Export-directory name of the kernel image.
    pub export_name: String,
    pub kdbg: KdbgForm,
    /// `KdCopyDataBlock`-shaped code in .text.
    pub kdcopy_code: bool,
    /// `KeSetTimerEx` export loading the keys.
    pub timer_code: bool,
    /// The boot vCPU's CR3 maps no kernel space (user-mode KVA-shadow table).
    pub boot_cr3_user: bool,
    /// No vCPU's CR3 maps kernel space (forces a scan of RAM).
    pub all_cr3_user: bool,
    /// `NtBuildNumber` export present.
    pub nt_build_number: bool,
}

impl Clues {
    pub fn x64() -> Self {
        Clues {
            x86_pae: false,
            five_level: false,
            large_pages: false,
            cpus: 3,
            idt: true,
            kpcr: true,
            kd_version_block: false,
            export_name: "ntkrnlmp.exe".into(),
            kdbg: KdbgForm::Encoded,
            kdcopy_code: true,
            timer_code: true,
            boot_cr3_user: false,
            all_cr3_user: false,
            nt_build_number: true,
        }
    }
    pub fn x86_pae() -> Self {
        Clues {
            x86_pae: true,
            kd_version_block: true,
            export_name: "ntkrnlpa.exe".into(),
            kdbg: KdbgForm::Plain,
            kdcopy_code: false,
            timer_code: false,
            ..Clues::x64()
        }
    }
}

/// Addresses and values a test checks against.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub root: u64,
    pub system_dtb: u64,
    pub user_root: u64,
    pub kernel_base: u64,
    pub image_size: u32,
    pub kdbg_va: u64,
    pub kdbg_size: u32,
    pub kdbg_plain: Vec<u8>,
    pub keys: Option<KdbgKeys>,
    pub flag_va: u64,
    pub ps_loaded_module_list: u64,
    pub ps_active_process_head: u64,
    pub mm_pfn_database_value: u64,
    pub ki_processor_block: u64,
    pub prcbs: Vec<u64>,
    /// VA of the CONTEXT each KPRCB.Context points to.
    pub context_ptrs: Vec<u64>,
    pub build: u32,
    pub pdb_guid: [u8; 16],
    pub pdb_age: u32,
    /// Synthetic symbol RVAs of the image.
    pub symbols: HashMap<&'static str, u32>,
}

// KDBG u16 offset fields as this guest lays out its KPRCB.
pub const PRCB_SPECIAL_REGS: u16 = 0x40;
pub const PRCB_CONTEXT_FRAME: u16 = 0x100;
pub const PRCB_CONTEXT_PTR: u16 = 0x800;
pub const EPROCESS_DTB_X64: u16 = 0x28;
pub const EPROCESS_DTB_X86: u16 = 0x18;
pub const KDBG_SIZE: u32 = 0x360;

/// Builds page tables and memory in a [`SparsePages`].
pub struct Builder {
    pub pages: SparsePages,
    pub pae: bool,
    pub five: bool,
    pub root: u64,
    next_table: u64,
    next_data: u64,
    next_va: u64,
    /// va page -> pa page, for `write_virt`.
    map: HashMap<u64, u64>,
}

const PT_FLAGS: u64 = 0x63; // present, writable, accessed, dirty

impl Builder {
    pub fn new(pae: bool, five: bool) -> Self {
        let mut b = Builder {
            pages: SparsePages::new(),
            pae,
            five,
            root: 0,
            next_table: 0x10_0000,
            next_data: 0x80_0000,
            next_va: if pae {
                0x8F00_0000
            } else {
                0xFFFF_F806_1C00_0000
            },
            map: HashMap::new(),
        };
        if pae {
            // The PDPT is 32-byte aligned, not page aligned; all four PDs exist.
            let page = b.table();
            b.root = page + 0x20;
            let pds: Vec<u64> = (0..4).map(|_| b.table()).collect();
            for (i, pd) in pds.iter().enumerate() {
                b.put64(b.root + i as u64 * 8, pd | 1);
            }
            // Self-map: PD3[0..4] = PD0..PD3.
            for (i, pd) in pds.iter().enumerate() {
                b.put64(pds[3] + i as u64 * 8, pd | PT_FLAGS);
            }
        } else {
            b.root = b.table();
            // Self-map entry in the kernel half.
            b.put64(b.root + 0x1ED * 8, b.root | PT_FLAGS);
        }
        b
    }

    fn table(&mut self) -> u64 {
        let p = self.next_table;
        self.next_table += 0x1000;
        self.pages.set_page(p >> 12, [0u8; 4096]);
        p
    }

    pub fn data_page(&mut self) -> u64 {
        let p = self.next_data;
        self.next_data += 0x1000;
        self.pages.set_page(p >> 12, [0u8; 4096]);
        p
    }

    pub fn put64(&mut self, pa: u64, v: u64) {
        self.pages.write(pa, &v.to_le_bytes());
    }

    fn get64(&self, pa: u64) -> u64 {
        let page = self.pages.pages.get(&(pa >> 12));
        page.map_or(0, |p| {
            let o = (pa & 0xFFF) as usize;
            u64::from_le_bytes(p[o..o + 8].try_into().unwrap())
        })
    }

    /// The table one level down from entry `index` of `table`, created if absent.
    fn next(&mut self, table: u64, index: u64) -> u64 {
        let e = self.get64(table + index * 8);
        if e & 1 != 0 {
            return e & 0x000F_FFFF_FFFF_F000;
        }
        let t = self.table();
        self.put64(table + index * 8, t | PT_FLAGS);
        t
    }

    /// Maps the 4 KiB page at `va` to `pa`.
    pub fn map4k(&mut self, va: u64, pa: u64) {
        let leaf = if self.pae {
            let pd = self.get64(self.root + ((va >> 30) & 3) * 8) & 0x000F_FFFF_FFFF_F000;
            self.next(pd, (va >> 21) & 0x1FF)
        } else {
            let mut t = self.root;
            if self.five {
                t = self.next(t, (va >> 48) & 0x1FF);
            }
            let t = self.next(t, (va >> 39) & 0x1FF);
            let t = self.next(t, (va >> 30) & 0x1FF);
            self.next(t, (va >> 21) & 0x1FF)
        };
        self.put64(leaf + ((va >> 12) & 0x1FF) * 8, pa | PT_FLAGS);
        self.map.insert(va >> 12, pa >> 12);
    }

    /// Maps 2 MiB at `va` (2 MiB aligned) to `pa` with one large page.
    pub fn map2m(&mut self, va: u64, pa: u64) {
        let pd = if self.pae {
            self.get64(self.root + ((va >> 30) & 3) * 8) & 0x000F_FFFF_FFFF_F000
        } else {
            let mut t = self.root;
            if self.five {
                t = self.next(t, (va >> 48) & 0x1FF);
            }
            let t = self.next(t, (va >> 39) & 0x1FF);
            self.next(t, (va >> 30) & 0x1FF)
        };
        self.put64(pd + ((va >> 21) & 0x1FF) * 8, pa | PT_FLAGS | 0x80);
        for i in 0..512 {
            self.map.insert((va >> 12) + i, (pa >> 12) + i);
            self.pages
                .pages
                .entry((pa >> 12) + i)
                .or_insert_with(|| Box::new([0u8; 4096]));
        }
    }

    /// Allocates `len` bytes of fresh kernel memory (whole pages) and returns its VA.
    pub fn alloc(&mut self, len: usize) -> u64 {
        let va = self.next_va;
        let n = len.div_ceil(4096).max(1) as u64;
        for i in 0..n {
            let pa = self.data_page();
            self.map4k(va + i * 4096, pa);
        }
        self.next_va += (n + 1) * 4096; // leave a gap
        va
    }

    pub fn write_virt(&mut self, va: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let a = va + done as u64;
            let n = (4096 - (a & 0xFFF) as usize).min(data.len() - done);
            let pa = self.map[&(a >> 12)] << 12 | (a & 0xFFF);
            self.pages.write(pa, &data[done..done + n]);
            done += n;
        }
    }

    pub fn ptr(&mut self, va: u64, v: u64) {
        if self.pae {
            self.write_virt(va, &(v as u32).to_le_bytes());
        } else {
            self.write_virt(va, &v.to_le_bytes());
        }
    }

    pub fn va_to_pa(&self, va: u64) -> Option<u64> {
        self.map.get(&(va >> 12)).map(|p| p << 12 | (va & 0xFFF))
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}
fn p16(b: &mut [u8], at: usize, v: u16) {
    put(b, at, &v.to_le_bytes())
}
fn p32(b: &mut [u8], at: usize, v: u32) {
    put(b, at, &v.to_le_bytes())
}
fn p64(b: &mut [u8], at: usize, v: u64) {
    put(b, at, &v.to_le_bytes())
}

// Image layout (RVAs).
const TEXT: u32 = 0x1000;
const DATA: u32 = 0x4000;
const RSRC: u32 = 0x8000;
const RDATA: u32 = 0x9000;
const IMAGE_SIZE: u32 = 0xA000;
const RVA_KDBG: u32 = 0x4000;
const RVA_FLAG: u32 = 0x4400;
const RVA_NEVER: u32 = 0x4408;
const RVA_ALWAYS: u32 = 0x4410;
const RVA_BUILD: u32 = 0x4418;
const RVA_LOADED: u32 = 0x4420;
const RVA_ACTIVE: u32 = 0x4430;
const RVA_PFNDB: u32 = 0x4440;
const RVA_SYSPROC: u32 = 0x4448;
const RVA_BUGCHECK: u32 = 0x4450;
const RVA_NPROCS: u32 = 0x4480;
const RVA_KPB: u32 = 0x4500;
const RVA_DATALIST: u32 = 0x4800;
const RVA_KDVERSION: u32 = 0x4900;
const RVA_KDCOPY: u32 = 0x1400;
const RVA_SETTIMER: u32 = 0x1600;

pub const BUILD: u32 = 19041;
pub const NEVER: u64 = 0x4C1D_93A2_F07E_6B55;
pub const ALWAYS: u64 = 0xA3B1_7E20_5D9C_C418;
pub const PDB_GUID: [u8; 16] = [
    0xB9, 0xDB, 0x44, 0x38, 0x17, 0x20, 0x67, 0x49, 0xBE, 0x7A, 0xA4, 0xA2, 0xC2, 0x04, 0x30, 0xFA,
];

/// A PE image of a kernel (headers, .text, .data, .rsrc, .rdata with exports and CodeView).
fn kernel_image(c: &Clues, base: u64) -> Vec<u8> {
    let pe64 = !c.x86_pae;
    let mut img = vec![0u8; IMAGE_SIZE as usize];
    put(&mut img, 0, b"MZ");
    p32(&mut img, 0x3C, 0x100);
    put(&mut img, 0x100, b"PE\0\0");
    let fh = 0x104;
    p16(&mut img, fh, if pe64 { 0x8664 } else { 0x14C });
    p16(&mut img, fh + 2, 4);
    p32(&mut img, fh + 4, 0x5F3C_1A2B);
    let opt_size: u16 = if pe64 { 240 } else { 224 };
    p16(&mut img, fh + 16, opt_size);
    let opt = fh + 20;
    p16(&mut img, opt, if pe64 { 0x20B } else { 0x10B });
    if pe64 {
        p64(&mut img, opt + 24, base);
    } else {
        p32(&mut img, opt + 28, base as u32);
    }
    p16(&mut img, opt + 40, 10); // OS version 10.0
    p32(&mut img, opt + 56, IMAGE_SIZE);
    let (nd, dirs) = if pe64 {
        (opt + 108, opt + 112)
    } else {
        (opt + 92, opt + 96)
    };
    p32(&mut img, nd, 16);
    // Export, resource, debug directories.
    p32(&mut img, dirs, RDATA);
    p32(&mut img, dirs + 4, 0x400);
    p32(&mut img, dirs + 16, RSRC);
    p32(&mut img, dirs + 20, 0x100);
    p32(&mut img, dirs + 48, RDATA + 0x800);
    p32(&mut img, dirs + 52, 28);
    let sec = opt + opt_size as usize;
    let sections: [(&[u8], u32, u32, u32); 4] = [
        (b".text", TEXT, 0x3000, 0x6000_0020),
        (b".data", DATA, 0x4000, 0xC000_0040),
        (b".rsrc", RSRC, 0x1000, 0x4000_0040),
        (b".rdata", RDATA, 0x1000, 0x4000_0040),
    ];
    for (i, (name, rva, size, ch)) in sections.iter().enumerate() {
        let s = sec + i * 40;
        put(&mut img, s, name);
        p32(&mut img, s + 8, *size);
        p32(&mut img, s + 12, *rva);
        p32(&mut img, s + 16, *size);
        p32(&mut img, s + 20, *rva);
        p32(&mut img, s + 36, *ch);
    }
    // Interrupt handlers: `iretq` stubs at .text + 16 * vector.
    for v in 0..0x30 {
        img[(TEXT + v * 16) as usize] = 0x48;
        img[(TEXT + v * 16 + 1) as usize] = 0xCF;
    }
    // Exports, sorted by name.
    let mut exports: Vec<(&str, u32)> = vec![
        ("KeNumberProcessors", RVA_NPROCS),
        ("PsInitialSystemProcess", RVA_SYSPROC),
        ("PsLoadedModuleList", RVA_LOADED),
    ];
    if c.nt_build_number {
        exports.push(("NtBuildNumber", RVA_BUILD));
    }
    if c.timer_code {
        exports.push(("KeSetTimerEx", RVA_SETTIMER));
    }
    exports.sort();
    let ed = RDATA as usize;
    let names_at = RDATA + 0x100;
    let funcs_at = RDATA + 0x80;
    let ords_at = RDATA + 0xC0;
    let mut str_at = RDATA + 0x200;
    let name_rva = str_at;
    put(&mut img, str_at as usize, c.export_name.as_bytes());
    str_at += c.export_name.len() as u32 + 1;
    p32(&mut img, ed + 12, name_rva);
    p32(&mut img, ed + 16, 1);
    p32(&mut img, ed + 20, exports.len() as u32);
    p32(&mut img, ed + 24, exports.len() as u32);
    p32(&mut img, ed + 28, funcs_at);
    p32(&mut img, ed + 32, names_at);
    p32(&mut img, ed + 36, ords_at);
    for (i, (name, rva)) in exports.iter().enumerate() {
        p32(&mut img, (funcs_at + i as u32 * 4) as usize, *rva);
        p16(&mut img, (ords_at + i as u32 * 2) as usize, i as u16);
        p32(&mut img, (names_at + i as u32 * 4) as usize, str_at);
        put(&mut img, str_at as usize, name.as_bytes());
        str_at += name.len() as u32 + 1;
    }
    // Debug directory -> RSDS record.
    let dd = (RDATA + 0x800) as usize;
    p32(&mut img, dd + 12, 2);
    let cv = RDATA + 0x840;
    let pdb_name = if pe64 { "ntkrnlmp.pdb" } else { "ntkrpamp.pdb" };
    p32(&mut img, dd + 16, 24 + pdb_name.len() as u32 + 1);
    p32(&mut img, dd + 20, cv);
    put(&mut img, cv as usize, b"RSDS");
    put(&mut img, cv as usize + 4, &PDB_GUID);
    p32(&mut img, cv as usize + 20, 1);
    put(&mut img, cv as usize + 24, pdb_name.as_bytes());
    // Version resource: type 16 -> id 1 -> language 0x409 -> data.
    let r = RSRC as usize;
    p16(&mut img, r + 14, 1);
    p32(&mut img, r + 16, 16);
    p32(&mut img, r + 20, 0x8000_0018);
    p16(&mut img, r + 0x18 + 14, 1);
    p32(&mut img, r + 0x18 + 16, 1);
    p32(&mut img, r + 0x18 + 20, 0x8000_0030);
    p16(&mut img, r + 0x30 + 14, 1);
    p32(&mut img, r + 0x30 + 16, 0x409);
    p32(&mut img, r + 0x30 + 20, 0x48);
    p32(&mut img, r + 0x48, RSRC + 0x60);
    p32(&mut img, r + 0x48 + 4, 0x5C);
    let v = r + 0x60;
    p16(&mut img, v, 0x5C);
    p16(&mut img, v + 2, 0x34);
    for (i, ch) in "VS_VERSION_INFO".encode_utf16().enumerate() {
        p16(&mut img, v + 6 + i * 2, ch);
    }
    p32(&mut img, v + 40, 0xFEEF_04BD);
    p32(&mut img, v + 44, 0x1_0000);
    p32(&mut img, v + 48, 10 << 16);
    p32(&mut img, v + 52, (BUILD << 16) | 1);
    img
}

/// RIP-relative displacement from the instruction ending at `next_rva` to `target_rva`.
fn rel(next_rva: u32, target_rva: u32) -> [u8; 4] {
    (target_rva as i32 - next_rva as i32).to_le_bytes()
}

/// Appends `prefix` + a RIP-relative disp32 to `target` (+ `suffix`), for code at `base`.
fn rip(code: &mut Vec<u8>, base: u32, prefix: &[u8], target: u32, suffix: &[u8]) {
    let next = base + (code.len() + prefix.len() + 4 + suffix.len()) as u32;
    code.extend_from_slice(prefix);
    code.extend_from_slice(&rel(next, target));
    code.extend_from_slice(suffix);
}

fn add_code(img: &mut [u8], c: &Clues) {
    if c.kdcopy_code {
        let b = RVA_KDCOPY;
        let mut code = Vec::new();
        rip(&mut code, b, &[0x80, 0x3D], RVA_FLAG, &[0x00]); // cmp byte [KdpDataBlockEncoded], 0
        code.extend_from_slice(&[0x4C, 0x8B, 0xC1]); // mov r8, rcx
        code.extend_from_slice(&[0x74, 0x30]); // je
        rip(&mut code, b, &[0x4C, 0x8B, 0x1D], RVA_NEVER, &[]); // mov r11, [KiWaitNever]
        rip(&mut code, b, &[0x4C, 0x8D, 0x0D], RVA_KDBG, &[]); // lea r9, [KdDebuggerDataBlock]
        rip(&mut code, b, &[0x4C, 0x8B, 0x15], RVA_ALWAYS, &[]); // mov r10, [KiWaitAlways]
        rip(&mut code, b, &[0x48, 0x8D, 0x15], RVA_FLAG, &[]); // lea rdx, [KdpDataBlockEncoded]
        code.push(0xC3);
        img[b as usize..b as usize + code.len()].copy_from_slice(&code);
    }
    if c.timer_code {
        // As in the kernel's timer code: KiWaitAlways is loaded first, then KiWaitNever.
        let b = RVA_SETTIMER;
        let mut code = Vec::new();
        rip(&mut code, b, &[0x48, 0x8B, 0x35], RVA_ALWAYS, &[]); // mov rsi, [KiWaitAlways]
        code.extend_from_slice(&[0x48, 0x33, 0x74, 0x24, 0x58]); // xor rsi, [rsp+58h]
        code.extend_from_slice(&[0x48, 0x0F, 0xCE]); // bswap rsi
        rip(&mut code, b, &[0x48, 0x8B, 0x05], RVA_NEVER, &[]); // mov rax, [KiWaitNever]
        code.push(0xC3);
        img[b as usize..b as usize + code.len()].copy_from_slice(&code);
    }
}

/// A guest with the given clues: the synthetic VM and what a test should find.
pub fn build(c: &Clues) -> (SynthVm, Truth) {
    let pae = c.x86_pae;
    let mut b = Builder::new(pae, c.five_level);
    let mut t = Truth {
        root: b.root,
        build: BUILD,
        pdb_guid: PDB_GUID,
        pdb_age: 1,
        ..Truth::default()
    };
    let base: u64 = if pae {
        0x82A0_0000
    } else {
        0xFFFF_F806_1A20_0000
    };
    t.kernel_base = base;
    t.image_size = IMAGE_SIZE;
    let ps = if pae { 4u64 } else { 8 };
    let sx = |v: u64| -> u64 {
        if pae {
            v as u32 as i32 as i64 as u64
        } else {
            v
        }
    };

    // Kernel image at physical 4 MiB.
    let image_pa = 0x40_0000u64;
    if c.large_pages {
        b.map2m(base, image_pa);
    } else {
        for i in 0..u64::from(IMAGE_SIZE / 4096) {
            b.map4k(base + i * 4096, image_pa + i * 4096);
        }
    }
    let mut img = kernel_image(c, base);
    add_code(&mut img, c);
    b.pages.write(image_pa, &img);
    let va = |rva: u32| base + u64::from(rva);
    for (n, r) in [
        ("KdDebuggerDataBlock", RVA_KDBG),
        ("KdpDataBlockEncoded", RVA_FLAG),
        ("KiWaitNever", RVA_NEVER),
        ("KiWaitAlways", RVA_ALWAYS),
        ("NtBuildNumber", RVA_BUILD),
        ("PsLoadedModuleList", RVA_LOADED),
        ("PsActiveProcessHead", RVA_ACTIVE),
        ("MmPfnDatabase", RVA_PFNDB),
        ("PsInitialSystemProcess", RVA_SYSPROC),
        ("KiProcessorBlock", RVA_KPB),
        ("KeNumberProcessors", RVA_NPROCS),
    ] {
        t.symbols.insert(n, r);
    }

    // Globals.
    if c.nt_build_number {
        b.write_virt(va(RVA_BUILD), &(0xF000_0000u32 | BUILD).to_le_bytes());
    }
    b.write_virt(va(RVA_NPROCS), &c.cpus.to_le_bytes());
    t.ps_active_process_head = va(RVA_ACTIVE);
    b.ptr(va(RVA_ACTIVE), va(RVA_ACTIVE));
    b.ptr(va(RVA_ACTIVE) + ps, va(RVA_ACTIVE));
    t.mm_pfn_database_value = if pae {
        0x8400_0000
    } else {
        0xFFFF_FA80_0000_0000
    };
    b.ptr(va(RVA_PFNDB), t.mm_pfn_database_value);
    t.ki_processor_block = va(RVA_KPB);

    // Loaded-module list with one entry for the kernel.
    t.ps_loaded_module_list = va(RVA_LOADED);
    let ldr = b.alloc(0x200);
    let name: Vec<u8> = "\\SystemRoot\\system32\\ntoskrnl.exe"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let name_va = ldr + 0x100;
    b.write_virt(name_va, &name);
    b.ptr(va(RVA_LOADED), ldr);
    b.ptr(va(RVA_LOADED) + ps, ldr);
    b.ptr(ldr, va(RVA_LOADED));
    b.ptr(ldr + ps, va(RVA_LOADED));
    if pae {
        b.ptr(ldr + 0x18, base);
        b.write_virt(ldr + 0x20, &IMAGE_SIZE.to_le_bytes());
        b.write_virt(ldr + 0x24, &(name.len() as u16).to_le_bytes());
        b.write_virt(ldr + 0x26, &(name.len() as u16).to_le_bytes());
        b.ptr(ldr + 0x28, name_va);
    } else {
        b.ptr(ldr + 0x30, base);
        b.write_virt(ldr + 0x40, &IMAGE_SIZE.to_le_bytes());
        b.write_virt(ldr + 0x48, &(name.len() as u16).to_le_bytes());
        b.write_virt(ldr + 0x4A, &(name.len() as u16).to_le_bytes());
        b.ptr(ldr + 0x50, name_va);
    }

    // System process.
    let eproc = b.alloc(0x800);
    let dtb_off = if pae {
        EPROCESS_DTB_X86
    } else {
        EPROCESS_DTB_X64
    };
    t.system_dtb = b.root;
    b.ptr(eproc + u64::from(dtb_off), b.root);
    b.ptr(va(RVA_SYSPROC), eproc);

    // KUSER_SHARED_DATA.
    let sud = if pae {
        0xFFDF_0000
    } else {
        0xFFFF_F780_0000_0000
    };
    let sud_pa = b.data_page();
    b.map4k(sud, sud_pa);
    b.write_virt(sud + 0x08, &0x0000_0001_2345_6789u64.to_le_bytes());
    b.write_virt(sud + 0x14, &0x01DA_0000_1111_2222u64.to_le_bytes());
    b.write_virt(sud + 0x264, &1u32.to_le_bytes());
    b.write_virt(sud + 0x2D0, &0x110u32.to_le_bytes());

    // IDT shared by all CPUs.
    let idt = b.alloc(0x1000);
    for v in 0..0x30u64 {
        let h = va(TEXT) + v * 16;
        if pae {
            let mut g = [0u8; 8];
            p16(&mut g, 0, h as u16);
            p16(&mut g, 2, 0x08);
            g[5] = 0x8E;
            p16(&mut g, 6, (h >> 16) as u16);
            b.write_virt(idt + v * 8, &g);
        } else {
            let mut g = [0u8; 16];
            p16(&mut g, 0, h as u16);
            p16(&mut g, 2, 0x10);
            g[5] = 0x8E;
            p16(&mut g, 6, (h >> 16) as u16);
            p32(&mut g, 8, (h >> 32) as u32);
            b.write_virt(idt + v * 16, &g);
        }
    }

    // KPCR / KPRCB per CPU.
    let mut kpcrs = Vec::new();
    let kdversion = va(RVA_KDVERSION);
    for i in 0..c.cpus {
        let kpcr = b.alloc(0x3000);
        let prcb = kpcr + if pae { 0x120 } else { 0x180 };
        if pae {
            b.ptr(kpcr + 0x1C, kpcr);
            b.ptr(kpcr + 0x20, prcb);
            if c.kd_version_block {
                b.ptr(kpcr + 0x34, kdversion);
            }
            b.ptr(kpcr + 0x38, idt);
        } else {
            b.ptr(kpcr + 0x18, kpcr);
            b.ptr(kpcr + 0x20, prcb);
            b.ptr(kpcr + 0x38, idt);
        }
        let ctx = prcb + 0x1000;
        b.ptr(prcb + u64::from(PRCB_CONTEXT_PTR), ctx);
        b.ptr(va(RVA_KPB) + u64::from(i) * ps, prcb);
        t.prcbs.push(prcb);
        t.context_ptrs.push(ctx);
        kpcrs.push(kpcr);
    }

    // KdVersionBlock (x86) and the debugger data list.
    b.write_virt(kdversion, &0x000Fu16.to_le_bytes());
    b.write_virt(kdversion + 2, &(BUILD as u16).to_le_bytes());
    b.write_virt(kdversion + 0x10, &sx(base).to_le_bytes());
    b.write_virt(kdversion + 0x18, &sx(va(RVA_LOADED)).to_le_bytes());
    b.write_virt(kdversion + 0x20, &sx(va(RVA_DATALIST)).to_le_bytes());
    b.ptr(va(RVA_DATALIST), va(RVA_KDBG));
    b.ptr(va(RVA_DATALIST) + ps, va(RVA_KDBG));

    // KdDebuggerDataBlock.
    let mut k = vec![0u8; KDBG_SIZE as usize];
    p64(&mut k, 0, sx(va(RVA_DATALIST)));
    p64(&mut k, 8, sx(va(RVA_DATALIST)));
    put(&mut k, 0x10, b"KDBG");
    p32(&mut k, 0x14, KDBG_SIZE);
    p64(&mut k, 0x18, sx(base));
    p64(&mut k, 0x48, sx(va(RVA_LOADED)));
    p64(&mut k, 0x50, sx(va(RVA_ACTIVE)));
    p64(&mut k, 0x88, sx(va(RVA_BUGCHECK)));
    p64(&mut k, 0xC0, sx(va(RVA_PFNDB)));
    p64(&mut k, 0x218, sx(va(RVA_KPB)));
    p16(&mut k, 0x2AE, dtb_off);
    p16(&mut k, 0x2BC, PRCB_CONTEXT_FRAME);
    p16(&mut k, 0x2F2, PRCB_SPECIAL_REGS);
    p16(&mut k, 0x338, PRCB_CONTEXT_PTR);
    t.kdbg_plain = k.clone();
    t.kdbg_size = KDBG_SIZE;
    t.flag_va = va(RVA_FLAG);
    match c.kdbg {
        KdbgForm::Absent => {}
        KdbgForm::Plain => {
            t.kdbg_va = va(RVA_KDBG);
            b.write_virt(va(RVA_KDBG), &k);
        }
        KdbgForm::Encoded => {
            let keys = KdbgKeys {
                ki_wait_never: NEVER,
                ki_wait_always: ALWAYS,
                kdp_data_block_encoded: va(RVA_FLAG),
            };
            keys.encode_block(&mut k);
            t.keys = Some(keys);
            t.kdbg_va = va(RVA_KDBG);
            b.write_virt(va(RVA_KDBG), &k);
            b.write_virt(va(RVA_FLAG), &[1]);
        }
    }
    b.write_virt(va(RVA_NEVER), &NEVER.to_le_bytes());
    b.write_virt(va(RVA_ALWAYS), &ALWAYS.to_le_bytes());

    // A user-mode (KVA-shadow-like) table: user space and KUSER_SHARED_DATA only.
    let user_root = b.table();
    let user_root = if pae { user_root + 0x40 } else { user_root };
    t.user_root = user_root;
    if pae {
        let pd = b.table();
        b.put64(user_root, pd | 1);
    } else {
        let pdpt = b.table();
        b.put64(user_root, pdpt | PT_FLAGS);
    }

    // vCPUs.
    let vps: Vec<SynthVp> = (0..c.cpus)
        .map(|i| {
            let kernel_cr3 = b.root;
            let cr3 = if c.all_cr3_user || (i == 0 && c.boot_cr3_user) {
                user_root
            } else {
                kernel_cr3
            };
            let mut vp = if pae {
                SynthVp::x86_pae(
                    i,
                    cr3,
                    (va(TEXT) + 0x200 + u64::from(i)) as u32,
                    0x8F80_0000 - i * 0x1000,
                )
            } else {
                SynthVp::x64_long_mode(
                    i,
                    cr3,
                    va(TEXT) + 0x200 + u64::from(i),
                    0xFFFF_F806_1F00_0000 - u64::from(i) * 0x1000,
                )
            };
            if c.five_level {
                vp.vtl0.control.cr4 |= 1 << 12;
            }
            let s = &mut vp.vtl0;
            s.gp.rax = 0xA000 + u64::from(i);
            s.gp.rbx = 0xB000 + u64::from(i);
            s.gp.r15 = 0xF000 + u64::from(i);
            s.control.cr2 = 0xC2C2_0000 + u64::from(i);
            s.debug.dr0 = 0xD000 + u64::from(i);
            s.tables.idtr.base = if c.idt { idt } else { 0 };
            s.tables.idtr.limit = if pae { 0x7FF } else { 0xFFF };
            if c.kpcr {
                if pae {
                    s.segments.fs.base = kpcrs[i as usize];
                } else {
                    s.segments.gs.base = kpcrs[i as usize];
                }
            } else if pae {
                s.segments.fs.base = 0;
            }
            vp
        })
        .collect();

    let vm = SynthVm::new(vec![SynthRange {
        gpa_page_start: 0,
        page_count: 16 * MIB_PAGES,
    }])
    .with_pages(b.pages)
    .with_vps(vps);
    (vm, t)
}

/// Writes a minimal PDB naming `symbols` in the test kernel's sections.
pub fn write_pdb(
    path: &std::path::Path,
    guid: [u8; 16],
    age: u32,
    symbols: &HashMap<&'static str, u32>,
) {
    let sections: [(&[u8], u32, u32); 4] = [
        (b".text", TEXT, 0x3000),
        (b".data", DATA, 0x4000),
        (b".rsrc", RSRC, 0x1000),
        (b".rdata", RDATA, 0x1000),
    ];
    let symbols: Vec<(&str, u32)> = symbols.iter().map(|(n, v)| (*n, *v)).collect();
    std::fs::write(
        path,
        vm2dmp_synth::pdb::pdb_bytes(guid, age, &sections, &symbols),
    )
    .unwrap();
}
