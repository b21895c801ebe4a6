//! Register sets of a virtual processor, field for field in the order partition_state
//! stores them, and the bit and index constants used to fill them.

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
