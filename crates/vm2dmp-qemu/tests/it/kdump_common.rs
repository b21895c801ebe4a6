//! Helpers of the kdump tests.

use std::path::Path;

use vm2dmp_qemu::kdump::KdumpFile;
use vm2dmp_source::{Error, InputFile, MemorySource, Result, MAX_CHUNK_PAGES, PAGE_SIZE};
use vm2dmp_synth::kdump_file::{kdump_bytes, KdumpLayout, KdumpSpec};

/// Opens in-memory file bytes.
pub fn open(bytes: Vec<u8>) -> Result<KdumpFile> {
    KdumpFile::from_input(InputFile::from_bytes(Path::new("synth.kdump"), bytes))
}

/// Builds and opens `spec`.
pub fn build(spec: &KdumpSpec) -> (KdumpFile, Vec<u8>, KdumpLayout) {
    let (bytes, layout) = kdump_bytes(spec);
    let k = open(bytes.clone()).expect("a valid synthetic file opens");
    (k, bytes, layout)
}

/// Decodes every chunk; the first error, if any.
pub fn decode_all(k: &KdumpFile) -> Result<()> {
    let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
    for n in 0..k.chunk_count() {
        k.decode_chunk(n, &mut buf)?;
        k.zero_pages(n)?;
        let _ = k.raw_chunk(n);
    }
    Ok(())
}

/// The structure and offset of a corruption error; panics on any other result.
pub fn corrupt<T: std::fmt::Debug>(r: Result<T>) -> (&'static str, u64, String) {
    match r {
        Err(Error::Corrupt {
            structure,
            offset,
            detail,
            ..
        }) => (structure, offset, detail),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}
