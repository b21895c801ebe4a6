//! On-disk structures of kernel crash dumps, with their documented offsets.
//!
//! Each structure lists every byte: padding and reserved areas are explicit fields, so
//! `parse(bytes).to_bytes()` reproduces the input exactly. The field order, offsets and
//! sizes follow the Windows SDK (`um/mindumpdef.h`, `um/winnt.h`) as tabulated in the
//! project's format reference (`docs/windows-crash-dump.md`, sections 2-5); a
//! compile-time check asserts every offset and the total size.
//!
//! The declarations stay in this one file on purpose: they are a table, one block per SDK
//! structure in the order of the format reference, and the structures nest (`DUMP_HEADER64`
//! holds an `EXCEPTION_RECORD64`, both `CONTEXT`s an FXSAVE or FNSAVE area), so reading or
//! checking one against the reference is easiest with all of them side by side. The tests,
//! which restate every offset independently from the reference, are in `structs/tests.rs`.

use crate::le::le_struct;

le_struct! {
    /// `DUMP_HEADER64` (0x2000 bytes): header of 64-bit kernel dumps (`PAGEDU64`).
    /// Source: SDK `mindumpdef.h`; format reference section 2.
    pub struct DumpHeader64 = "DUMP_HEADER64", size 0x2000 {
        /// `'PAGE'`.
        0x000 signature: u32,
        /// `'DU64'`.
        0x004 valid_dump: u32,
        /// 0xF free build, 0xC checked build.
        0x008 major_version: u32,
        /// Build number.
        0x00C minor_version: u32,
        /// Kernel page-table root (CR3).
        0x010 directory_table_base: u64,
        /// `PfnDataBase`.
        0x018 pfn_data_base: u64,
        /// VA of `PsLoadedModuleList`.
        0x020 ps_loaded_module_list: u64,
        /// VA of `PsActiveProcessHead`.
        0x028 ps_active_process_head: u64,
        /// `IMAGE_FILE_MACHINE_*`.
        0x030 machine_image_type: u32,
        /// Processor count.
        0x034 number_processors: u32,
        /// Bug check code.
        0x038 bug_check_code: u32,
        /// Alignment padding.
        0x03C pad_03c: u32,
        /// `BugCheckParameter1..4`.
        0x040 bug_check_parameters: [u64; 4],
        /// `VersionUser`.
        0x060 version_user: [u8; 32],
        /// VA of the kernel debugger data block (KDBG).
        0x080 kd_debugger_data_block: u64,
        /// `PhysicalMemoryBlockBuffer`: a `PHYSICAL_MEMORY_DESCRIPTOR64`.
        0x088 physical_memory_block: [u8; 700],
        /// Padding of the 700-byte union to 8-byte alignment.
        0x344 pad_344: u32,
        /// `ContextRecord` area: an x64 `CONTEXT` then unused bytes.
        0x348 context_record: [u8; 3000],
        /// `Exception`.
        0xF00 exception: ExceptionRecord64,
        /// `DumpType`.
        0xF98 dump_type: u32,
        /// Alignment padding.
        0xF9C pad_f9c: u32,
        /// `RequiredDumpSpace`: file size in bytes.
        0xFA0 required_dump_space: u64,
        /// `SystemTime`: FILETIME (UTC, 100 ns since 1601).
        0xFA8 system_time: u64,
        /// `Comment`: NUL-terminated ASCII.
        0xFB0 comment: [u8; 128],
        /// `SystemUpTime`: 100 ns units.
        0x1030 system_up_time: u64,
        /// `MiniDumpFields`.
        0x1038 mini_dump_fields: u32,
        /// `SecondaryDataState`.
        0x103C secondary_data_state: u32,
        /// `ProductType`.
        0x1040 product_type: u32,
        /// `SuiteMask`.
        0x1044 suite_mask: u32,
        /// `WriterStatus`.
        0x1048 writer_status: u32,
        /// `Unused1`.
        0x104C unused1: u8,
        /// `KdSecondaryVersion`.
        0x104D kd_secondary_version: u8,
        /// `Unused[2]`.
        0x104E unused: [u8; 2],
        /// `Attributes` (`DUMP_FILE_ATTRIBUTES`).
        0x1050 attributes: u32,
        /// `BootId`.
        0x1054 boot_id: u32,
        /// `_reserved0`.
        0x1058 reserved0: [u8; 4008],
    }
}

le_struct! {
    /// `DUMP_HEADER32` (0x1000 bytes): header of 32-bit kernel dumps (`PAGEDUMP`).
    /// Source: SDK `mindumpdef.h`; format reference section 4.
    pub struct DumpHeader32 = "DUMP_HEADER32", size 0x1000 {
        /// `'PAGE'`.
        0x000 signature: u32,
        /// `'DUMP'`.
        0x004 valid_dump: u32,
        /// 0xF free build, 0xC checked build.
        0x008 major_version: u32,
        /// Build number.
        0x00C minor_version: u32,
        /// CR3 (PAE: PDPT address).
        0x010 directory_table_base: u32,
        /// `PfnDataBase`.
        0x014 pfn_data_base: u32,
        /// VA of `PsLoadedModuleList`.
        0x018 ps_loaded_module_list: u32,
        /// VA of `PsActiveProcessHead`.
        0x01C ps_active_process_head: u32,
        /// `IMAGE_FILE_MACHINE_I386`.
        0x020 machine_image_type: u32,
        /// Processor count.
        0x024 number_processors: u32,
        /// Bug check code.
        0x028 bug_check_code: u32,
        /// `BugCheckParameter1..4`.
        0x02C bug_check_parameters: [u32; 4],
        /// `VersionUser`.
        0x03C version_user: [u8; 32],
        /// 1 if the system runs PAE paging.
        0x05C pae_enabled: u8,
        /// `KdSecondaryVersion`.
        0x05D kd_secondary_version: u8,
        /// `Spare3`.
        0x05E spare3: [u8; 2],
        /// VA of the kernel debugger data block (KDBG).
        0x060 kd_debugger_data_block: u32,
        /// `PhysicalMemoryBlockBuffer`: a `PHYSICAL_MEMORY_DESCRIPTOR32`.
        0x064 physical_memory_block: [u8; 700],
        /// `ContextRecord` area: an x86 `CONTEXT` then unused bytes.
        0x320 context_record: [u8; 1200],
        /// `Exception`.
        0x7D0 exception: ExceptionRecord32,
        /// `Comment`: NUL-terminated ASCII.
        0x820 comment: [u8; 128],
        /// `Attributes` (`DUMP_FILE_ATTRIBUTES`).
        0x8A0 attributes: u32,
        /// `BootId`.
        0x8A4 boot_id: u32,
        /// `_reserved0`.
        0x8A8 reserved0: [u8; 1760],
        /// `DumpType`.
        0xF88 dump_type: u32,
        /// `MiniDumpFields`.
        0xF8C mini_dump_fields: u32,
        /// `SecondaryDataState`.
        0xF90 secondary_data_state: u32,
        /// `ProductType`.
        0xF94 product_type: u32,
        /// `SuiteMask`.
        0xF98 suite_mask: u32,
        /// `WriterStatus`.
        0xF9C writer_status: u32,
        /// `RequiredDumpSpace`: file size in bytes.
        0xFA0 required_dump_space: u64,
        /// `_reserved2`.
        0xFA8 reserved2: [u8; 16],
        /// `SystemUpTime`: 100 ns units.
        0xFB8 system_up_time: u64,
        /// `SystemTime`: FILETIME.
        0xFC0 system_time: u64,
        /// `_reserved3`.
        0xFC8 reserved3: [u8; 56],
    }
}

le_struct! {
    /// Fixed head of `PHYSICAL_MEMORY_DESCRIPTOR64`; `NumberOfRuns` entries of
    /// [`PhysicalMemoryRun64`] follow at +0x10. Source: SDK `mindumpdef.h`; reference 2.1.
    pub struct PhysicalMemoryDescriptor64 = "PHYSICAL_MEMORY_DESCRIPTOR64", size 0x10 {
        /// `NumberOfRuns`.
        0x00 number_of_runs: u32,
        /// Alignment padding.
        0x04 pad_04: u32,
        /// `NumberOfPages`: sum of the runs' page counts.
        0x08 number_of_pages: u64,
    }
}

le_struct! {
    /// `PHYSICAL_MEMORY_RUN64`. Source: SDK `mindumpdef.h`; reference 2.1.
    pub struct PhysicalMemoryRun64 = "PHYSICAL_MEMORY_RUN64", size 0x10 {
        /// First PFN of the run.
        0x00 base_page: u64,
        /// Pages in the run.
        0x08 page_count: u64,
    }
}

le_struct! {
    /// Fixed head of `PHYSICAL_MEMORY_DESCRIPTOR32`; `NumberOfRuns` entries of
    /// [`PhysicalMemoryRun32`] follow at +0x8. Source: SDK `mindumpdef.h`; reference 4.
    pub struct PhysicalMemoryDescriptor32 = "PHYSICAL_MEMORY_DESCRIPTOR32", size 0x8 {
        /// `NumberOfRuns`.
        0x00 number_of_runs: u32,
        /// `NumberOfPages`.
        0x04 number_of_pages: u32,
    }
}

le_struct! {
    /// `PHYSICAL_MEMORY_RUN32`. Source: SDK `mindumpdef.h`; reference 4.
    pub struct PhysicalMemoryRun32 = "PHYSICAL_MEMORY_RUN32", size 0x8 {
        /// First PFN of the run.
        0x00 base_page: u32,
        /// Pages in the run.
        0x04 page_count: u32,
    }
}

le_struct! {
    /// `EXCEPTION_RECORD64` (0x98 bytes). Source: SDK `winnt.h`; reference 2.2.
    pub struct ExceptionRecord64 = "EXCEPTION_RECORD64", size 0x98 {
        /// `ExceptionCode`.
        0x00 exception_code: u32,
        /// `ExceptionFlags`.
        0x04 exception_flags: u32,
        /// `ExceptionRecord` (pointer to a chained record).
        0x08 exception_record: u64,
        /// `ExceptionAddress`.
        0x10 exception_address: u64,
        /// `NumberParameters`.
        0x18 number_parameters: u32,
        /// `__unusedAlignment`.
        0x1C pad_1c: u32,
        /// `ExceptionInformation[15]`.
        0x20 exception_information: [u64; 15],
    }
}

le_struct! {
    /// `EXCEPTION_RECORD32` (0x50 bytes). Source: SDK `winnt.h`; reference 4.
    pub struct ExceptionRecord32 = "EXCEPTION_RECORD32", size 0x50 {
        /// `ExceptionCode`.
        0x00 exception_code: u32,
        /// `ExceptionFlags`.
        0x04 exception_flags: u32,
        /// `ExceptionRecord`.
        0x08 exception_record: u32,
        /// `ExceptionAddress`.
        0x0C exception_address: u32,
        /// `NumberParameters`.
        0x10 number_parameters: u32,
        /// `ExceptionInformation[15]`.
        0x14 exception_information: [u32; 15],
    }
}

le_struct! {
    /// `XMM_SAVE_AREA32` (512 bytes): the FXSAVE image (`CONTEXT.FltSave` on x64,
    /// `CONTEXT.ExtendedRegisters` on x86). Source: SDK `winnt.h`; reference 5.1.
    pub struct XmmSaveArea32 = "XMM_SAVE_AREA32", size 0x200 {
        /// `ControlWord` (FCW).
        0x000 control_word: u16,
        /// `StatusWord` (FSW).
        0x002 status_word: u16,
        /// `TagWord` (abridged FTW).
        0x004 tag_word: u8,
        /// `Reserved1`.
        0x005 reserved1: u8,
        /// `ErrorOpcode` (FOP).
        0x006 error_opcode: u16,
        /// `ErrorOffset` (FIP).
        0x008 error_offset: u32,
        /// `ErrorSelector` (FCS).
        0x00C error_selector: u16,
        /// `Reserved2`.
        0x00E reserved2: u16,
        /// `DataOffset` (FDP).
        0x010 data_offset: u32,
        /// `DataSelector` (FDS).
        0x014 data_selector: u16,
        /// `Reserved3`.
        0x016 reserved3: u16,
        /// `MxCsr`.
        0x018 mx_csr: u32,
        /// `MxCsr_Mask`.
        0x01C mx_csr_mask: u32,
        /// `FloatRegisters[8]` (16 bytes each, 80-bit value in the low 10).
        0x020 float_registers: [u8; 128],
        /// `XmmRegisters[16]`.
        0x0A0 xmm_registers: [u8; 256],
        /// `Reserved4`.
        0x1A0 reserved4: [u8; 96],
    }
}

le_struct! {
    /// x64 `CONTEXT` (0x4D0 bytes). Source: SDK `winnt.h` (AMD64); reference 5.1.
    pub struct Context64 = "CONTEXT (x64)", size 0x4D0 {
        /// `P1Home`.
        0x000 p1_home: u64,
        /// `P2Home`.
        0x008 p2_home: u64,
        /// `P3Home`.
        0x010 p3_home: u64,
        /// `P4Home`.
        0x018 p4_home: u64,
        /// `P5Home`.
        0x020 p5_home: u64,
        /// `P6Home`.
        0x028 p6_home: u64,
        /// `ContextFlags`.
        0x030 context_flags: u32,
        /// `MxCsr` (must equal `flt_save.mx_csr`).
        0x034 mx_csr: u32,
        /// `SegCs`.
        0x038 seg_cs: u16,
        /// `SegDs`.
        0x03A seg_ds: u16,
        /// `SegEs`.
        0x03C seg_es: u16,
        /// `SegFs`.
        0x03E seg_fs: u16,
        /// `SegGs`.
        0x040 seg_gs: u16,
        /// `SegSs`.
        0x042 seg_ss: u16,
        /// `EFlags`.
        0x044 eflags: u32,
        /// `Dr0`.
        0x048 dr0: u64,
        /// `Dr1`.
        0x050 dr1: u64,
        /// `Dr2`.
        0x058 dr2: u64,
        /// `Dr3`.
        0x060 dr3: u64,
        /// `Dr6`.
        0x068 dr6: u64,
        /// `Dr7`.
        0x070 dr7: u64,
        /// `Rax`.
        0x078 rax: u64,
        /// `Rcx`.
        0x080 rcx: u64,
        /// `Rdx`.
        0x088 rdx: u64,
        /// `Rbx`.
        0x090 rbx: u64,
        /// `Rsp`.
        0x098 rsp: u64,
        /// `Rbp`.
        0x0A0 rbp: u64,
        /// `Rsi`.
        0x0A8 rsi: u64,
        /// `Rdi`.
        0x0B0 rdi: u64,
        /// `R8`.
        0x0B8 r8: u64,
        /// `R9`.
        0x0C0 r9: u64,
        /// `R10`.
        0x0C8 r10: u64,
        /// `R11`.
        0x0D0 r11: u64,
        /// `R12`.
        0x0D8 r12: u64,
        /// `R13`.
        0x0E0 r13: u64,
        /// `R14`.
        0x0E8 r14: u64,
        /// `R15`.
        0x0F0 r15: u64,
        /// `Rip`.
        0x0F8 rip: u64,
        /// `FltSave`: FXSAVE image.
        0x100 flt_save: XmmSaveArea32,
        /// `VectorRegister[26]`.
        0x300 vector_register: [u8; 416],
        /// `VectorControl`.
        0x4A0 vector_control: u64,
        /// `DebugControl`.
        0x4A8 debug_control: u64,
        /// `LastBranchToRip`.
        0x4B0 last_branch_to_rip: u64,
        /// `LastBranchFromRip`.
        0x4B8 last_branch_from_rip: u64,
        /// `LastExceptionToRip`.
        0x4C0 last_exception_to_rip: u64,
        /// `LastExceptionFromRip`.
        0x4C8 last_exception_from_rip: u64,
    }
}

le_struct! {
    /// `FLOATING_SAVE_AREA` (0x70 bytes): x87 state in FNSAVE format (`CONTEXT.FloatSave`
    /// on x86). Source: SDK `winnt.h` (i386); reference 5.2.
    pub struct FloatingSaveArea = "FLOATING_SAVE_AREA", size 0x70 {
        /// `ControlWord`.
        0x00 control_word: u32,
        /// `StatusWord`.
        0x04 status_word: u32,
        /// `TagWord` (full two-bit-per-register tag word).
        0x08 tag_word: u32,
        /// `ErrorOffset`.
        0x0C error_offset: u32,
        /// `ErrorSelector` (selector | opcode << 16).
        0x10 error_selector: u32,
        /// `DataOffset`.
        0x14 data_offset: u32,
        /// `DataSelector`.
        0x18 data_selector: u32,
        /// `RegisterArea[80]`: ST0..ST7, 10 bytes each.
        0x1C register_area: [u8; 80],
        /// `Spare0` (`Cr0NpxState`).
        0x6C cr0_npx_state: u32,
    }
}

le_struct! {
    /// x86 `CONTEXT` (0x2CC bytes). Source: SDK `winnt.h` (i386); reference 5.2.
    pub struct Context32 = "CONTEXT (x86)", size 0x2CC {
        /// `ContextFlags`.
        0x000 context_flags: u32,
        /// `Dr0`.
        0x004 dr0: u32,
        /// `Dr1`.
        0x008 dr1: u32,
        /// `Dr2`.
        0x00C dr2: u32,
        /// `Dr3`.
        0x010 dr3: u32,
        /// `Dr6`.
        0x014 dr6: u32,
        /// `Dr7`.
        0x018 dr7: u32,
        /// `FloatSave`.
        0x01C float_save: FloatingSaveArea,
        /// `SegGs`.
        0x08C seg_gs: u32,
        /// `SegFs`.
        0x090 seg_fs: u32,
        /// `SegEs`.
        0x094 seg_es: u32,
        /// `SegDs`.
        0x098 seg_ds: u32,
        /// `Edi`.
        0x09C edi: u32,
        /// `Esi`.
        0x0A0 esi: u32,
        /// `Ebx`.
        0x0A4 ebx: u32,
        /// `Edx`.
        0x0A8 edx: u32,
        /// `Ecx`.
        0x0AC ecx: u32,
        /// `Eax`.
        0x0B0 eax: u32,
        /// `Ebp`.
        0x0B4 ebp: u32,
        /// `Eip`.
        0x0B8 eip: u32,
        /// `SegCs`.
        0x0BC seg_cs: u32,
        /// `EFlags`.
        0x0C0 eflags: u32,
        /// `Esp`.
        0x0C4 esp: u32,
        /// `SegSs`.
        0x0C8 seg_ss: u32,
        /// `ExtendedRegisters[512]`: FXSAVE image.
        0x0CC extended_registers: XmmSaveArea32,
    }
}

le_struct! {
    /// Bitmap dump summary header (`FDMP`/`SDMP` + `DUMP`, 0x38 bytes) at the end of the
    /// dump header; the page bitmap follows at +0x38. Source: format reference section 3
    /// (field names of kdmp-parser / Rekall; volatility3 calls `first_page` `HeaderSize`).
    pub struct BitmapSummaryHeader = "bitmap summary header", size 0x38 {
        /// `'FDMP'` (complete) or `'SDMP'` (summary/kernel).
        0x00 signature: u32,
        /// `'DUMP'`.
        0x04 valid_dump: u32,
        /// `DumpOptions`.
        0x08 dump_options: u32,
        /// Unused.
        0x0C reserved: [u8; 0x14],
        /// Absolute file offset of the first present page.
        0x20 first_page: u64,
        /// Number of set bits in the bitmap.
        0x28 total_present_pages: u64,
        /// Number of bits in the bitmap.
        0x30 pages: u64,
    }
}

#[cfg(test)]
mod tests;
