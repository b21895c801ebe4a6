//! Reading kernel dumps (ours or Windows'), and checking a dump against its saved state.

use std::path::Path;

use rayon::prelude::*;
use vm2dmp_kdump::KernelDump;

use vm2dmp_source::{
    Cancel, Error, InputFile, MemorySource, Progress, Result, MAX_CHUNK_PAGES, PAGE_SIZE,
};

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
    /// Opens a kernel dump and parses its header (and run list or bitmap). Pages are read
    /// from the file when asked for, with positioned reads: a dump truncated while open gives
    /// an error, never a crash.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = InputFile::open(path)?;
        let len = file.len();
        let head = file.bytes(0, len.min(KernelDump::HEADER_PREFIX), "dump header")?;
        // Never more than the file: a bitmap longer than the file is reported by the parser
        // from what was read.
        let need = KernelDump::metadata_len(&head, len);
        let prefix = if need > head.len() as u64 && need <= len {
            file.bytes(0, need, "page bitmap")?
        } else {
            head
        };
        let dump = KernelDump::parse_prefix(&prefix, len).map_err(|source| Error::Dump {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self { file, dump })
    }

    /// The parsed header, runs or bitmap.
    pub fn dump(&self) -> &KernelDump {
        &self.dump
    }

    /// Path of the dump file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn dump_err(&self, source: vm2dmp_kdump::DumpError) -> Error {
        Error::Dump {
            path: self.path().to_path_buf(),
            source,
        }
    }

    /// True when the dump stores page `pfn`.
    pub fn has_page(&self, pfn: u64) -> bool {
        self.dump.page_file_offset(pfn).is_some()
    }

    /// Reads page `pfn` into `buf`; `Ok(false)` when the dump does not store it.
    pub fn read_page(&self, pfn: u64, buf: &mut [u8]) -> Result<bool> {
        self.read_pages(pfn, 1, buf)
    }

    /// Reads `count` consecutive pages from `pfn` into `buf` (`count` * 4096 bytes) when
    /// the dump stores all of them; `Ok(false)` when it lacks any. Pages stored one after
    /// another in the file take one read.
    pub fn read_pages(&self, pfn: u64, count: usize, buf: &mut [u8]) -> Result<bool> {
        self.dump
            .require_page_data()
            .map_err(|e| self.dump_err(e))?;
        let page = PAGE_SIZE as u64;
        let buf = count
            .checked_mul(PAGE_SIZE)
            .and_then(|n| buf.get_mut(..n))
            .ok_or_else(|| {
                self.dump_err(vm2dmp_kdump::DumpError::AddressOverflow {
                    gpa: pfn.wrapping_mul(page),
                    len: (count as u64).saturating_mul(page),
                })
            })?;
        if count == 0 {
            return Ok(true);
        }
        if let Some(off) = self.dump.stored_run(pfn, count as u64) {
            let data = self.file.bytes(off, buf.len() as u64, "dump page data")?;
            buf.copy_from_slice(&data);
            return Ok(true);
        }
        for (i, chunk) in buf.chunks_exact_mut(PAGE_SIZE).enumerate() {
            let Some(off) = self.dump.page_file_offset(pfn + i as u64) else {
                return Ok(false);
            };
            chunk.copy_from_slice(&self.file.bytes(off, page, "dump page data")?);
        }
        Ok(true)
    }

    /// The stored bytes of page `pfn`, if the dump holds it.
    pub fn page(&self, pfn: u64) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; PAGE_SIZE];
        matches!(self.read_page(pfn, &mut buf), Ok(true)).then_some(buf)
    }

    /// Reads physical memory from the dump; fails naming the first page it does not hold.
    pub fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        self.dump
            .require_page_data()
            .map_err(|e| self.dump_err(e))?;
        let len = buf.len() as u64;
        if gpa.checked_add(len).is_none() {
            return Err(self.dump_err(vm2dmp_kdump::DumpError::AddressOverflow { gpa, len }));
        }
        let page = PAGE_SIZE as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let addr = gpa + done as u64;
            let pfn = addr / page;
            let in_page = addr % page;
            let n = (page - in_page).min((buf.len() - done) as u64) as usize;
            let off = self.dump.page_file_offset(pfn).ok_or_else(|| {
                self.dump_err(vm2dmp_kdump::DumpError::PageNotPresent { pfn, gpa: addr })
            })?;
            let data = self.file.bytes(off + in_page, n as u64, "dump page data")?;
            buf[done..done + n].copy_from_slice(&data);
            done += n;
        }
        Ok(())
    }
}

/// Result of comparing a dump with the saved state it was made from.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    /// the KPRCBs), found again as the conversion found them: compared with the changed
    /// contents instead of the saved state's (a difference is a mismatch). Also counted in
    /// `pages_compared`.
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
    state: &dyn MemorySource,
    symbols: Option<&Path>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<VerifyReport> {
    dump.dump()
        .require_page_data()
        .map_err(|e| dump.dump_err(e))?;
    let patches = vm2dmp_guest::dump_patches(state, symbols);
    progress.start("verifying", state.ram_pages() * PAGE_SIZE as u64);
    let result = (0..state.chunk_count())
        .into_par_iter()
        .map_init(
            || vec![0u8; 2 * MAX_CHUNK_PAGES * PAGE_SIZE],
            |bufs, n| -> Result<VerifyReport> {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let mut r = VerifyReport::default();
                let spans = state.chunk_spans(n);
                if spans.is_empty() {
                    return Ok(r);
                }
                let (buf, got) = bufs.split_at_mut(MAX_CHUNK_PAGES * PAGE_SIZE);
                state.decode_chunk(n, buf)?;
                for span in spans {
                    // The span's pages in one read when the dump stores them together.
                    let whole = dump.read_pages(span.gpa_page, span.pages, got)?;
                    for i in 0..span.pages {
                        let pfn = span.gpa_page + i as u64;
                        let p = (span.page_in_chunk + i) * PAGE_SIZE;
                        let want = &buf[p..p + PAGE_SIZE];
                        // A page the conversion changes must hold the changed bytes.
                        let want = match patches.in_range(pfn, 1) {
                            [(_, page)] => {
                                r.patched_pages += 1;
                                &page[..]
                            }
                            _ => want,
                        };
                        r.pages_compared += 1;
                        let here = &mut got[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                        let stored = whole || dump.read_page(pfn, here)?;
                        match stored.then_some(&*here) {
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
