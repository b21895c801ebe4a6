//! The seam between input formats and everything downstream of them.
//!
//! A [`MemorySource`] is a saved guest as the dump writer, the verifier and kernel discovery
//! see it: guest-physical RAM ranges, memory stored in *chunks* that parallel workers decode
//! into their own buffers, architecture-neutral processor state ([`CpuState`]) and what the
//! source knows about the machine ([`MachineInfo`]). A Hyper-V saved state is one
//! implementation; a flat memory image with registers is another.
//!
//! This crate also holds what every input reader shares: read-only [`InputFile`]s read with
//! positioned reads, the [`Error`] type naming file, structure and offset, little-endian
//! readers ([`le`]), and [`Progress`] / [`Cancel`] for long operations.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cpu;
mod error;
mod input;
pub mod le;
mod progress;
mod source;

pub use cpu::{
    Architecture, CpuState, DescriptorTable, FpState, Msrs, PagingMode, SegmentRegister,
};
pub use error::{Ambiguity, Error, FileCtx, Result};
pub use input::{sibling_file, CopyOutcome, InputFile, Patch};
pub use progress::{Cancel, NoProgress, Progress};
pub use source::{
    mask_has, range_chunks, ChunkSpan, MachineInfo, MemorySource, PageMask, RamRange, RawChunk,
    MAX_CHUNK_PAGES, PAGE_SIZE,
};
