//! The only place this crate creates memory maps.
#![allow(unsafe_code)]

use std::fs::File;

/// Maps `file` read-only.
pub(crate) fn map_read_only(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process. The file may still be changed
    // by another process while mapped (undefined contents, or SIGBUS if it is truncated); inputs
    // are evidence files copied off a host, not files being written, and every value read from
    // the map is validated before use, so changed contents can produce errors but not unsound
    // accesses beyond the mapping.
    unsafe { memmap2::MmapOptions::new().map(file) }
}
