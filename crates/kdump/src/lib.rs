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
