//! Turn saved guest memory into Windows kernel crash dumps that WinDbg, volatility3,
//! kdmp-parser and MemProcFS open.
//!
//! The crate is a facade over one crate per concern, each re-exported as a module:
//!
//! | module | what it holds |
//! |---|---|
//! | [`source`] | the [`MemorySource`] trait every input implements, processor state, errors, input files |
//! | [`input`] | any input by its content: [`input::Input`] is one of the formats below, itself a [`MemorySource`] |
//! | [`hyperv`] | Hyper-V saved states: `.vmrs` (HVS) and `.vsv` + `.bin` (0x500), keys, replay log |
//! | [`qemu`] | QEMU / KVM and VirtualBox: ELF cores, kdump-compressed files (plain and flattened) |
//! | [`vmware`] | VMware suspended (`.vmss`) and snapshot (`.vmsn`) state with its `.vmem` |
//! | [`raw`] | raw physical memory images, with a memory map; registers read from the KPRCBs |
//! | [`folders`] | Hyper-V VM folders: VMs, checkpoints, their configurations and memory files |
//! | [`guest`] | guest introspection: page tables, the Windows kernel found without symbols, PDBs |
//! | [`kdump`] | kernel-dump headers, layout planner and reader |
//! | [`convert`](mod@convert) | a source to a dump: full or bitmap, parallel, never a half-written file |
//! | [`dump`] | reading any kernel dump, and verifying one against its source |
//! | [`hash`] | SHA-256 of input files and dumps |
//! | [`output`] | the dump file being written: sized up front, renamed only when complete |
//!
//! Conversion, verification and kernel discovery take any [`MemorySource`]: a reader for
//! another input format plugs in by implementing it. [`input::Input::open`] opens any file
//! vm2dmp reads, whatever its format:
//!
//! ```no_run
//! use vm2dmp::input::{Input, OpenOptions};
//! use vm2dmp::MemorySource;
//!
//! let guest = Input::open("guest.elf", &OpenOptions::default())?; // QEMU ELF core
//! println!("{}: {} pages, {} processors", guest.machine().kind, guest.ram_pages(), guest.vcpus().len());
//! # Ok::<(), vm2dmp::Error>(())
//! ```
//!
//! ```no_run
//! use vm2dmp::{convert, Cancel, ConvertOptions, MemorySource, NoProgress, SavedState};
//!
//! let state = SavedState::open("vm.vmrs")?;
//! for r in state.ram_ranges() {
//!     println!("RAM {:#x}..{:#x}", r.gpa_start(), r.gpa_end());
//! }
//! let vp0 = &state.vcpus()[0];
//! println!("VP0 RIP {:#x} CR3 {:#x} ({})", vp0.rip, vp0.cr3, vp0.mode_description());
//! let mut buf = [0u8; 12];
//! state.read_phys(0xC0FFE, &mut buf)?;
//! let report = convert(
//!     &state,
//!     "vm.dmp".as_ref(),
//!     &ConvertOptions::default(),
//!     &NoProgress,
//!     &Cancel::new(),
//! )?;
//! println!("{} pages written", report.pages_written);
//! # Ok::<(), vm2dmp::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod convert;
pub mod dump;
pub mod hash;
#[cfg(feature = "serde")]
pub mod info;
pub mod input;
pub mod output;
pub mod raw;

pub use vm2dmp_folders as folders;
pub use vm2dmp_guest as guest;
pub use vm2dmp_hyperv as hyperv;
pub use vm2dmp_kdump as kdump;
pub use vm2dmp_qemu as qemu;
pub use vm2dmp_source as source;
pub use vm2dmp_vmware as vmware;

pub use convert::{convert, ConvertOptions, ConvertReport, DumpFormat, WritePath};
pub use dump::{verify, DumpFile, VerifyReport};
pub use hyperv::SavedState;
pub use source::{Cancel, CpuState, Error, MemorySource, NoProgress, Progress, Result};
