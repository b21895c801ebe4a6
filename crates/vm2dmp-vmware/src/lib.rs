//! VMware suspended states (`.vmss`) and snapshots (`.vmsn`), with the `.vmem` beside them
//! or the memory inside them, as a [`vm2dmp_source::MemorySource`].
//!
//! # The format, and where each fact comes from
//!
//! A VMware checkpoint is a 12-byte header (magic, a version word, a group count), a table
//! of named groups (64-byte name, offset of the group's tags, size) and, per group, a
//! stream of tags ending with two zero bytes. A tag has a flags byte (data size in the low
//! six bits, number of `u32` indices in the top two), a name-length byte, the name, the
//! indices and its data: a value of up to 61 bytes, or for sizes 62 (compressed) and 63
//! long data with its size on disk and in memory (32-bit fields when the magic's low
//! nibble is 0, else 64-bit), a 16-bit padding length and the padding. See [`format`](mod@format).
//!
//! * Magic values: crash `vmware_vmss.h` (0xbed0bed0 "old", 0xbed2bed2, 0xbed3bed3
//!   partial, 0xbad1bad1 restored, 0xbad2bad2 not to be restored); volatility3
//!   `layers/vmware.py` and Volatility 2 accept 0xbed2bed0, 0xbad1bad1, 0xbed2bed2 and
//!   0xbed3bed3. All six are accepted here.
//! * Tag encoding and long data: crash (`TAG_*` macros, block size, memory size and padding
//!   length), volatility3 and Volatility 2 (`_VMWARE_TAG`: the size-field width follows the
//!   magic's low nibble), illumos mdb's `vmss` module.
//! * Memory (the `memory` group): `regionsCount`, `regionPPN[i]`, `regionPageNum[i]`,
//!   `regionSize[i]` map guest pages to pages of the memory backing (crash, volatility3,
//!   Volatility 2, mdb); the backing is the `Memory` tag's long data when the state file
//!   has one with data (ESX; crash, Volatility 2, mdb), else the `.vmem` with the same stem
//!   (Workstation, Fusion; crash, volatility3). Without regions the backing is RAM from
//!   address 0. See [`memory`].
//! * Registers (the `cpu` group): see [`cpu`] for each tag and its source; what has no
//!   public description is left 0 and noted in [`vm2dmp_source::MachineInfo::notes`].
//!
//! Every count, size and offset read from the file is checked against the file's length
//! (or a cap) before it is used or sizes an allocation; a bad file gives
//! [`vm2dmp_source::Error::Corrupt`] naming the structure and its offset. Only the
//! `memory` and `cpu` groups are walked.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cpu;
pub mod format;
pub mod memory;
mod state;

pub use state::{is_vmware_state, MemoryLocation, VmwareState, KIND_SNAPSHOT, KIND_SUSPENDED};
