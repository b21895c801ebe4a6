//! Guest introspection over any [`MemorySource`]: x86/x64 page tables ([`translate`]), the
//! Windows kernel found in guest memory without symbols or with them ([`find_kernel`]), and
//! the changes a crash-dump writer makes to guest memory in the dump
//! (docs/windows-crash-dump.md §6): a decoded `KDBG`, `KdpDataBlockEncoded` cleared, every
//! vCPU's registers in its KPRCB.
//!
//! Nothing here fails: what cannot be found is reported as not found, with the reason.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod context;
mod discover;
mod header;
mod image_search;
mod info;
pub mod kdbg;
mod kdbg_search;
mod kpcr;
pub mod kprcb;
mod patch;
pub mod pdb;
pub mod pe;
mod root_scan;
pub mod translate;

pub use root_scan::{scan_for_dtbs, RootScan};

use vm2dmp_source::MemorySource;

pub use discover::{find_kernel, find_kernel_with, scan_paging, Roots};
pub use header::fill_header;
pub use info::{Finding, KernelInfo, Method};
pub(crate) use patch::build_patches;
pub use patch::PagePatches;

/// Guest pages a dump of `state` stores changed (decoded `KDBG`, `KdpDataBlockEncoded`
/// cleared, KPRCB register contexts), ascending: where a dump may rightly differ from the saved
/// state. Empty when no Windows kernel is found.
pub fn dump_patched_pages(state: &dyn MemorySource, symbols: Option<&std::path::Path>) -> Vec<u64> {
    dump_patches(state, symbols).pfns().collect()
}

/// The pages a conversion changes in the dump, with their contents.
pub fn dump_patches(state: &dyn MemorySource, symbols: Option<&std::path::Path>) -> PagePatches {
    let kernel = find_kernel(state, symbols);
    build_patches(state, &kernel, &context::cpu_context).0
}

/// True on a thread where a panic is being caught by this crate and turned into an error (the
/// `pdb` crate parsing a user-supplied PDB). A program's panic hook can skip reporting it: the
/// error that follows says what happened.
pub fn panic_is_handled() -> bool {
    pdb::HANDLED_PANIC.with(|h| h.get())
}

/// Entry points into internal parsers, for fuzz targets. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Reads the public symbols of a PDB (any build); the number read, if it parses.
    pub fn parse_pdb(data: &[u8]) -> Option<usize> {
        crate::pdb::Symbols::from_bytes(data).ok().map(|s| s.len())
    }
}
