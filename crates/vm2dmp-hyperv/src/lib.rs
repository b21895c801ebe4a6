//! Hyper-V saved states: `.vmrs` files of Windows Server 2016 / Windows 10 and later (HVS
//! container) and `.vsv` + `.bin` pairs of Windows Server 2008 to 2012 R2 (legacy 0x500
//! container), recognised by their first bytes.
//!
//! [`SavedState`] reads the memory map, the RAM blocks (raw, or token streams of XPRESS pages
//! and fills) and the vCPU state of `partition_state`, and implements
//! [`vm2dmp_source::MemorySource`]: one chunk per 1 MiB RAM block. A dirty `.vmrs` (pending
//! replay-log entries) is replayed in memory, never on disk. [`list_keys`] lists every key of
//! any HVS or legacy file, memory or not.
//!
//! Every size, count and offset read from a file is checked before use; a bad file gives a
//! [`vm2dmp_source::Error`] naming the file, the structure and the offset.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod container;
mod hvs;
mod keys;
mod legacy;
mod memory_map;
mod pages;
mod ram;
mod state;
mod summary;
mod value;
mod vcpu;

pub use container::{is_saved_state, ConfigFile, ConfigValue};
pub use hvs::ReplayLogStatus;
pub use keys::{list_keys, list_keys_from_bytes, KeyData, KeyEntry, KeyListing};
pub use memory_map::{KeyFlavour, MemoryRange};
pub use pages::Pages;
pub use ram::EncodingStats;
pub use state::{InputFormat, OpenOptions, SavedState, KIND};
pub use summary::Summary;
pub use value::ValueType;
pub use vcpu::{PartitionState, VtlState};
pub use vm2dmp_formats::memory::{BLOCK_SIZE, PAGES_PER_BLOCK};
pub use vm2dmp_source::sibling_file;

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

    /// Parses a `partition_state` value; true if it is well formed.
    pub fn parse_partition_state(data: &[u8]) -> bool {
        let ctx = vm2dmp_source::FileCtx::new(Path::new("partition_state"));
        crate::vcpu::parse(&ctx, data, 0).is_ok()
    }
}
