//! Processor state, as every source provides it: x86 and x64 registers, independent of the
//! file they were read from.

/// Architecture of a vCPU, as Microsoft's saved-state API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Architecture {
    /// 32-bit x86 (IA-32): EFER.LMA clear.
    X86,
    /// x64 (AMD64 / Intel 64): EFER.LMA set.
    X64,
}

/// Paging mode, as Microsoft's saved-state API reports it: long mode if EFER.LMA, else PAE if
/// CR4.PAE, else 32-bit. CR0.PG is not consulted (the API says `Bit32` for a vCPU in real mode);
/// see [`CpuState::paging_enabled`] for whether paging is actually on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum PagingMode {
    /// 32-bit two-level paging: neither EFER.LMA nor CR4.PAE set (also what a vCPU with paging
    /// off and CR4.PAE clear reports).
    Bit32,
    /// PAE paging (CR4.PAE set, not in long mode).
    Pae,
    /// Long-mode paging (EFER.LMA set): four or five levels, see [`CpuState::five_level_paging`].
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
    /// Segment base address.
    pub base: u64,
    /// Segment limit.
    pub limit: u32,
    /// Segment selector.
    pub selector: u16,
    /// Attributes, Hyper-V layout: type, S, DPL, P in bits 0..8; AVL, L, D/B, G in bits
    /// 12..16.
    pub attributes: u16,
}

/// One descriptor-table register (IDTR, GDTR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DescriptorTable {
    /// Table limit, in bytes (the size of the table minus one).
    pub limit: u16,
    /// Linear base address of the table.
    pub base: u64,
}

/// x87 / SSE state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FpState {
    /// XMM0..XMM15.
    pub xmm: [u128; 16],
    /// st0..st7, 80 bits each in the low bytes of 16.
    pub st: [u128; 8],
    /// x87 control word (FCW).
    pub fcw: u16,
    /// x87 status word (FSW).
    pub fsw: u16,
    /// Abridged tag word (one bit per register), as FXSAVE stores it.
    pub ftw: u8,
    /// Last x87 opcode (FOP).
    pub fop: u16,
    /// Last x87 instruction pointer (FIP).
    pub fip: u64,
    /// Last x87 data pointer (FDP).
    pub fdp: u64,
    /// MXCSR: SSE control and status.
    pub mxcsr: u32,
    /// MXCSR_MASK: the MXCSR bits the processor supports.
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
    /// RAX.
    pub rax: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RBX.
    pub rbx: u64,
    /// RSP.
    pub rsp: u64,
    /// RBP.
    pub rbp: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
    /// RIP: the instruction pointer.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// CR0: PE, PG and other system control flags.
    pub cr0: u64,
    /// CR2: the last page-fault linear address.
    pub cr2: u64,
    /// CR3: the page-table root.
    pub cr3: u64,
    /// CR4: PAE, LA57 and other extension flags.
    pub cr4: u64,
    /// CR8: the task-priority register.
    pub cr8: u64,
    /// IA32_EFER (LME, LMA, NXE...).
    pub efer: u64,
    /// DR0: breakpoint address 0.
    pub dr0: u64,
    /// DR1: breakpoint address 1.
    pub dr1: u64,
    /// DR2: breakpoint address 2.
    pub dr2: u64,
    /// DR3: breakpoint address 3.
    pub dr3: u64,
    /// DR6: debug status.
    pub dr6: u64,
    /// DR7: debug control.
    pub dr7: u64,
    /// ES.
    pub es: SegmentRegister,
    /// CS.
    pub cs: SegmentRegister,
    /// SS.
    pub ss: SegmentRegister,
    /// DS.
    pub ds: SegmentRegister,
    /// FS.
    pub fs: SegmentRegister,
    /// GS.
    pub gs: SegmentRegister,
    /// LDTR: the local descriptor table's segment.
    pub ldtr: SegmentRegister,
    /// TR: the task register.
    pub tr: SegmentRegister,
    /// Current privilege level (0 to 3).
    pub cpl: u8,
    /// IDTR: the interrupt descriptor table.
    pub idtr: DescriptorTable,
    /// GDTR: the global descriptor table.
    pub gdtr: DescriptorTable,
    /// x87 / SSE state, when the source saved it.
    pub fp: Option<FpState>,
    /// Model-specific registers, when the source saved them.
    pub msrs: Option<Msrs>,
    /// The source saved the general registers (RAX..R15, RIP, RFLAGS).
    pub has_gp: bool,
    /// The source saved the control registers (CR0, CR2, CR3, CR4, CR8, EFER).
    pub has_control: bool,
    /// The source saved the segment registers and the CPL.
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
    /// [`Architecture::X64`] when EFER.LMA is set, else [`Architecture::X86`].
    pub fn architecture(&self) -> Architecture {
        if self.efer & EFER_LMA != 0 {
            Architecture::X64
        } else {
            Architecture::X86
        }
    }

    /// The paging mode as [`PagingMode`] defines it: from EFER.LMA and CR4.PAE, whether or not
    /// CR0.PG is set.
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
