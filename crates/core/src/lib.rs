//! Read Hyper-V saved states and checkpoint memory, and write Windows kernel crash dumps.
//!
//! Supported inputs, recognised by their first bytes:
//! - `.vmrs` files of Windows Server 2016 / Windows 10 and later (HVS container);
//! - `.vsv` + `.bin` pairs of Windows Server 2008 to 2012 R2 and configuration-version-5.0 VMs
//!   (legacy 0x500 container). Opening either file finds the other beside it.
//!
//! Inputs are opened read-only and read with positioned reads; every size, count and offset read from them
//! is checked before use, and a bad file gives an [`Error`] naming the file, the structure and
//! the offset. A dirty `.vmrs` (pending replay-log entries) is replayed in memory, never on disk.
//!
//! ```no_run
//! use vm2dmp::SavedState;
//!
//! let state = SavedState::open("vm.vmrs")?;
//! for r in state.memory_ranges() {
//!     println!("RAM {:#x}..{:#x}", r.gpa_start(), r.gpa_end());
//! }
//! let vp0 = &state.vcpus()[0];
//! println!("VP0 RIP {:#x} CR3 {:#x} ({})", vp0.rip, vp0.cr3, vp0.mode_description());
//! let mut buf = [0u8; 12];
//! state.read_phys(0xC0FFE, &mut buf)?;
//! # Ok::<(), vm2dmp::Error>(())
//! ```
#![forbid(unsafe_code)]

mod container;
mod convert;
mod discover;
mod dump;
mod error;
mod hvs;
mod input;
mod kernel;
mod keys;
mod legacy;
mod output;
mod progress;
mod ram;
mod state;
mod vcpu;

pub use container::ValueType;
pub use convert::{convert, dump_matches_input, ConvertOptions, ConvertReport, DumpFormat};
pub use discover::filetime_rfc3339;
pub use discover::{
    discover, keys as config_keys, memory_for_disk, Candidate, DiscoverOptions, Discovery,
    EntryKind, Layout, Status,
};
pub use dump::{is_kernel_dump, verify, DumpFile, VerifyReport};
pub use error::{Error, Result};
pub use hvs::ReplayLogStatus;
pub use kernel::kdbg::KdbgKeys;
pub use kernel::pdb::Symbols as PdbSymbols;
pub use kernel::pe::{PdbId, PeImage, Section};
pub use kernel::translate::{
    check_dtb, read_virt, scan_for_dtbs, translate, Dtb, DtbCheck, Paging, PhysMem, Translation,
    VirtError,
};
pub use kernel::{discover_kernel, dump_patched_pages, Finding, KernelInfo, Method};
pub use kernel::{kdbg, pe};
pub use keys::{list_keys, list_keys_from_bytes, KeyData, KeyEntry, KeyListing};
pub use output::OutputFile;
pub use progress::{Cancel, NoProgress, Progress};
pub use ram::EncodingStats;
pub use state::sibling as sibling_file;
pub use state::{
    BlockSpan, InputFormat, KeyFlavour, MemoryRange, OpenOptions, Pages, SavedState, Summary,
};
pub use vcpu::{
    Architecture, DescriptorTable, FpState, PagingMode, PartitionState, SegmentRegister, VpState,
};
pub use vm2dmp_formats::memory::{BLOCK_SIZE, PAGES_PER_BLOCK, PAGE_SIZE};
/// The kernel-dump format layer (headers, layout, reader).
pub use vm2dmp_kdump as kdump;

/// True on a thread where a panic is being caught by the library and turned into an error
/// (a dependency parsing a user-supplied file, such as a PDB). A program's panic hook can
/// skip reporting it: the error that follows says what happened.
pub fn panic_is_handled() -> bool {
    kernel::pdb::HANDLED_PANIC.with(|h| h.get())
}

/// Entry points into internal parsers, for fuzz targets. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    /// Decodes one stored RAM block (token stream or raw); true if it is well formed.
    pub fn decode_ram_block(data: &[u8]) -> bool {
        let mut out = vec![0u8; crate::BLOCK_SIZE];
        let mut stats = crate::EncodingStats::default();
        let ok = crate::ram::decode_block(data, &mut out, &mut stats).is_ok();
        let _ = crate::ram::zero_pages(data);
        ok
    }

    /// Reads the public symbols of a PDB (any build); the number read, if it parses.
    pub fn parse_pdb(data: &[u8]) -> Option<usize> {
        crate::kernel::pdb::Symbols::from_bytes(data)
            .ok()
            .map(|s| s.len())
    }

    /// Parses a `partition_state` value; true if it is well formed.
    pub fn parse_partition_state(data: &[u8]) -> bool {
        let ctx = crate::error::FileCtx::new(Path::new("partition_state"));
        crate::vcpu::parse(&ctx, data, 0).is_ok()
    }
}
