//! What the header of a dump says about the guest: [`Arch`] and [`DumpHeaderInfo`].

use crate::consts::{
    DUMP_HEADER32_SIZE, DUMP_HEADER64_SIZE, IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_I386,
    LIVE_SYSTEM_DUMP, MAX_RUNS_32, MAX_RUNS_64,
};
use crate::context::CpuContext;

/// Guest architecture, which selects the header format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x64: `DUMP_HEADER64` (`PAGEDU64`), x64 `CONTEXT`.
    X64,
    /// x86: `DUMP_HEADER32` (`PAGEDUMP`), x86 `CONTEXT`; `pae` sets `PaeEnabled`.
    X86 {
        /// Whether the guest runs PAE paging.
        pae: bool,
    },
}

impl Arch {
    /// Size of the dump header (0x2000 or 0x1000): where page data or the bitmap
    /// summary header starts.
    pub const fn header_size(self) -> u64 {
        match self {
            Arch::X64 => DUMP_HEADER64_SIZE,
            Arch::X86 { .. } => DUMP_HEADER32_SIZE,
        }
    }

    /// Runs that fit in the header's `PhysicalMemoryBlock` (42 or 86).
    pub const fn max_runs(self) -> usize {
        match self {
            Arch::X64 => MAX_RUNS_64,
            Arch::X86 { .. } => MAX_RUNS_32,
        }
    }

    /// `MachineImageType` written for this architecture.
    pub const fn machine_image_type(self) -> u32 {
        match self {
            Arch::X64 => IMAGE_FILE_MACHINE_AMD64,
            Arch::X86 { .. } => IMAGE_FILE_MACHINE_I386,
        }
    }

    /// First PFN this crate accepts for the architecture: 2^40 on x64 (52-bit physical
    /// addresses, the architectural maximum), 2^32 on x86 (the header's PFN fields are
    /// 32-bit). Without PAE a guest cannot address RAM above 4 GiB, but a VM may still have
    /// some (a guest stopped in its firmware or running a non-PAE kernel): its pages belong
    /// in the dump.
    pub const fn pfn_limit(self) -> u64 {
        match self {
            Arch::X64 => 1 << 40,
            Arch::X86 { .. } => 1 << 32,
        }
    }
}

/// Every header field a converter can know about the guest. Values that do not fit a
/// 32-bit header (x86) are truncated to their low 32 bits, which is also how
/// sign-extended x86 kernel addresses from `KDDEBUGGER_DATA64` map back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpHeaderInfo {
    /// `MajorVersion`: 0xF free build, 0xC checked build (`NtBuildNumber >> 28`).
    pub major_version: u32,
    /// `MinorVersion`: build number (`NtBuildNumber & 0xFFFF`).
    pub minor_version: u32,
    /// `DirectoryTableBase`: kernel CR3.
    pub directory_table_base: u64,
    /// `PfnDataBase`.
    pub pfn_database: u64,
    /// `PsLoadedModuleList`: VA of the list head.
    pub ps_loaded_module_list: u64,
    /// `PsActiveProcessHead`: VA of the list head.
    pub ps_active_process_head: u64,
    /// `KdDebuggerDataBlock`: VA of the decoded KDBG.
    pub kd_debugger_data_block: u64,
    /// `NumberProcessors`.
    pub number_processors: u32,
    /// `BugCheckCode` (0x161 `LIVE_SYSTEM_DUMP` when the guest did not crash).
    pub bugcheck_code: u32,
    /// `BugCheckParameter1..4`.
    pub bugcheck_parameters: [u64; 4],
    /// `SystemTime`: FILETIME (UTC, 100 ns since 1601-01-01).
    pub system_time: u64,
    /// `SystemUpTime`: 100 ns units.
    pub system_uptime: u64,
    /// `Comment`: ASCII; other characters become `?`, truncated to 127 bytes + NUL.
    pub comment: String,
    /// `ProductType` (1 WinNt, 2 LanManNt, 3 Server).
    pub product_type: u32,
    /// `SuiteMask`.
    pub suite_mask: u32,
    /// `KdSecondaryVersion`.
    pub kd_secondary_version: u8,
    /// `Attributes` (`DUMP_FILE_ATTRIBUTES`); 0 by default.
    pub attributes: u32,
    /// `Exception.ExceptionCode`; 0 by default.
    pub exception_code: u32,
    /// `Exception.ExceptionAddress`; 0 by default.
    pub exception_address: u64,
    /// Registers of the "current" CPU, stored in `ContextRecord`.
    pub context: CpuContext,
}

impl Default for DumpHeaderInfo {
    /// Free build (major 0xF), one processor, bug check `LIVE_SYSTEM_DUMP`, everything
    /// else zero or empty.
    fn default() -> Self {
        Self {
            major_version: 0xF,
            minor_version: 0,
            directory_table_base: 0,
            pfn_database: 0,
            ps_loaded_module_list: 0,
            ps_active_process_head: 0,
            kd_debugger_data_block: 0,
            number_processors: 1,
            bugcheck_code: LIVE_SYSTEM_DUMP,
            bugcheck_parameters: [0; 4],
            system_time: 0,
            system_uptime: 0,
            comment: String::new(),
            product_type: 0,
            suite_mask: 0,
            kd_secondary_version: 0,
            attributes: 0,
            exception_code: 0,
            exception_address: 0,
            context: CpuContext::default(),
        }
    }
}

/// The 128-byte `Comment` field: ASCII (others → `?`), at most 127 bytes, NUL-padded.
pub(crate) fn comment_bytes(comment: &str) -> [u8; 128] {
    let mut out = [0u8; 128];
    for (dst, ch) in out.iter_mut().take(127).zip(comment.chars()) {
        *dst = if ch.is_ascii() && ch != '\0' {
            ch as u8
        } else {
            b'?'
        };
    }
    out
}

/// Text of a `Comment` field: bytes up to the first NUL, non-ASCII bytes as U+FFFD.
pub(crate) fn comment_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    // Windows leaves an unused Comment in the header's 'PAGE' fill: no comment.
    if bytes
        .get(..end)
        .is_some_and(|c| c.chunks(4).all(|w| b"PAGE".starts_with(w)))
    {
        return String::new();
    }
    bytes
        .get(..end)
        .unwrap_or(&[])
        .iter()
        .map(|&b| if b.is_ascii() { b as char } else { '\u{FFFD}' })
        .collect()
}

/// Low 32 bits (x86 header fields).
pub(crate) fn lo32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fill_is_no_comment() {
        assert_eq!(comment_string(&b"PAGE".repeat(32)), "");
        assert_eq!(comment_string(b"PAGEPA\0\0"), "");
        assert_eq!(comment_string(b"PAGEFILE\0"), "PAGEFILE");
    }

    #[test]
    fn comment_is_truncated_and_terminated() {
        let long = "x".repeat(300);
        let b = comment_bytes(&long);
        assert!(b[..127].iter().all(|&c| c == b'x'));
        assert_eq!(b[127], 0);
        assert_eq!(comment_string(&b).len(), 127);
        let b = comment_bytes("vm2dmp é");
        assert_eq!(&b[..9], b"vm2dmp ?\0");
        assert_eq!(comment_string(&b), "vm2dmp ?");
    }

    #[test]
    fn arch_constants() {
        assert_eq!(Arch::X64.header_size(), 0x2000);
        assert_eq!(Arch::X86 { pae: true }.header_size(), 0x1000);
        assert_eq!(Arch::X64.max_runs(), 42);
        assert_eq!(Arch::X86 { pae: false }.max_runs(), 86);
        assert_eq!(Arch::X64.machine_image_type(), 0x8664);
        assert_eq!(Arch::X86 { pae: false }.machine_image_type(), 0x14C);
    }
}
