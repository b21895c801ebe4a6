//! The synthetic VM: guest-physical ranges, page contents, virtual processors and
//! the knobs that decide how the files are written.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::encode::BlockEncoding;
use crate::options::{LegacyOptions, VmrsOptions};

/// Bytes in a guest page.
pub const PAGE_SIZE: u64 = 4096;

/// Number of 4 KiB pages in one RAM block (1 MiB).
pub const PAGES_PER_BLOCK: u64 = 256;

/// Default `/savedstate/VmwpVersion` of a [`SynthVm`] (the real sample's).
pub(crate) const VMWP_VERSION: &str = "10.0.18301.1044 (WinBuild.160101.0800)";

/// One guest-physical RAM range: pages `[gpa_page_start, gpa_page_start + page_count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthRange {
    /// First guest-physical page number (GPA / 4096).
    pub gpa_page_start: u64,
    /// Number of 4 KiB pages.
    pub page_count: u64,
}

impl SynthRange {
    /// A range given in bytes; both values must be multiples of 4096.
    pub fn from_bytes(gpa: u64, len: u64) -> Self {
        assert!(
            gpa % PAGE_SIZE == 0 && len % PAGE_SIZE == 0,
            "range not page aligned"
        );
        Self {
            gpa_page_start: gpa / PAGE_SIZE,
            page_count: len / PAGE_SIZE,
        }
    }

    /// One past the last page.
    pub fn gpa_page_end(&self) -> u64 {
        self.gpa_page_start + self.page_count
    }
}

/// Where a range lands in "raw saved memory" (the concatenation of the RAM blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacedRange {
    /// The guest-physical range.
    pub range: SynthRange,
    /// `mbp_index_start` of the memory-block metadata: first raw page of the range.
    pub mbp_index_start: u64,
    /// First RAM block of the range (`mbp_index_start / 256`).
    pub first_block: u64,
    /// Number of RAM blocks the range occupies (the last one may be padded with zeros).
    pub block_count: u64,
}

/// Supplies the contents of guest pages. Called once for every page that is written,
/// possibly from several threads at once.
pub trait PageSource: Send + Sync {
    /// Fill `buf` with the contents of guest-physical page `gpa_page`.
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]);
}

impl<F> PageSource for F
where
    F: Fn(u64, &mut [u8; 4096]) + Send + Sync,
{
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        self(gpa_page, buf)
    }
}

/// Every page is zero.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroPages;

impl PageSource for ZeroPages {
    fn read_page(&self, _gpa_page: u64, buf: &mut [u8; 4096]) {
        buf.fill(0);
    }
}

/// A flat image of guest-physical memory starting at GPA 0; pages beyond its end read as zero.
#[derive(Debug, Clone, Default)]
pub struct FlatImage {
    /// Guest-physical bytes from GPA 0.
    pub bytes: Vec<u8>,
}

impl FlatImage {
    /// An image of `bytes` (any length; a partial last page is zero-filled).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }
}

impl PageSource for FlatImage {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        buf.fill(0);
        let start = gpa_page.saturating_mul(PAGE_SIZE);
        if start < self.bytes.len() as u64 {
            let start = start as usize;
            let end = (start + 4096).min(self.bytes.len());
            buf[..end - start].copy_from_slice(&self.bytes[start..end]);
        }
    }
}

/// A few explicit pages (by guest page number); every other page is zero.
#[derive(Clone, Default)]
pub struct SparsePages {
    /// Page contents by guest-physical page number (GPA / 4096).
    pub pages: BTreeMap<u64, Box<[u8; 4096]>>,
}

impl std::fmt::Debug for SparsePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparsePages")
            .field("pages", &self.pages.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SparsePages {
    /// No explicit pages: every page reads as zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the whole page `gpa_page`.
    pub fn set_page(&mut self, gpa_page: u64, data: [u8; 4096]) -> &mut Self {
        self.pages.insert(gpa_page, Box::new(data));
        self
    }

    /// Write `data` at guest-physical address `gpa` (may cross pages).
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> &mut Self {
        let mut done = 0usize;
        while done < data.len() {
            let addr = gpa + done as u64;
            let page = addr / PAGE_SIZE;
            let off = (addr % PAGE_SIZE) as usize;
            let n = (4096 - off).min(data.len() - done);
            let p = self
                .pages
                .entry(page)
                .or_insert_with(|| Box::new([0u8; 4096]));
            p[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self
    }

    /// Fill page `gpa_page` with an 8-byte pattern repeated.
    pub fn fill_pattern(&mut self, gpa_page: u64, pattern: u64) -> &mut Self {
        let mut p = [0u8; 4096];
        for c in p.chunks_exact_mut(8) {
            c.copy_from_slice(&pattern.to_le_bytes());
        }
        self.set_page(gpa_page, p)
    }
}

impl PageSource for SparsePages {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        match self.pages.get(&gpa_page) {
            Some(p) => buf.copy_from_slice(&p[..]),
            None => buf.fill(0),
        }
    }
}

/// Deterministic pseudo-random page contents mixing zero pages, pattern pages,
/// compressible text-like pages and incompressible noise (useful for benchmarks).
#[derive(Debug, Clone, Copy)]
pub struct MixedContent {
    /// Seed of the generator; the same seed gives the same contents for every page.
    pub seed: u64,
}

impl MixedContent {
    fn mix(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

impl PageSource for MixedContent {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        let h = Self::mix(gpa_page ^ self.seed.rotate_left(17));
        match h % 8 {
            0..=3 => buf.fill(0),
            4 => {
                let pat = Self::mix(h) | 1;
                for c in buf.chunks_exact_mut(8) {
                    c.copy_from_slice(&pat.to_le_bytes());
                }
            }
            5 | 6 => {
                // Compressible: repeated words with a page-specific header.
                let words: [&[u8]; 6] = [
                    b"nt!KiSystemStartup ",
                    b"PAGE_SIZE ",
                    b"0123456789abcdef",
                    b"\0\0\0\0\xff\xff",
                    b"MmPfnDatabase ",
                    b"KDBG",
                ];
                let mut s = h;
                let mut i = 0;
                while i < 4096 {
                    s = Self::mix(s);
                    let w = words[(s % 6) as usize];
                    let n = w.len().min(4096 - i);
                    buf[i..i + n].copy_from_slice(&w[..n]);
                    i += n;
                }
                buf[..8].copy_from_slice(&gpa_page.to_le_bytes());
            }
            _ => {
                let mut s = h;
                for c in buf.chunks_exact_mut(8) {
                    s = Self::mix(s.wrapping_add(0x9e37_79b9_7f4a_7c15));
                    c.copy_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
}

/// Processor vendor as stored in the PROLOG chunk and `/savedVM/processor/vendor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// AMD, code 0.
    Amd,
    /// Intel, code 1.
    Intel,
    /// Hygon, code 2.
    Hygon,
    /// ARM64, code 0x10.
    Arm64,
    /// Any other value (for error tests).
    Other(u32),
}

impl Vendor {
    /// The stored vendor code.
    pub fn code(self) -> u32 {
        match self {
            Vendor::Amd => 0,
            Vendor::Intel => 1,
            Vendor::Hygon => 2,
            Vendor::Arm64 => 0x10,
            Vendor::Other(v) => v,
        }
    }
}

/// General-purpose registers in partition_state order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpRegs {
    /// RAX (chunk offset 0x00).
    pub rax: u64,
    /// RCX (0x08).
    pub rcx: u64,
    /// RDX (0x10).
    pub rdx: u64,
    /// RBX (0x18).
    pub rbx: u64,
    /// RSP (0x20).
    pub rsp: u64,
    /// RBP (0x28).
    pub rbp: u64,
    /// RSI (0x30).
    pub rsi: u64,
    /// RDI (0x38).
    pub rdi: u64,
    /// R8 (0x40).
    pub r8: u64,
    /// R9 (0x48).
    pub r9: u64,
    /// R10 (0x50).
    pub r10: u64,
    /// R11 (0x58).
    pub r11: u64,
    /// R12 (0x60).
    pub r12: u64,
    /// R13 (0x68).
    pub r13: u64,
    /// R14 (0x70).
    pub r14: u64,
    /// R15 (0x78).
    pub r15: u64,
    /// RIP (0x80).
    pub rip: u64,
    /// RFLAGS (0x88).
    pub rflags: u64,
}

impl GpRegs {
    /// The 18 values in stored order.
    pub fn to_array(&self) -> [u64; 18] {
        [
            self.rax,
            self.rcx,
            self.rdx,
            self.rbx,
            self.rsp,
            self.rbp,
            self.rsi,
            self.rdi,
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.rip,
            self.rflags,
        ]
    }
}

/// Control registers in stored order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlRegs {
    /// CR0 (chunk offset 0x00; bits in [`cr0`]).
    pub cr0: u64,
    /// CR2 (0x08).
    pub cr2: u64,
    /// CR3 (0x10): the page-table root.
    pub cr3: u64,
    /// CR4 (0x18; bits in [`cr4`]).
    pub cr4: u64,
    /// CR8 (0x20).
    pub cr8: u64,
    /// EFER (0x28; bits in [`efer`]).
    pub efer: u64,
}

/// Debug registers in stored order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugRegs {
    /// DR0 (chunk offset 0x00).
    pub dr0: u64,
    /// DR1 (0x08).
    pub dr1: u64,
    /// DR2 (0x10).
    pub dr2: u64,
    /// DR3 (0x18).
    pub dr3: u64,
    /// DR6 (0x20).
    pub dr6: u64,
    /// DR7 (0x28).
    pub dr7: u64,
}

impl Default for DebugRegs {
    /// Architectural reset values (DR6 0xFFFF0FF0, DR7 0x400).
    fn default() -> Self {
        Self {
            dr0: 0,
            dr1: 0,
            dr2: 0,
            dr3: 0,
            dr6: 0xFFFF_0FF0,
            dr7: 0x400,
        }
    }
}

/// One segment register as stored: u64 base, u32 limit, u16 selector, u16 attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Base address (offset 0).
    pub base: u64,
    /// Limit (offset 8).
    pub limit: u32,
    /// Selector (offset 12).
    pub selector: u16,
    /// Attributes in the Hyper-V layout (offset 14): type, S, DPL, P in bits 0..8; AVL, L,
    /// D/B, G in bits 12..16.
    pub attributes: u16,
}

impl Segment {
    /// A segment with these four values.
    pub const fn new(base: u64, limit: u32, selector: u16, attributes: u16) -> Self {
        Self {
            base,
            limit,
            selector,
            attributes,
        }
    }
}

/// Segment registers in stored order (es, cs, ss, ds, fs, gs, ldtr, tr), then CPL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentRegs {
    /// ES (chunk offset 0x00).
    pub es: Segment,
    /// CS (0x10).
    pub cs: Segment,
    /// SS (0x20).
    pub ss: Segment,
    /// DS (0x30).
    pub ds: Segment,
    /// FS (0x40).
    pub fs: Segment,
    /// GS (0x50).
    pub gs: Segment,
    /// LDTR (0x60).
    pub ldtr: Segment,
    /// TR (0x70).
    pub tr: Segment,
    /// Current privilege level (0x80, one byte followed by 15 zero bytes).
    pub cpl: u8,
}

/// IDTR or GDTR: stored as 3 x u16 padding, u16 limit, u64 base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableReg {
    /// Limit (offset 6).
    pub limit: u16,
    /// Base address (offset 8).
    pub base: u64,
}

/// Table registers in stored order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableRegs {
    /// IDTR (chunk offset 0x00).
    pub idtr: TableReg,
    /// GDTR (0x10).
    pub gdtr: TableReg,
}

/// The FP/XMM chunk (0x1A0 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FpRegs {
    /// xmm0..xmm15, 16 bytes each (chunk offset 0x000).
    pub xmm: [u128; 16],
    /// st0..st7 / mm0..mm7, 16 bytes each (80-bit value + padding; offset 0x100).
    pub st: [u128; 8],
    /// x87 control word (offset 0x180).
    pub fcw: u16,
    /// x87 status word (0x182).
    pub fsw: u16,
    /// Abridged x87 tag word, one bit per register as in FXSAVE (0x184; a zero byte follows).
    pub ftw: u8,
    /// Last x87 opcode (0x186).
    pub fop: u16,
    /// Last x87 instruction pointer (0x188).
    pub fp_ip: u64,
    /// Last x87 data pointer (0x190).
    pub fp_dp: u64,
    /// MXCSR (0x198).
    pub mxcsr: u32,
    /// MXCSR mask (0x19C).
    pub mxcsr_mask: u32,
}

impl Default for FpRegs {
    /// Zero registers, FCW 0x037F, MXCSR 0x1F80, MXCSR mask 0xFFFF (the sample's VP 0).
    fn default() -> Self {
        Self {
            xmm: [0; 16],
            st: [0; 8],
            fcw: 0x037F,
            fsw: 0,
            ftw: 0,
            fop: 0,
            fp_ip: 0,
            fp_dp: 0,
            mxcsr: 0x1F80,
            mxcsr_mask: 0xFFFF,
        }
    }
}

/// Indices into [`VpState::virtual_msrs`].
pub mod vmsr {
    /// Time-stamp counter.
    pub const TSC: usize = 0;
    /// IA32_KERNEL_GS_BASE.
    pub const KERNEL_GS_BASE: usize = 1;
    /// IA32_APIC_BASE.
    pub const APIC_BASE: usize = 2;
    /// IA32_STAR.
    pub const STAR: usize = 7;
    /// IA32_LSTAR.
    pub const LSTAR: usize = 8;
    /// IA32_CSTAR.
    pub const CSTAR: usize = 9;
    /// IA32_FMASK.
    pub const SFMASK: usize = 10;
}

/// One register set (one VTL of one VP), exactly the fields partition_state stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VpState {
    /// General-purpose registers (GP chunk).
    pub gp: GpRegs,
    /// Control registers and EFER (control chunk).
    pub control: ControlRegs,
    /// Debug registers (debug chunk).
    pub debug: DebugRegs,
    /// Segment registers and CPL (segment chunk).
    pub segments: SegmentRegs,
    /// IDTR and GDTR (table chunk).
    pub tables: TableRegs,
    /// x87 and SSE state (FP chunk).
    pub fp: FpRegs,
    /// 12 x u64 (see [`vmsr`] for the known slots).
    pub virtual_msrs: [u64; 12],
}

/// CR0 bits.
pub mod cr0 {
    /// Protection enable.
    pub const PE: u64 = 1 << 0;
    /// Monitor coprocessor.
    pub const MP: u64 = 1 << 1;
    /// Extension type.
    pub const ET: u64 = 1 << 4;
    /// Numeric error.
    pub const NE: u64 = 1 << 5;
    /// Write protect.
    pub const WP: u64 = 1 << 16;
    /// Alignment mask.
    pub const AM: u64 = 1 << 18;
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
    /// Paging.
    pub const PG: u64 = 1 << 31;
}

/// CR4 bits.
pub mod cr4 {
    /// Page size extensions.
    pub const PSE: u64 = 1 << 4;
    /// Physical address extension.
    pub const PAE: u64 = 1 << 5;
    /// Global pages.
    pub const PGE: u64 = 1 << 7;
    /// FXSAVE/FXRSTOR support.
    pub const OSFXSR: u64 = 1 << 9;
    /// Unmasked SIMD exceptions.
    pub const OSXMMEXCPT: u64 = 1 << 10;
}

/// EFER bits.
pub mod efer {
    /// SYSCALL enable.
    pub const SCE: u64 = 1 << 0;
    /// Long mode enable.
    pub const LME: u64 = 1 << 8;
    /// Long mode active.
    pub const LMA: u64 = 1 << 10;
    /// No-execute enable.
    pub const NXE: u64 = 1 << 11;
}

/// A virtual processor: index, VTL-0 registers and an optional VTL-1 set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthVp {
    /// VP index, written in the VP chunk and the VP_INDICES bitmap.
    pub index: u32,
    /// VTL-0 registers.
    pub vtl0: VpState,
    /// When set, a VP_VTL chunk and a second register set are emitted.
    pub vtl1: Option<VpState>,
}

fn apic_base(index: u32) -> u64 {
    if index == 0 {
        0xFEE0_0900
    } else {
        0xFEE0_0800
    }
}

impl SynthVp {
    /// 64-bit long mode (as a running x64 Windows kernel): CR0 PG|WP|NE|ET|MP|PE,
    /// CR4 PAE|PSE|PGE|OSFXSR|OSXMMEXCPT, EFER SCE|LME|LMA|NXE, 64-bit CS.
    pub fn x64_long_mode(index: u32, cr3: u64, rip: u64, rsp: u64) -> Self {
        let data = Segment::new(0, 0xFFFF_FFFF, 0x2B, 0xC0F3);
        let mut s = VpState {
            gp: GpRegs {
                rip,
                rsp,
                rflags: 0x202,
                ..Default::default()
            },
            control: ControlRegs {
                cr0: cr0::PG | cr0::WP | cr0::NE | cr0::ET | cr0::MP | cr0::PE,
                cr2: 0,
                cr3,
                cr4: cr4::PAE | cr4::PSE | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT,
                cr8: 0,
                efer: efer::SCE | efer::LME | efer::LMA | efer::NXE,
            },
            segments: SegmentRegs {
                es: data,
                cs: Segment::new(0, 0, 0x10, 0x209B),
                ss: Segment::new(0, 0, 0x18, 0x4093),
                ds: data,
                fs: Segment::new(0, 0x3C00, 0x53, 0x40F3),
                gs: data,
                ldtr: Segment::default(),
                tr: Segment::new(0, 0x67, 0x40, 0x008B),
                cpl: 0,
            },
            tables: TableRegs {
                idtr: TableReg {
                    limit: 0xFFF,
                    base: 0,
                },
                gdtr: TableReg {
                    limit: 0x57,
                    base: 0,
                },
            },
            ..Default::default()
        };
        s.fp.fcw = 0x027F;
        s.virtual_msrs[vmsr::APIC_BASE] = apic_base(index);
        s.virtual_msrs[vmsr::STAR] = 0x0023_0010_0000_0000;
        s.virtual_msrs[vmsr::SFMASK] = 0x4700;
        s.virtual_msrs[11] = index as u64;
        Self {
            index,
            vtl0: s,
            vtl1: None,
        }
    }

    /// 32-bit protected mode with PAE paging: CR0 PG|WP|NE|ET|PE, CR4 PAE|PSE|PGE|OSFXSR, EFER NXE.
    pub fn x86_pae(index: u32, cr3: u64, eip: u32, esp: u32) -> Self {
        let mut vp = Self::x86_paged(index, cr3, eip, esp);
        vp.vtl0.control.cr4 |= cr4::PAE;
        vp.vtl0.control.efer = efer::NXE;
        vp
    }

    /// 32-bit protected mode with two-level (non-PAE) paging.
    pub fn x86_32(index: u32, cr3: u64, eip: u32, esp: u32) -> Self {
        Self::x86_paged(index, cr3, eip, esp)
    }

    fn x86_paged(index: u32, cr3: u64, eip: u32, esp: u32) -> Self {
        let flat_data = Segment::new(0, 0xFFFF_FFFF, 0x23, 0xC0F3);
        let mut s = VpState {
            gp: GpRegs {
                rip: eip as u64,
                rsp: esp as u64,
                rflags: 0x202,
                ..Default::default()
            },
            control: ControlRegs {
                cr0: cr0::PG | cr0::WP | cr0::NE | cr0::ET | cr0::PE,
                cr2: 0,
                cr3,
                cr4: cr4::PSE | cr4::PGE | cr4::OSFXSR,
                cr8: 0,
                efer: 0,
            },
            segments: SegmentRegs {
                es: flat_data,
                cs: Segment::new(0, 0xFFFF_FFFF, 0x08, 0xC09B),
                ss: Segment::new(0, 0xFFFF_FFFF, 0x10, 0xC093),
                ds: flat_data,
                fs: Segment::new(0xFFDF_F000, 0x3748, 0x30, 0x4093),
                gs: Segment::default(),
                ldtr: Segment::default(),
                tr: Segment::new(0x8000_1000, 0x20AB, 0x28, 0x008B),
                cpl: 0,
            },
            tables: TableRegs {
                idtr: TableReg {
                    limit: 0x7FF,
                    base: 0x8000_0400,
                },
                gdtr: TableReg {
                    limit: 0x3FF,
                    base: 0x8000_0000,
                },
            },
            ..Default::default()
        };
        s.fp.fcw = 0x027F;
        s.virtual_msrs[vmsr::APIC_BASE] = apic_base(index);
        s.virtual_msrs[11] = index as u64;
        Self {
            index,
            vtl0: s,
            vtl1: None,
        }
    }

    /// Real mode, shaped like the BIOS-state VPs of the real sample: CS = `cs_selector`
    /// (base `cs_selector << 4`, limit 0xFFFF, attributes 0x9B), IP = `ip`; CR0 = 0x10 on
    /// VP 0 and 0x60000010 on the others; APIC base 0xFEE00900 (VP 0) / 0xFEE00800.
    pub fn real_mode(index: u32, cs_selector: u16, ip: u16) -> Self {
        let data = Segment::new(0, 0xFFFF, 0, 0x93);
        let mut s = VpState {
            gp: GpRegs {
                rip: ip as u64,
                rflags: 0x2,
                ..Default::default()
            },
            control: ControlRegs {
                cr0: if index == 0 { 0x10 } else { 0x6000_0010 },
                ..Default::default()
            },
            segments: SegmentRegs {
                es: data,
                cs: Segment::new((cs_selector as u64) << 4, 0xFFFF, cs_selector, 0x9B),
                ss: data,
                ds: data,
                fs: data,
                gs: data,
                ldtr: Segment::new(0, 0xFFFF, 0, 0x82),
                tr: Segment::new(0, 0xFFFF, 0, 0x8B),
                cpl: 0,
            },
            tables: TableRegs {
                idtr: TableReg {
                    limit: 0xFFFF,
                    base: 0,
                },
                gdtr: TableReg {
                    limit: 0xFFFF,
                    base: 0,
                },
            },
            ..Default::default()
        };
        s.virtual_msrs[vmsr::APIC_BASE] = apic_base(index);
        s.virtual_msrs[11] = index as u64;
        Self {
            index,
            vtl0: s,
            vtl1: None,
        }
    }

    /// Add a VTL-1 register set (a copy of VTL 0 with a different CR3 and RIP unless changed).
    pub fn with_vtl1(mut self, vtl1: VpState) -> Self {
        self.vtl1 = Some(vtl1);
        self
    }
}

/// The whole synthetic VM plus writer options.
#[derive(Clone)]
pub struct SynthVm {
    /// Guest-physical RAM ranges, in the order they are laid out in raw saved memory.
    pub ranges: Vec<SynthRange>,
    /// Virtual processors (1..=64 for valid files); VP_INDICES is built from their indices.
    pub vps: Vec<SynthVp>,
    /// `/savedstate/VmVersion` and `/configuration/properties/version` (e.g. 0x900).
    pub vm_version: u32,
    /// Processor vendor, in the PROLOG chunk and `/savedVM/processor/vendor`.
    pub vendor: Vendor,
    /// `/savedVM/processor/features/general` (also copied into the PROLOG chunk).
    pub processor_features: u64,
    /// `/savedVM/implemented_physical_address_bits` (also in the PROLOG chunk).
    pub implemented_physical_address_bits: u64,
    /// Guest OS identity written into the OS id chunk.
    pub guest_os_id: u64,
    /// 5 x u64 `/savedVM/guest_crash_msrs`.
    pub guest_crash_msrs: [u64; 5],
    /// `/savedVM/topology/low_mmio_gap_mb`.
    pub low_mmio_gap_mb: i64,
    /// `/savedVM/topology/high_mmio_gap_mb`.
    pub high_mmio_gap_mb: i64,
    /// Page contents.
    pub pages: Arc<dyn PageSource>,
    /// How each RAM block is encoded (default for all blocks).
    pub encoding: BlockEncoding,
    /// Per-block overrides of `encoding`, by RAM block number.
    pub block_encoding: BTreeMap<u64, BlockEncoding>,
    /// Encoder of compressed payloads.
    pub compressor: crate::encode::Compressor,
    /// Order of the `RamBlock` keys and values.
    pub block_order: crate::options::BlockOrder,
    /// Record every token's location in [`crate::SynthLayout::ram_blocks`].
    pub record_tokens: bool,
    /// `/savedstate/VmwpVersion`.
    pub vmwp_version: String,
    /// Options for the partition_state blob.
    pub partition: crate::options::PartitionOptions,
    /// Options only used by [`crate::write_vmrs`].
    pub vmrs: VmrsOptions,
    /// Options only used by [`crate::write_vsv_bin`].
    pub legacy: LegacyOptions,
}

impl std::fmt::Debug for SynthVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynthVm")
            .field("ranges", &self.ranges)
            .field("vps", &self.vps.len())
            .field("vm_version", &self.vm_version)
            .field("vendor", &self.vendor)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl SynthVm {
    /// A VM with the given ranges, one x64 VP 0 and all-zero pages.
    pub fn new(ranges: Vec<SynthRange>) -> Self {
        Self {
            ranges,
            vps: vec![SynthVp::x64_long_mode(
                0,
                0x1AA000,
                0xFFFF_F800_0000_1000,
                0xFFFF_F800_0010_0000,
            )],
            vm_version: 0x900,
            vendor: Vendor::Intel,
            processor_features: 0x0005_7040_4000_019F,
            implemented_physical_address_bits: 44,
            guest_os_id: 0,
            guest_crash_msrs: [0; 5],
            low_mmio_gap_mb: 128,
            high_mmio_gap_mb: 512,
            pages: Arc::new(ZeroPages),
            encoding: BlockEncoding::default(),
            block_encoding: BTreeMap::new(),
            compressor: Default::default(),
            block_order: Default::default(),
            record_tokens: false,
            vmwp_version: VMWP_VERSION.to_string(),
            partition: Default::default(),
            vmrs: Default::default(),
            legacy: Default::default(),
        }
    }

    /// A single range of `mib` MiB at GPA 0.
    pub fn with_ram_mib(mib: u64) -> Self {
        Self::new(vec![SynthRange {
            gpa_page_start: 0,
            page_count: mib * PAGES_PER_BLOCK,
        }])
    }

    /// The usual x64 layout for `total_mib` of RAM: up to 3 GiB below the MMIO gap,
    /// the rest from 4 GiB.
    pub fn with_ram_split(total_mib: u64) -> Self {
        let low = total_mib.min(3072);
        let mut ranges = vec![SynthRange {
            gpa_page_start: 0,
            page_count: low * PAGES_PER_BLOCK,
        }];
        if total_mib > low {
            ranges.push(SynthRange {
                gpa_page_start: 4096 * PAGES_PER_BLOCK,
                page_count: (total_mib - low) * PAGES_PER_BLOCK,
            });
        }
        Self::new(ranges)
    }

    /// The shape of the real sample: one range of 64,512 pages (252 MiB) at GPA 0 and
    /// four real-mode VPs, VM version 0x900.
    pub fn sample_shape() -> Self {
        let mut vm = Self::new(vec![SynthRange {
            gpa_page_start: 0,
            page_count: 64_512,
        }]);
        vm.vps = (0..4)
            .map(|i| {
                if i == 0 {
                    SynthVp::real_mode(0, 0xF000, 0x5BA9)
                } else {
                    SynthVp::real_mode(i, 0xF000, 0x7283)
                }
            })
            .collect();
        vm
    }

    /// `self` with page contents from `pages`.
    pub fn with_pages(mut self, pages: impl PageSource + 'static) -> Self {
        self.pages = Arc::new(pages);
        self
    }

    /// `self` with these virtual processors.
    pub fn with_vps(mut self, vps: Vec<SynthVp>) -> Self {
        self.vps = vps;
        self
    }

    /// `self` with `encoding` as the default encoding of every RAM block.
    pub fn with_encoding(mut self, encoding: BlockEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Place the ranges: each starts on a fresh RAM block.
    pub fn placed_ranges(&self) -> Vec<PlacedRange> {
        let mut next_block = 0u64;
        self.ranges
            .iter()
            .map(|r| {
                let block_count = r.page_count.div_ceil(PAGES_PER_BLOCK);
                let p = PlacedRange {
                    range: *r,
                    mbp_index_start: next_block * PAGES_PER_BLOCK,
                    first_block: next_block,
                    block_count,
                };
                next_block += block_count;
                p
            })
            .collect()
    }

    /// Total number of RAM blocks written.
    pub fn block_count(&self) -> u64 {
        self.placed_ranges().iter().map(|p| p.block_count).sum()
    }

    /// The encoding used for RAM block `block`.
    pub fn encoding_for(&self, block: u64) -> BlockEncoding {
        self.block_encoding
            .get(&block)
            .copied()
            .unwrap_or(self.encoding)
    }

    /// Guest page backing raw page `raw_page`, or `None` for the zero padding at the end of a range.
    pub fn gpa_page_of_raw(&self, raw_page: u64) -> Option<u64> {
        for p in self.placed_ranges() {
            if raw_page >= p.mbp_index_start && raw_page < p.mbp_index_start + p.range.page_count {
                return Some(p.range.gpa_page_start + (raw_page - p.mbp_index_start));
            }
        }
        None
    }

    /// Read the expected contents of guest page `gpa_page` (zero in holes).
    pub fn expected_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        if self
            .ranges
            .iter()
            .any(|r| gpa_page >= r.gpa_page_start && gpa_page < r.gpa_page_end())
        {
            self.pages.read_page(gpa_page, buf);
        } else {
            buf.fill(0);
        }
    }
}
