#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! What each fuzz target of vm2dmp does with an input, in one place: the cargo-fuzz targets
//! in `fuzz/fuzz_targets/` are one-line calls of the functions here, and the replay test
//! `crates/vm2dmp/tests/it/fuzz_regressions.rs` calls the same functions on the seeds
//! (`fuzz/seeds/<target>/`) and on the inputs a target once failed on
//! (`testdata/fuzz-regressions/<target>/`), on the stable toolchain.
//!
//! One function per target, named after it: [`vmrs_open`], [`vsv_bin_open`], [`ram_block`],
//! [`partition_state`], [`xpress`], [`kdump_parse`], [`page_tables`], [`kernel`],
//! [`pdb_symbols`], and for the other hypervisors' formats [`elf_core_open`],
//! [`diskdump_open`], [`diskdump_page`], [`vmware_open`], [`raw_open`]. Each panics when the library breaks a promise (a panic of its own, a dump
//! that does not verify, decoders that disagree) and returns what the replay test counts; the
//! fuzz targets ignore the return values.
//!
//! Shared pieces: [`exercise`] and [`convert_and_verify`] (what is done with a saved state
//! that opens), [`fix_hvs_checksums`] (lets mutated HVS files past their CRC-32 fields) and
//! [`KernelTemplate`] (the saved state the `kernel` target patches its input into). The
//! `fuzz/examples` programs use them too.

mod checksums;
mod state;
mod targets;
mod template;

pub use checksums::fix_hvs_checksums;
pub use state::{convert_and_verify, exercise, exercise_source, MAX_DECODED_BLOCKS};
pub use targets::{
    diskdump_open, diskdump_page, elf_core_open, kdump_parse, kernel, page_tables, partition_state,
    pdb_symbols, ram_block, raw_open, vmrs_open, vmware_open, vsv_bin_open, xpress,
};
pub use template::KernelTemplate;
