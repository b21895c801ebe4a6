//! QEMU/KVM and VirtualBox guest memory dumps as a [`MemorySource`](vm2dmp_source::MemorySource).
//!
//! - ELF cores written by QEMU's `dump-guest-memory` (and `virsh dump --memory-only`) or by
//!   VirtualBox's `dumpvmcore`: guest RAM from the PT_LOAD segments by guest-physical address,
//!   processor state from the notes ([`elf`], [`notes`]).
//! - kdump-compressed files (makedumpfile's diskdump layout) that QEMU writes with
//!   `dump-guest-memory -z/-l/-s`, plain or in makedumpfile's flattened stream form
//!   ([`kdump`], [`flat`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod elf;
pub mod flat;
pub mod kdump;
pub mod notes;
