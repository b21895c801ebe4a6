//! Virtual processors: the vendor code and [`SynthVp`] with its register-set presets.

use super::regs::{
    cr0, cr4, efer, vmsr, ControlRegs, GpRegs, Segment, SegmentRegs, TableReg, TableRegs, VpState,
};

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
