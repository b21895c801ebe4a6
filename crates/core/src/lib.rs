//! Read Hyper-V saved states and checkpoint memory, and write Windows kernel crash dumps.
//!
//! Supported inputs, recognised by their first bytes:
//! - `.vmrs` files of Windows Server 2016 / Windows 10 and later (HVS container);
//! - `.vsv` + `.bin` pairs of Windows Server 2008 to 2012 R2 and configuration-version-5.0 VMs
//!   (legacy 0x500 container). Opening either file finds the other beside it.
//!
//! Inputs are opened read-only and memory-mapped; every size, count and offset read from them
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
#![deny(unsafe_code)]

mod container;
mod convert;
mod dump;
mod error;
mod hvs;
mod input;
mod legacy;
mod mmap;
mod output;
mod progress;
mod ram;
mod state;
mod vcpu;

pub use container::ValueType;
pub use convert::{convert, ConvertOptions, ConvertReport, DumpFormat};
pub use dump::{is_kernel_dump, verify, DumpFile, VerifyReport};
pub use error::{Error, Result};
pub use hvs::ReplayLogStatus;
pub use output::OutputFile;
pub use progress::{Cancel, NoProgress, Progress};
pub use ram::EncodingStats;
pub use state::{
    BlockSpan, InputFormat, KeyFlavour, MemoryRange, OpenOptions, Pages, SavedState, Summary,
};
pub use vcpu::{
    Architecture, DescriptorTable, FpState, PagingMode, PartitionState, SegmentRegister, VpState,
};
pub use vm2dmp_formats::memory::{BLOCK_SIZE, PAGES_PER_BLOCK, PAGE_SIZE};
/// The kernel-dump format layer (headers, layout, reader).
pub use vm2dmp_kdump as kdump;
