#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! What each fuzz target of vm2dmp does with an input, in one place: the cargo-fuzz targets
//! in `fuzz/fuzz_targets/` are one-line calls of the functions here, and the replay test
//! `crates/vm2dmp/tests/it/fuzz_regressions.rs` calls the same functions on the seeds
//! (`fuzz/seeds/<target>/`) and on the inputs a target once failed on
//! (`testdata/fuzz-regressions/<target>/`), on the stable toolchain.
//!
//! One function per target, named after it: for Hyper-V [`vmrs_open`], [`vsv_bin_open`]
//! (container parse), [`ram_block`] (RAM block decode), [`partition_state`], [`xpress`]; for
//! the other hypervisors' formats [`elf_core_open`], [`diskdump_open`], [`vmware_open`],
//! [`raw_open`] (container parse) and [`diskdump_page`] (page decode); for what every source
//! shares [`convert`] (kernel discovery, conversion and verification of tiny guests held in
//! memory), [`page_tables`], [`kdump_parse`] (the dump reader) and [`pdb_symbols`]. Each
//! panics when the library breaks a promise (a panic of its own, a dump that does not verify,
//! decoders that disagree, a source whose chunks do not cover its RAM) and returns what the
//! replay test counts; the fuzz targets ignore the return values.
//!
//! Parsing a container, decoding its blocks and converting are separate targets so that each
//! runs at the rate of what it fuzzes. The replay test also converts every seed that opens
//! (`open_*` and [`convert_and_verify`]).
//!
//! Shared pieces: [`exercise`] and [`exercise_source`] (what is read from an input that
//! opens), [`convert_and_verify`], [`FlatGuest`] (a memory source with no container, the
//! `convert` target's guests), [`fix_hvs_checksums`] (lets mutated HVS files past their CRC-32
//! fields). The `fuzz/examples` programs use them too.

mod checksums;
mod flat;
mod state;
mod targets;

pub use checksums::fix_hvs_checksums;
pub use flat::FlatGuest;
pub use state::{
    convert_and_verify, convert_and_verify_as, exercise, exercise_source, MAX_DECODED_CHUNKS,
};
pub use targets::{
    convert, diskdump_open, diskdump_page, elf_core_open, kdump_parse, open_diskdump,
    open_elf_core, open_raw, open_vmrs, open_vmware, open_vsv_bin, page_tables, partition_state,
    pdb_symbols, ram_block, raw_open, tiny_guest, vmrs_open, vmware_open, vsv_bin_open, xpress,
    TINY_GUEST_HEADER, TINY_GUEST_MAX_BYTES,
};
