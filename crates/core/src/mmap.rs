//! The only place this crate creates memory maps.
#![allow(unsafe_code)]

use std::fs::File;

/// Maps `file` read-only.
pub(crate) fn map_read_only(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process, and it is only handed out as
    // `&[u8]` borrowed from the `InputFile` that owns it. Another process may still change the
    // file while it is mapped: changed bytes are read as they are (every value read from the
    // map is validated before use, so they can produce errors but not out-of-bounds accesses),
    // and a page beyond the end of a file that has been truncated raises SIGBUS when touched.
    // That is why saved-state structures and RAM blocks are read with positioned reads
    // (`InputFile::bytes`), not through this map; it serves only callers that need the whole
    // file as one slice (`InputFile::raw`).
    unsafe { memmap2::MmapOptions::new().map(file) }
}
