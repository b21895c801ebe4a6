#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! Writes synthetic Hyper-V saved-state files, valid or deliberately broken, for tests
//! and benchmarks of the vm2dmp reader; [`kdump_file`] writes QEMU-style kdump-compressed
//! files (plain or flattened) for the vm2dmp-qemu reader.
//!
//! Two containers are written, following `docs/hyperv-saved-state.md` and the byte
//! conventions of the real sample in `testdata/hyperv-sample/`:
//!
//! * [`write_vmrs`]: an HVS `.VMRS` (format 0x400): two header copies, chained object
//!   tables, packed key tables, file objects, a replay log, and the keys
//!   `/savedstate/VmVersion`, `/savedstate/type`, `/savedstate/VmwpVersion`,
//!   `/savedstate/RamMemoryBlock<d>`, `/savedstate/RamBlock<n>`,
//!   `/savedstate/savedVM/partition_state`, `/savedstate/savedVM/topology/...` and a few
//!   `/configuration/...` keys.
//! * [`write_vsv_bin`]: the legacy 0x500 pair: `RamBlock/<n>/` in the `.bin`,
//!   `RamMemoryBlock/<d>/`, `/savedVM/partition_state` and the rest in the `.vsv`.
//!
//! The guest is described by a [`SynthVm`]: guest-physical [`SynthRange`]s (each starts
//! on a fresh 1 MiB RAM block, the tail of its last block is zero), virtual processors
//! ([`SynthVp`], with register sets laid out exactly as partition_state stores them),
//! and a [`PageSource`] that produces page contents on demand. Nothing is materialised:
//! blocks are encoded in parallel batches and streamed to disk, so a 16 GiB guest costs
//! a few MiB of memory. All-zero raw blocks are left as holes (sparse files).
//!
//! Each RAM block is stored as a raw 1 MiB value or a token stream ([`BlockEncoding`],
//! [`PagePolicy`]): the Hyper-V-like policy (fill-one tokens and compressed pages),
//! `Auto` (smallest), `Mixed` (every token kind in turn), or one forced kind.
//!
//! Every writer returns a [`SynthLayout`] that records where each structure went (header
//! copies, object tables and their entries, key tables, each key entry and value, every
//! RAM block, the chunks inside partition_state, the replay log). The [`corrupt`] module
//! patches a written file at such an offset, with or without fixing the checksum.
//!
//! # Conventions copied from the real sample
//!
//! Key names, types, nesting and insertion order; 12 bytes of slack after every
//! `/savedstate` leaf value and none elsewhere; the last entry of a key table absorbing
//! the table's tail (a free entry in the last table); a freed object near the start;
//! 227-entry first object table and 454-entry linked tables; a 0xD000-byte replay log
//! with a 0x1000-byte header area and already-applied entries; partition_state with the
//! `Vers`/`VpCt`/`HvSm`/`HvSt` items, the same chunk ids in the same order (219 chunks
//! for the sample's 4 VPs in a `.VMRS`, 201 in a `.vsv`) and 32 trailing zeros; RAM
//! blocks of zero pages byte-identical to the sample's; in the legacy pair, values
//! contiguous from 0x1000, allocations rounded to 4096 in the `.bin`, an internal data
//! table described by `InternalDataTable*` in the `.vsv`, inline values of up to 8 bytes.
//!
//! # Knobs for error paths
//!
//! * [`VmrsOptions::headers`]: sequence, format version, bad checksum or signature, or a
//!   different replay-log offset per header copy.
//! * [`VmrsOptions::pending_replay`]: journal structures as pending replay-log entries;
//!   the file body then holds [`VmrsOptions::pending_fill`] bytes until the log is applied.
//! * [`VmrsOptions::stale_replay`]: already-applied entries that match the body, or that
//!   would break it if replayed.
//! * [`VmrsOptions::stale_key_table_copy`]: a second key table with index 1 and a lower
//!   sequence.
//! * `omit_keys` / `extra_keys` in [`VmrsOptions`] and [`LegacyOptions`]: leave out
//!   `partition_state`, a `RamBlock`, a memory-map entry... or add keys of any type.
//! * [`SynthVm::block_encoding`]: per-block encodings; [`SynthVm::record_tokens`] records
//!   every token's offset so a test can break one token.
//! * [`PartitionOptions`]: `Bare` envelope, VTL order, boot VP, `VpCt` value, extra chunks.
//!
//! Structural problems that need no writer support (bad sizes, offsets, truncation, CRC
//! mismatches) are made after writing with [`corrupt`] at [`SynthLayout`] offsets.
//!
//! # Example
//!
//! ```
//! use vm2dmp_synth::{corrupt, write_vmrs, BlockEncoding, PagePolicy, SparsePages, SynthVm, SynthVp};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("guest.vmrs");
//!
//! // 4 MiB of RAM with one interesting page, two x64 VPs.
//! let mut pages = SparsePages::new();
//! pages.write(0x3000, b"hello from guest page 3");
//! let vm = SynthVm::with_ram_mib(4)
//!     .with_pages(pages)
//!     .with_vps(vec![
//!         SynthVp::x64_long_mode(0, 0x1AA000, 0xFFFFF800_00001000, 0xFFFFF800_00100000),
//!         SynthVp::x64_long_mode(1, 0x1AA000, 0xFFFFF800_00002000, 0xFFFFF800_00200000),
//!     ])
//!     .with_encoding(BlockEncoding::Tokens(PagePolicy::Mixed));
//! let layout = write_vmrs(&vm, &path).unwrap();
//! assert_eq!(layout.ram_blocks.len(), 4);
//!
//! // Break the active header's checksum: a reader must fall back to copy 1.
//! corrupt::flip_byte(&path, layout.header_offsets[0] + 20).unwrap();
//! // Or change VmVersion behind a valid entry checksum.
//! let k = layout.key("/savedstate/VmVersion");
//! corrupt::set_u64(&path, k.value_offset, 0x100).unwrap();
//! corrupt::fix_key_entry_crc(&path, k.entry_offset).unwrap();
//! ```

pub mod common;
pub mod corrupt;
pub mod encode;
pub mod hvs;
pub mod kdump_file;
mod keys;
pub mod layout;
pub mod legacy;
pub mod lz;
pub mod model;
pub mod options;
pub mod partition;
pub mod pdb;
pub mod vmware;

use std::io;
use std::path::Path;

pub use encode::{BlockEncoding, Compressor, PagePolicy, TokenCounts, TokenKind, TokenLoc};
pub use layout::{
    FileRole, KeyLoc, KeyTableLoc, LegacyFileLoc, ObjectLoc, ObjectTableLoc, RamBlockLoc,
    ReplayEntryLoc, ReplayLogLoc, SynthLayout,
};
pub use model::{
    ControlRegs, DebugRegs, FlatImage, FpRegs, GpRegs, MixedContent, PageSource, PlacedRange,
    Segment, SegmentRegs, SparsePages, SynthRange, SynthVm, SynthVp, TableReg, TableRegs, Vendor,
    VpState, ZeroPages, PAGE_SIZE,
};
pub use options::{
    BlockOrder, HeaderCopy, KeyValue, LegacyOptions, PartitionOptions, PartitionStyle,
    ReplayTarget, StaleReplay, VmrsOptions, VtlOrder,
};
pub use partition::{ChunkLoc, PartitionLayout};

/// Write `vm` as an HVS `.VMRS` file at `path` (created or truncated) and return where
/// every structure went.
///
/// Errors are I/O errors. Options that cannot be written panic: an alignment that is not a
/// power of two in 4096..=65536, a duplicate key, a key below a leaf, a name over 255
/// bytes, a key entry larger than a key table, more replay entries than the log header area
/// holds.
pub fn write_vmrs(vm: &SynthVm, path: impl AsRef<Path>) -> io::Result<SynthLayout> {
    hvs::write_vmrs(vm, path.as_ref())
}

/// Write `vm` as a legacy `.vsv` + `.bin` pair (both created or truncated) and return where
/// every structure went.
///
/// Errors are I/O errors. A duplicate name, or an index capacity smaller than the number of
/// keys, panics.
pub fn write_vsv_bin(
    vm: &SynthVm,
    vsv_path: impl AsRef<Path>,
    bin_path: impl AsRef<Path>,
) -> io::Result<SynthLayout> {
    legacy::write_vsv_bin(vm, vsv_path.as_ref(), bin_path.as_ref())
}

/// The partition_state value `vm` would get in a `.VMRS` (or a `.vsv` when `vsv` is set),
/// byte for byte as the writers store it, and its layout.
pub fn partition_state(vm: &SynthVm, vsv: bool) -> (Vec<u8>, PartitionLayout) {
    let flavor = if vsv {
        partition::ChunkFlavor::Vsv
    } else {
        partition::ChunkFlavor::Vmrs
    };
    partition::build(vm, flavor)
}
