//! Processor state, as every source provides it: x86 and x64 registers, independent of the
//! file they were read from.

/// Architecture of a vCPU, as Microsoft's saved-state API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Architecture {
    X86,
    X64,
}

/// Paging mode, as Microsoft's saved-state API reports it: long mode if EFER.LMA, else PAE if
/// CR4.PAE, else 32-bit. CR0.PG is not consulted (the API says `Bit32` for a vCPU in real mode);
/// see [`CpuState::paging_enabled`] for whether paging is actually on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum PagingMode {
    Bit32,
    Pae,
    Long,
}

/// The model-specific registers a kernel dump and kernel discovery use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Msrs {
    /// IA32_TIME_STAMP_COUNTER.
    pub tsc: u64,
    /// IA32_KERNEL_GS_BASE (the GS base `swapgs` swaps in; the KPCR while in user mode).
    pub kernel_gs_base: u64,
    /// IA32_APIC_BASE.
    pub apic_base: u64,
    /// IA32_STAR (system-call segment selectors).
    pub star: u64,
    /// IA32_LSTAR (64-bit system-call entry).
    pub lstar: u64,
    /// IA32_CSTAR (compatibility-mode system-call entry).
    pub cstar: u64,
    /// IA32_FMASK (RFLAGS mask on system call).
    pub sfmask: u64,
}

/// One segment register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SegmentRegister {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub attributes: u16,
}

/// One descriptor-table register (IDTR, GDTR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DescriptorTable {
    pub limit: u16,
    pub base: u64,
}

/// x87 / SSE state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FpState {
    pub xmm: [u128; 16],
    /// st0..st7, 80 bits each in the low bytes of 16.
    pub st: [u128; 8],
    pub fcw: u16,
    pub fsw: u16,
    /// Abridged tag word (one bit per register), as FXSAVE stores it.
    pub ftw: u8,
    pub fop: u16,
    pub fip: u64,
    pub fdp: u64,
    pub mxcsr: u32,
    pub mxcsr_mask: u32,
}

impl FpState {
    /// The 512-byte FXSAVE image of this state (the layout a CONTEXT's FltSave uses).
    pub fn fxsave(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..2].copy_from_slice(&self.fcw.to_le_bytes());
        b[2..4].copy_from_slice(&self.fsw.to_le_bytes());
        b[4] = self.ftw;
        b[6..8].copy_from_slice(&self.fop.to_le_bytes());
        b[8..16].copy_from_slice(&self.fip.to_le_bytes());
        b[16..24].copy_from_slice(&self.fdp.to_le_bytes());
        b[24..28].copy_from_slice(&self.mxcsr.to_le_bytes());
        b[28..32].copy_from_slice(&self.mxcsr_mask.to_le_bytes());
        for (i, st) in self.st.iter().enumerate() {
            b[32 + i * 16..48 + i * 16].copy_from_slice(&st.to_le_bytes());
        }
        for (i, x) in self.xmm.iter().enumerate() {
            b[160 + i * 16..176 + i * 16].copy_from_slice(&x.to_le_bytes());
        }
        b
    }
}

/// Registers of one virtual processor, whatever saved them: the x86/x64 state a kernel dump
/// needs (general, control, debug, segment and descriptor-table registers, x87/SSE state and
/// the MSRs that matter to finding the kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CpuState {
    /// Processor number as the source numbers them (the KPRCB index in a Windows guest).
    pub index: u32,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub dr0: u64,
    pub dr1: u64,
    pub dr2: u64,
    pub dr3: u64,
    pub dr6: u64,
    pub dr7: u64,
    pub es: SegmentRegister,
    pub cs: SegmentRegister,
    pub ss: SegmentRegister,
    pub ds: SegmentRegister,
    pub fs: SegmentRegister,
    pub gs: SegmentRegister,
    pub ldtr: SegmentRegister,
    pub tr: SegmentRegister,
    pub cpl: u8,
    pub idtr: DescriptorTable,
    pub gdtr: DescriptorTable,
    pub fp: Option<FpState>,
    /// Model-specific registers, when the source saved them.
    pub msrs: Option<Msrs>,
    /// Which register chunks were present.
    pub has_gp: bool,
    pub has_control: bool,
    pub has_segments: bool,
}

impl Default for FpState {
    fn default() -> Self {
        Self {
            xmm: [0; 16],
            st: [0; 8],
            fcw: 0x37F,
            fsw: 0,
            ftw: 0,
            fop: 0,
            fip: 0,
            fdp: 0,
            mxcsr: 0x1F80,
            mxcsr_mask: 0xFFFF,
        }
    }
}

const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;

impl CpuState {
    pub fn architecture(&self) -> Architecture {
        if self.efer & EFER_LMA != 0 {
            Architecture::X64
        } else {
            Architecture::X86
        }
    }

    pub fn paging_mode(&self) -> PagingMode {
        if self.efer & EFER_LMA != 0 {
            PagingMode::Long
        } else if self.cr4 & CR4_PAE != 0 {
            PagingMode::Pae
        } else {
            PagingMode::Bit32
        }
    }

    /// CR0.PG: the vCPU translates addresses through page tables.
    pub fn paging_enabled(&self) -> bool {
        self.cr0 & CR0_PG != 0
    }

    /// CR0.PE: protected mode.
    pub fn protected_mode(&self) -> bool {
        self.cr0 & CR0_PE != 0
    }

    /// CR4.LA57: five-level paging (in long mode).
    pub fn five_level_paging(&self) -> bool {
        self.cr4 & CR4_LA57 != 0
    }

    /// Mode description in words (real, protected, PAE, long...).
    pub fn mode_description(&self) -> &'static str {
        match (
            self.protected_mode(),
            self.paging_enabled(),
            self.paging_mode(),
        ) {
            (false, _, _) => "real mode",
            (true, false, _) => "protected mode, paging off",
            (true, true, PagingMode::Bit32) => "protected mode, 32-bit paging",
            (true, true, PagingMode::Pae) => "protected mode, PAE paging",
            (true, true, PagingMode::Long) if self.five_level_paging() => {
                "long mode, 5-level paging"
            }
            (true, true, PagingMode::Long) => "long mode, 4-level paging",
        }
    }

    /// The kernel GS base MSR, if saved.
    pub fn kernel_gs_base(&self) -> Option<u64> {
        self.msrs.map(|m| m.kernel_gs_base)
    }
}
