//! Windows kernel crash dump format: on-disk structures, a writer-side layout planner
//! and a reader.
//!
//! * [`structs`]: `DUMP_HEADER64`/`DUMP_HEADER32`, `PHYSICAL_MEMORY_DESCRIPTOR64/32`,
//!   `EXCEPTION_RECORD64/32`, x64/x86 `CONTEXT`, the bitmap summary header, each with
//!   explicit little-endian offsets checked at compile time.
//! * [`DumpLayout`]: decides where the header, bitmap and every page go, and produces
//!   the header bytes; the caller writes the pages (in parallel) at
//!   [`DumpLayout::page_offset`].
//! * [`KernelDump`]: parses any kernel dump (full or bitmap, 64- or 32-bit) from its
//!   bytes and locates and reads physical pages.
//!
//! The library performs no file I/O. Format reference: `docs/windows-crash-dump.md`.
//!
//! ```
//! use vm2dmp_kdump::{Arch, DumpHeaderInfo, DumpLayout, KernelDump, MemoryRun, PageBitmap};
//!
//! // Guest RAM: PFNs 1..0xA0 and 0x100..0x200; page 0x150 is left out.
//! let runs = [MemoryRun::new(1, 0x9F), MemoryRun::new(0x100, 0x100)];
//! let present = PageBitmap::new(0x200);
//! for r in &runs {
//!     present.set_range(r.base_page, r.page_count);
//! }
//! present.clear(0x150);
//! let layout = DumpLayout::bitmap(Arch::X64, &runs, present)?;
//!
//! let info = DumpHeaderInfo { directory_table_base: 0x1AD000, ..DumpHeaderInfo::default() };
//! let mut file = layout.header_bytes(&info);
//! file.resize(layout.file_size() as usize, 0);
//! for span in layout.present_spans() {
//!     // Pages `span.first_pfn..` go to `span.file_offset..`, contiguously.
//!     let at = span.file_offset as usize;
//!     file[at..at + 8].copy_from_slice(&span.first_pfn.to_le_bytes());
//! }
//!
//! let dump = KernelDump::parse(&file)?;
//! assert_eq!(dump.info().directory_table_base, 0x1AD000);
//! let mut buf = [0u8; 8];
//! dump.read_phys(&file, 0x100 << 12, &mut buf)?;
//! assert_eq!(u64::from_le_bytes(buf), 0x100);
//! assert!(dump.read_phys(&file, 0x150 << 12, &mut buf).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bitmap;
pub mod consts;
mod context;
mod error;
mod info;
mod layout;
mod le;
mod reader;
pub mod structs;

pub use bitmap::PageBitmap;
pub use context::CpuContext;
pub use error::{DumpError, LayoutError};
pub use info::{Arch, DumpHeaderInfo};
pub use layout::{coalesce_runs, normalize_runs, DumpLayout, MemoryRun, PageSpan, PresentSpans};
pub use le::LeField;
pub use reader::{BitmapInfo, ContextRecord, Header, KernelDump};
