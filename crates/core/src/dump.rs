//! Reading kernel dumps (ours or Windows'), and checking a dump against its saved state.

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;
use vm2dmp_formats::memory::{BLOCK_SIZE, PAGE_SIZE};
use vm2dmp_kdump::KernelDump;

use crate::error::{Error, Result};
use crate::input::InputFile;
use crate::progress::{Cancel, Progress};
use crate::state::SavedState;

/// A kernel dump file opened read-only.
pub struct DumpFile {
    file: InputFile,
    dump: KernelDump,
}

impl std::fmt::Debug for DumpFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpFile")
            .field("path", &self.file.path())
            .field("dump_type", &self.dump.dump_type())
            .finish()
    }
}

/// True when the file starts like a kernel dump (`PAGEDU64` or `PAGEDUMP`).
pub fn is_kernel_dump(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
        && (&b == b"PAGEDU64" || &b == b"PAGEDUMP")
}

impl DumpFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = InputFile::open(path)?;
        let dump = KernelDump::parse(file.raw()).map_err(|source| Error::Dump {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self { file, dump })
    }

    /// The parsed header, runs or bitmap.
    pub fn dump(&self) -> &KernelDump {
        &self.dump
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The stored bytes of page `pfn`, if the dump holds it.
    pub fn page(&self, pfn: u64) -> Option<&[u8]> {
        self.dump.page(self.file.raw(), pfn).ok()
    }

    /// Reads physical memory from the dump.
    pub fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        self.dump
            .read_phys(self.file.raw(), gpa, buf)
            .map_err(|source| Error::Dump {
                path: self.path().to_path_buf(),
                source,
            })
    }
}

/// Result of comparing a dump with the saved state it was made from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Guest pages compared.
    pub pages_compared: u64,
    /// Pages whose bytes differ.
    pub mismatched_pages: u64,
    /// Guest pages absent from the dump that are all zero in the saved state (a bitmap dump
    /// written with zero pages left out).
    pub absent_zero_pages: u64,
    /// Guest pages absent from the dump that hold data: always an error.
    pub absent_nonzero_pages: u64,
    /// Pages the dump holds outside guest RAM.
    pub extra_pages: u64,
    /// Pages the converter deliberately changes in the dump (decoded KDBG, per-vCPU contexts in
    /// the KPRCBs): compared against the patched contents, not counted as mismatches.
    pub patched_pages: u64,
    /// The first few differing or missing page numbers.
    pub first_bad_pages: Vec<u64>,
}

impl VerifyReport {
    /// The dump holds every guest page's bytes (zero pages may be absent).
    pub fn ok(&self) -> bool {
        self.mismatched_pages == 0 && self.absent_nonzero_pages == 0 && self.extra_pages == 0
    }

    fn merge(mut self, o: VerifyReport) -> VerifyReport {
        self.pages_compared += o.pages_compared;
        self.mismatched_pages += o.mismatched_pages;
        self.absent_zero_pages += o.absent_zero_pages;
        self.absent_nonzero_pages += o.absent_nonzero_pages;
        self.extra_pages += o.extra_pages;
        self.patched_pages += o.patched_pages;
        self.first_bad_pages.extend(o.first_bad_pages);
        self.first_bad_pages.sort_unstable();
        self.first_bad_pages.truncate(MAX_LISTED);
        self
    }
}

const MAX_LISTED: usize = 16;

/// Compares every guest page of `state` with `dump`. Pages that a conversion patches (found
/// with `symbols` as the conversion did) are reported apart and not compared.
pub fn verify(
    dump: &DumpFile,
    state: &SavedState,
    symbols: Option<&Path>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<VerifyReport> {
    let mut patched = crate::kernel::dump_patched_pages(state, symbols);
    patched.sort_unstable();
    progress.start("verifying", state.ram_pages() * PAGE_SIZE as u64);
    let result = (0..state.ram_block_count())
        .into_par_iter()
        .map_init(
            || vec![0u8; BLOCK_SIZE],
            |buf, n| -> Result<VerifyReport> {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let mut r = VerifyReport::default();
                let spans = state.block_spans(n);
                if spans.is_empty() {
                    return Ok(r);
                }
                state.decode_block(n, buf)?;
                for span in spans {
                    for i in 0..span.pages {
                        let pfn = span.gpa_page + i as u64;
                        let p = (span.page_in_block + i) * PAGE_SIZE;
                        let want = &buf[p..p + PAGE_SIZE];
                        if patched.binary_search(&pfn).is_ok() {
                            r.patched_pages += 1;
                            continue;
                        }
                        r.pages_compared += 1;
                        match dump.page(pfn) {
                            Some(got) if got == want => {}
                            Some(_) => {
                                r.mismatched_pages += 1;
                                r.first_bad_pages.push(pfn);
                            }
                            None if want.iter().all(|&b| b == 0) => r.absent_zero_pages += 1,
                            None => {
                                r.absent_nonzero_pages += 1;
                                r.first_bad_pages.push(pfn);
                            }
                        }
                    }
                    progress.advance((span.pages * PAGE_SIZE) as u64);
                }
                r.first_bad_pages.truncate(MAX_LISTED);
                Ok(r)
            },
        )
        .try_reduce(VerifyReport::default, |a, b| Ok(a.merge(b)));
    progress.finish();
    let mut report = result?;
    report.extra_pages = dump
        .dump()
        .present_pfns()
        .filter(|&pfn| state.range_of(pfn).is_none())
        .count() as u64;
    Ok(report)
}
