//! Constants of the kernel crash dump format, named as in the Windows SDK
//! (`um/mindumpdef.h`, `um/winnt.h`, `shared/bugcodes.h`) where the SDK names them.

#![allow(non_upper_case_globals)]

/// Size of one physical page.
pub const PAGE_SIZE: u64 = 0x1000;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// `'PAGE'`: first dword of every kernel dump header, also the fill pattern of unused bytes.
pub const DUMP_SIGNATURE32: u32 = 0x4547_4150;
/// `'PAGE'`: same value as [`DUMP_SIGNATURE32`] for the 64-bit header.
pub const DUMP_SIGNATURE64: u32 = 0x4547_4150;
/// `'DUMP'`: `ValidDump` of a 32-bit (`DUMP_HEADER32`) dump.
pub const DUMP_VALID_DUMP32: u32 = 0x504D_5544;
/// `'DU64'`: `ValidDump` of a 64-bit (`DUMP_HEADER64`) dump.
pub const DUMP_VALID_DUMP64: u32 = 0x3436_5544;
/// `'SDMP'`: signature of the bitmap summary header (summary/kernel bitmap dumps).
pub const DUMP_SUMMARY_SIGNATURE: u32 = 0x504D_4453;
/// `'FDMP'`: signature of the bitmap summary header of a complete bitmap dump.
pub const DUMP_FULL_SIGNATURE: u32 = 0x504D_4446;
/// `'DUMP'`: `ValidDump` of the bitmap summary header.
pub const DUMP_SUMMARY_VALID: u32 = 0x504D_5544;

/// Size of `DUMP_HEADER64`; the first page of a 64-bit full dump follows it.
pub const DUMP_HEADER64_SIZE: u64 = 0x2000;
/// Size of `DUMP_HEADER32`; the first page of a 32-bit full dump follows it.
pub const DUMP_HEADER32_SIZE: u64 = 0x1000;

/// Bytes reserved for `PhysicalMemoryBlock` in `DUMP_HEADER32`.
pub const DMP_PHYSICAL_MEMORY_BLOCK_SIZE_32: usize = 700;
/// Bytes reserved for `PhysicalMemoryBlock` in `DUMP_HEADER64`.
pub const DMP_PHYSICAL_MEMORY_BLOCK_SIZE_64: usize = 700;
/// Bytes reserved for `ContextRecord` in `DUMP_HEADER32`.
pub const DMP_CONTEXT_RECORD_SIZE_32: usize = 1200;
/// Bytes reserved for `ContextRecord` in `DUMP_HEADER64`.
pub const DMP_CONTEXT_RECORD_SIZE_64: usize = 3000;
/// Size of `_reserved0` in `DUMP_HEADER32`.
pub const DMP_RESERVED_0_SIZE_32: usize = 1760;
/// Size of `_reserved2` in `DUMP_HEADER32`.
pub const DMP_RESERVED_2_SIZE_32: usize = 16;
/// Size of `_reserved3` in `DUMP_HEADER32`.
pub const DMP_RESERVED_3_SIZE_32: usize = 56;
/// Size of `_reserved0` in `DUMP_HEADER64`.
pub const DMP_RESERVED_0_SIZE_64: usize = 4008;
/// Size of the `Comment` field of both headers.
pub const DMP_HEADER_COMMENT_SIZE: usize = 128;

/// Runs that fit in the 700-byte `PhysicalMemoryBlock` of `DUMP_HEADER64`
/// (16-byte descriptor head + 16 bytes per run).
pub const MAX_RUNS_64: usize = 42;
/// Runs that fit in the 700-byte `PhysicalMemoryBlock` of `DUMP_HEADER32`
/// (8-byte descriptor head + 8 bytes per run).
pub const MAX_RUNS_32: usize = 86;

/// `DUMP_TYPES`: unknown.
pub const DUMP_TYPE_UNKNOWN: u32 = 0;
/// `DUMP_TYPES`: complete dump, pages listed by the run list.
pub const DUMP_TYPE_FULL: u32 = 1;
/// `DUMP_TYPES`: legacy kernel ("summary") dump.
pub const DUMP_TYPE_SUMMARY: u32 = 2;
/// `DUMP_TYPES`: header only.
pub const DUMP_TYPE_HEADER: u32 = 3;
/// `DUMP_TYPES`: kernel minidump.
pub const DUMP_TYPE_TRIAGE: u32 = 4;
/// `DUMP_TYPES`: complete dump, pages listed by a bitmap.
pub const DUMP_TYPE_BITMAP_FULL: u32 = 5;
/// `DUMP_TYPES`: kernel dump, pages listed by a bitmap.
pub const DUMP_TYPE_BITMAP_KERNEL: u32 = 6;
/// `DUMP_TYPES`: automatic (a configuration value, not a file type).
pub const DUMP_TYPE_AUTOMATIC: u32 = 7;

/// What a `DumpType` value means, for messages.
pub fn dump_type_name(t: u32) -> &'static str {
    match t {
        DUMP_TYPE_FULL => "full",
        DUMP_TYPE_SUMMARY => "summary",
        DUMP_TYPE_HEADER => "header only",
        DUMP_TYPE_TRIAGE => "triage / kernel minidump",
        DUMP_TYPE_BITMAP_FULL => "bitmap full",
        DUMP_TYPE_BITMAP_KERNEL => "bitmap kernel",
        DUMP_TYPE_AUTOMATIC => "automatic",
        8 => "kernel memory",
        9 => "kernel and user memory",
        0xA => "complete memory",
        _ => "not a documented DumpType",
    }
}

/// `IMAGE_FILE_MACHINE_ARMNT` (32-bit ARM, Thumb-2).
pub const IMAGE_FILE_MACHINE_ARMNT: u32 = 0x01C4;

/// What a `MachineImageType` value means, for messages.
pub fn machine_name(m: u32) -> &'static str {
    match m {
        IMAGE_FILE_MACHINE_I386 => "x86",
        IMAGE_FILE_MACHINE_AMD64 => "x64",
        IMAGE_FILE_MACHINE_ARM64 => "ARM64",
        IMAGE_FILE_MACHINE_ARMNT => "ARM (Thumb-2)",
        _ => "unknown machine",
    }
}

/// `IMAGE_FILE_MACHINE_I386`.
pub const IMAGE_FILE_MACHINE_I386: u32 = 0x014C;
/// `IMAGE_FILE_MACHINE_AMD64`.
pub const IMAGE_FILE_MACHINE_AMD64: u32 = 0x8664;
/// `IMAGE_FILE_MACHINE_ARM64`.
pub const IMAGE_FILE_MACHINE_ARM64: u32 = 0xAA64;

/// Bug check `LIVE_SYSTEM_DUMP`: written when the guest did not crash.
pub const LIVE_SYSTEM_DUMP: u32 = 0x161;
/// Bug check `MANUALLY_INITIATED_CRASH`.
pub const MANUALLY_INITIATED_CRASH: u32 = 0xE2;

/// `STATUS_BREAKPOINT`.
pub const STATUS_BREAKPOINT: u32 = 0x8000_0003;
/// `EXCEPTION_NONCONTINUABLE`.
pub const EXCEPTION_NONCONTINUABLE: u32 = 1;
/// `EXCEPTION_MAXIMUM_PARAMETERS`.
pub const EXCEPTION_MAXIMUM_PARAMETERS: usize = 15;

/// `VER_NT_WORKSTATION` (`ProductType`).
pub const VER_NT_WORKSTATION: u32 = 1;
/// `VER_NT_DOMAIN_CONTROLLER` (`ProductType`).
pub const VER_NT_DOMAIN_CONTROLLER: u32 = 2;
/// `VER_NT_SERVER` (`ProductType`).
pub const VER_NT_SERVER: u32 = 3;

/// `INITIAL_MXCSR`: MXCSR after reset (all exceptions masked).
pub const INITIAL_MXCSR: u32 = 0x1F80;
/// `INITIAL_FPCSR`: x87 control word after `FNINIT`.
pub const INITIAL_FPCSR: u16 = 0x027F;

/// `DUMP_FILE_ATTRIBUTES` bits (`Attributes` field).
pub mod attributes {
    /// `HiberCrash`.
    pub const HIBER_CRASH: u32 = 1 << 0;
    /// `DumpDevicePowerOff`.
    pub const DUMP_DEVICE_POWER_OFF: u32 = 1 << 1;
    /// `InsufficientDumpfileSize`.
    pub const INSUFFICIENT_DUMPFILE_SIZE: u32 = 1 << 2;
    /// `KernelGeneratedTriageDump`.
    pub const KERNEL_GENERATED_TRIAGE_DUMP: u32 = 1 << 3;
    /// `LiveDumpGeneratedDump`.
    pub const LIVE_DUMP_GENERATED_DUMP: u32 = 1 << 4;
    /// `DumpIsGeneratedOffline`.
    pub const DUMP_IS_GENERATED_OFFLINE: u32 = 1 << 5;
    /// `FilterDumpFile`.
    pub const FILTER_DUMP_FILE: u32 = 1 << 6;
    /// `EarlyBootCrash`.
    pub const EARLY_BOOT_CRASH: u32 = 1 << 7;
    /// `EncryptedDumpData`.
    pub const ENCRYPTED_DUMP_DATA: u32 = 1 << 8;
    /// `DecryptedDump`.
    pub const DECRYPTED_DUMP: u32 = 1 << 9;
}

/// x64 `CONTEXT.ContextFlags` values (`winnt.h`, AMD64 section).
pub mod amd64 {
    /// `CONTEXT_AMD64`.
    pub const CONTEXT_AMD64: u32 = 0x0010_0000;
    /// `CONTEXT_CONTROL`: SegSs, Rsp, SegCs, Rip, EFlags.
    pub const CONTEXT_CONTROL: u32 = CONTEXT_AMD64 | 0x1;
    /// `CONTEXT_INTEGER`: Rax..R15.
    pub const CONTEXT_INTEGER: u32 = CONTEXT_AMD64 | 0x2;
    /// `CONTEXT_SEGMENTS`: SegDs, SegEs, SegFs, SegGs.
    pub const CONTEXT_SEGMENTS: u32 = CONTEXT_AMD64 | 0x4;
    /// `CONTEXT_FLOATING_POINT`: FltSave, MxCsr.
    pub const CONTEXT_FLOATING_POINT: u32 = CONTEXT_AMD64 | 0x8;
    /// `CONTEXT_DEBUG_REGISTERS`: Dr0-3, Dr6, Dr7.
    pub const CONTEXT_DEBUG_REGISTERS: u32 = CONTEXT_AMD64 | 0x10;
    /// `CONTEXT_FULL`.
    pub const CONTEXT_FULL: u32 = CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_FLOATING_POINT;
    /// `CONTEXT_ALL` (0x10001F): what this crate writes.
    pub const CONTEXT_ALL: u32 = CONTEXT_CONTROL
        | CONTEXT_INTEGER
        | CONTEXT_SEGMENTS
        | CONTEXT_FLOATING_POINT
        | CONTEXT_DEBUG_REGISTERS;
    /// `KGDT64_R0_CODE`: kernel code selector.
    pub const KGDT64_R0_CODE: u16 = 0x10;
    /// `KGDT64_R0_DATA`: kernel stack selector.
    pub const KGDT64_R0_DATA: u16 = 0x18;
    /// `KGDT64_R3_DATA | RPL 3`: data selector used for Ds/Es/Gs.
    pub const KGDT64_R3_DATA_RPL3: u16 = 0x2B;
    /// `KGDT64_R3_CMTEB | RPL 3`: Fs selector.
    pub const KGDT64_R3_CMTEB_RPL3: u16 = 0x53;
}

/// x86 `CONTEXT.ContextFlags` values (`winnt.h`, i386 section).
pub mod i386 {
    /// `CONTEXT_i386`.
    pub const CONTEXT_i386: u32 = 0x0001_0000;
    /// `CONTEXT_CONTROL`: SegSs, Esp, SegCs, Eip, EFlags, Ebp.
    pub const CONTEXT_CONTROL: u32 = CONTEXT_i386 | 0x1;
    /// `CONTEXT_INTEGER`: Edi, Esi, Ebx, Edx, Ecx, Eax.
    pub const CONTEXT_INTEGER: u32 = CONTEXT_i386 | 0x2;
    /// `CONTEXT_SEGMENTS`: SegDs, SegEs, SegFs, SegGs.
    pub const CONTEXT_SEGMENTS: u32 = CONTEXT_i386 | 0x4;
    /// `CONTEXT_FLOATING_POINT`: FloatSave.
    pub const CONTEXT_FLOATING_POINT: u32 = CONTEXT_i386 | 0x8;
    /// `CONTEXT_DEBUG_REGISTERS`: Dr0-3, Dr6, Dr7.
    pub const CONTEXT_DEBUG_REGISTERS: u32 = CONTEXT_i386 | 0x10;
    /// `CONTEXT_EXTENDED_REGISTERS`: ExtendedRegisters (FXSAVE image).
    pub const CONTEXT_EXTENDED_REGISTERS: u32 = CONTEXT_i386 | 0x20;
    /// `CONTEXT_FULL`.
    pub const CONTEXT_FULL: u32 = CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_SEGMENTS;
    /// `CONTEXT_ALL` (0x1003F): what this crate writes.
    pub const CONTEXT_ALL: u32 = CONTEXT_FULL
        | CONTEXT_FLOATING_POINT
        | CONTEXT_DEBUG_REGISTERS
        | CONTEXT_EXTENDED_REGISTERS;
    /// `KGDT_R0_CODE`: kernel code selector.
    pub const KGDT_R0_CODE: u16 = 0x08;
    /// `KGDT_R0_DATA`: kernel stack selector.
    pub const KGDT_R0_DATA: u16 = 0x10;
    /// `KGDT_R3_DATA | RPL 3`: Ds/Es selector.
    pub const KGDT_R3_DATA_RPL3: u16 = 0x23;
    /// `KGDT_R0_PCR`: Fs selector in kernel mode.
    pub const KGDT_R0_PCR: u16 = 0x30;
}
