//! Any [`MemorySource`] -> Windows kernel crash dump.
//!
//! The output is laid out first (header, optional bitmap, every page's offset), created at its
//! final size under a temporary name, and filled by parallel workers: each decodes one RAM block
//! into its own buffer and writes the block's pages at their fixed offsets with positioned writes.
//! No lock on the hot path, no allocation per page.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rayon::prelude::*;
use vm2dmp_guest::context::cpu_context;
use vm2dmp_guest::{PagePatches, RootScan, Roots};
use vm2dmp_kdump::{consts, Arch, DumpHeaderInfo, DumpLayout, MemoryRun, PageBitmap};
use vm2dmp_source::{
    mask_has, Architecture, Cancel, ChunkSpan, CpuState, Error, InputFile, MemorySource, PageMask,
    Progress, RawChunk, Result, MAX_CHUNK_PAGES, PAGE_SIZE,
};

use crate::output::OutputFile;

/// Page layout of the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum DumpFormat {
    /// A full dump (DumpType 1) when the memory map fits the header's run list, else a bitmap
    /// dump holding every page.
    #[default]
    Auto,
    /// A full dump (DumpType 1): every RAM page, one run per RAM range.
    Full,
    /// A bitmap dump (DumpType 5).
    Bitmap,
}

/// Options of [`convert`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Page layout of the dump ([`DumpFormat::Auto`] by default).
    pub format: DumpFormat,
    /// Leave out pages that are all zero (implies a bitmap dump). Readers then report those
    /// pages as missing, not as zeros.
    pub skip_zero: bool,
    /// Replace an existing output file.
    pub force: bool,
    /// Text for the header's Comment field (ASCII, at most 127 bytes); default names the tool
    /// and the input.
    pub comment: Option<String>,
    /// The kernel's PDB (`ntkrnlmp.pdb`) or a local symbol-store folder; used when it matches
    /// the kernel found in guest memory.
    pub symbols: Option<PathBuf>,
    /// How decoded pages reach the file ([`WritePath::WriterThread`] by default).
    pub write_path: WritePath,
}

/// How a conversion's decoded pages reach the dump file. Both give the same bytes; they differ
/// in speed (benches/RESULTS-write-paths.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WritePath {
    /// One writer thread does every write and file-to-file copy, fed by the decoding workers
    /// through a bounded queue: the workers never wait on the output file's lock.
    #[default]
    WriterThread,
    /// Each decoding worker writes its own pages with positioned writes.
    Workers,
}

/// What a conversion did.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ConvertReport {
    /// The input files, main file first.
    pub input: Vec<PathBuf>,
    /// The dump written.
    pub output: PathBuf,
    /// 1 (full) or 5 (bitmap).
    pub dump_type: u32,
    /// Architecture of the dump: the boot vCPU's.
    pub architecture: Architecture,
    /// Pages of guest RAM.
    pub guest_pages: u64,
    /// Pages stored in the dump.
    pub pages_written: u64,
    /// All-zero pages left out (bitmap dumps with `skip_zero`).
    pub pages_skipped: u64,
    /// Size of the dump file.
    pub bytes: u64,
    /// Wall-clock time the conversion took, in seconds.
    pub seconds: f64,
    /// Guest RAM bytes converted per second.
    pub bytes_per_second: f64,
    /// `DirectoryTableBase` written in the header.
    pub directory_table_base: u64,
    /// `NumberProcessors` written in the header.
    pub number_processors: u32,
    /// `BugCheckCode` written in the header: the guest's bug-check code when it crashed
    /// (reported to the hypervisor, or found in `KiBugCheckData`), else 0x161
    /// (`LIVE_SYSTEM_DUMP`).
    pub bugcheck_code: u32,
    /// Things the user should know about the dump (fields left unknown, fallbacks taken).
    pub notes: Vec<String>,
}

const CR4_PAE: u64 = 1 << 5;

/// Highest guest page (exclusive) of a bitmap dump: 16 TiB of guest-physical space, a 512 MiB
/// bitmap. Hyper-V guests have at most 12 TiB of RAM.
const MAX_BITMAP_PAGES: u64 = 1 << 32;

/// The dump's architecture for the guest as its boot vCPU shows it.
fn dump_arch(vp: &CpuState) -> Arch {
    match vp.architecture() {
        Architecture::X64 => Arch::X64,
        Architecture::X86 => Arch::X86 {
            pae: vp.cr4 & CR4_PAE != 0,
        },
    }
}

/// The Comment a conversion writes for an input of kind `kind` ("Hyper-V saved state")
/// whose main file is named `input_name`.
fn default_comment(kind: &str, input_name: &str) -> String {
    format!("vm2dmp {}: {kind} {input_name}", env!("CARGO_PKG_VERSION"))
}

/// What of `comment` fits the header: ASCII, at most 127 bytes.
fn header_comment(comment: &str) -> String {
    comment.chars().filter(char::is_ascii).take(127).collect()
}

/// True when `dump` was written by a conversion of the input of kind `kind`
/// ([`MachineInfo::kind`](vm2dmp_source::MachineInfo::kind)) whose first file is `input` as
/// that file is now: the dump's Comment names it (the default Comment, whatever
/// version wrote it) and its SystemTime is the file's modification time. A dump of another
/// file with the same name, or of an earlier version of this one, does not match.
pub fn dump_matches_input(dump: &crate::dump::DumpFile, kind: &str, input: &Path) -> bool {
    let Some(name) = input.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return false;
    };
    let Some(mtime) = std::fs::metadata(input)
        .ok()
        .and_then(|m| m.modified().ok())
        .map(filetime)
    else {
        return false;
    };
    let info = dump.dump().info();
    // Compare what follows the version: "…: Hyper-V saved state NAME".
    let tail = |c: &str| c.split_once(": ").map(|(_, t)| t.to_owned());
    let want = tail(&header_comment(&default_comment(kind, &name)));
    info.system_time == mtime && want.is_some() && tail(&info.comment) == want
}

fn filetime(t: SystemTime) -> u64 {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| {
            UNIX_EPOCH_AS_FILETIME + d.as_secs() * 10_000_000 + u64::from(d.subsec_nanos() / 100)
        })
        .unwrap_or(0)
}

/// The header fields we can fill from the saved state, and notes on those we cannot.
fn header_info(
    state: &dyn MemorySource,
    opts: &ConvertOptions,
    notes: &mut Vec<String>,
) -> Result<(Arch, DumpHeaderInfo)> {
    let no_cpu = CpuState::default();
    let boot = state.boot_vcpu().unwrap_or_else(|| {
        notes.push("the input holds no processor state: the dump's context record is empty".into());
        &no_cpu
    });
    let arch = dump_arch(boot);
    let dtb = match arch {
        Arch::X64 => boot.cr3 & 0x000F_FFFF_FFFF_F000,
        Arch::X86 { pae: true } => boot.cr3 & 0xFFFF_FFE0,
        Arch::X86 { pae: false } => boot.cr3 & 0xFFFF_F000,
    };
    if !boot.paging_enabled() {
        notes.push(format!(
            "VP {} is in {} (CR0 {:#x}): no paged operating system was running, so no Windows kernel is present; the dump holds guest-physical memory only and DirectoryTableBase is meaningless",
            boot.index,
            boot.mode_description(),
            boot.cr0
        ));
    }
    let machine = state.machine();
    let (bugcheck_code, bugcheck_parameters) = match machine.guest_bugcheck {
        Some((code, params)) => {
            notes.push(format!(
                "the guest reported bug check {code:#x} to its hypervisor"
            ));
            (code, params)
        }
        None => (consts::LIVE_SYSTEM_DUMP, [0; 4]),
    };
    let input = state.files();
    let input_name = input
        .first()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let comment = opts
        .comment
        .clone()
        .unwrap_or_else(|| default_comment(&machine.kind, &input_name));
    let saved_at = input
        .first()
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok())
        .map_or(0, filetime);
    let info = DumpHeaderInfo {
        directory_table_base: dtb,
        number_processors: u32::try_from(state.vcpus().len()).unwrap_or(u32::MAX),
        bugcheck_code,
        bugcheck_parameters,
        system_time: saved_at,
        comment: header_comment(&comment),
        context: cpu_context(boot),
        ..DumpHeaderInfo::default()
    };
    Ok((arch, info))
}

/// Kernel discovery for a conversion, with RAM decoded once. Through the processors' CR3
/// values it costs a few page reads and is done before the pages are written; when it needs a
/// scan of guest RAM for page-table roots, the scan looks at the chunks as the conversion
/// decodes them ([`Discovery::Deferred`]) and discovery ends after the pass.
enum Discovery {
    /// The kernel was found (or cannot be: no paging), header fields filled.
    Done(PagePatches),
    /// The roots come from the conversion's pass.
    Deferred(RootScan),
}

fn start_discovery(
    state: &dyn MemorySource,
    opts: &ConvertOptions,
    arch: Arch,
    info: &mut DumpHeaderInfo,
    notes: &mut Vec<String>,
) -> Discovery {
    let symbols = opts.symbols.as_deref();
    let kernel = vm2dmp_guest::find_kernel_with(state, symbols, Roots::Skip);
    if !kernel.found() {
        if let Some(paging) = vm2dmp_guest::scan_paging(state) {
            return Discovery::Deferred(RootScan::new(state, paging));
        }
    }
    Discovery::Done(vm2dmp_guest::fill_header(
        state,
        &kernel,
        arch == Arch::X64,
        info,
        notes,
    ))
}

/// Ends a deferred discovery with the roots its scan found: fills the header fields and
/// returns the pages the dump stores patched.
fn finish_discovery(
    state: &dyn MemorySource,
    opts: &ConvertOptions,
    scan: RootScan,
    arch: Arch,
    info: &mut DumpHeaderInfo,
    notes: &mut Vec<String>,
) -> PagePatches {
    let roots = scan.roots(state);
    let kernel =
        vm2dmp_guest::find_kernel_with(state, opts.symbols.as_deref(), Roots::Given(roots));
    vm2dmp_guest::fill_header(state, &kernel, arch == Arch::X64, info, notes)
}

/// Writes patched pages over the pages the pass wrote (those the layout stores).
fn write_patches(
    out: &OutputFile,
    layout: &DumpLayout,
    patches: &PagePatches,
    notes: &mut Vec<String>,
) -> Result<()> {
    for (pfn, page) in patches.in_range(0, u64::MAX) {
        match layout.page_offset(*pfn) {
            Some(off) => out.write_at(&page[..], off)?,
            None => notes.push(format!(
                "guest page {pfn:#x} is left out of the dump (all zero in the saved state), so its patched contents are not written"
            )),
        }
    }
    Ok(())
}

/// Guest RAM as dump runs (touching ranges merged by the layout).
fn runs(state: &dyn MemorySource) -> Vec<MemoryRun> {
    state
        .ram_ranges()
        .iter()
        .map(|r| MemoryRun::new(r.gpa_page_start, r.page_count))
        .collect()
}

/// Zero-fill runs at least this long are left to the zeros the sized output already holds;
/// shorter ones are written with their neighbours, so that writes stay large.
const MIN_SKIPPED_ZERO_PAGES: usize = 16;

/// Writes the pages of one block span: each stretch of pages that is contiguous in the file
/// with one positioned write, leaving out long zero-fill runs.
fn write_span(
    out: &OutputFile,
    layout: &DumpLayout,
    pages: &[u8],
    zero_fill: &PageMask,
    span: &ChunkSpan,
) -> Result<()> {
    for_each_stretch(layout, span, |i, count, offset| {
        write_stretch(out, pages, zero_fill, span.page_in_chunk + i, count, offset)
    })
}

/// Copies the pages of one span of a raw block from the input file to the output inside the
/// kernel, a stretch at a time. `Ok(false)` when the platform or file systems cannot (then
/// nothing needs undoing: the caller writes the whole span, and bytes already copied are
/// written again with the same value).
fn copy_span(
    out: &OutputFile,
    layout: &DumpLayout,
    input: &InputFile,
    block_offset: u64,
    span: &ChunkSpan,
) -> Result<bool> {
    let mut copied = true;
    for_each_stretch(layout, span, |i, count, offset| {
        if copied {
            let from = block_offset + ((span.page_in_chunk + i) * PAGE_SIZE) as u64;
            copied = out.copy_from(input, from, (count * PAGE_SIZE) as u64, offset, "RAM block")?;
        }
        Ok(())
    })?;
    Ok(copied)
}

/// Calls `f(first page in span, page count, file offset)` for each stretch of the span's
/// pages that the dump stores one after another.
fn for_each_stretch(
    layout: &DumpLayout,
    span: &ChunkSpan,
    mut f: impl FnMut(usize, usize, u64) -> Result<()>,
) -> Result<()> {
    let mut i = 0usize;
    while i < span.pages {
        let pfn = span.gpa_page + i as u64;
        let Some(offset) = layout.page_offset(pfn) else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        if layout.span_offset(pfn, (span.pages - i) as u64).is_some() {
            j = span.pages;
        } else {
            while j < span.pages
                && layout.page_offset(span.gpa_page + j as u64)
                    == Some(offset + ((j - i) * PAGE_SIZE) as u64)
            {
                j += 1;
            }
        }
        f(i, j - i, offset)?;
        i = j;
    }
    Ok(())
}

/// Writes `count` pages of the block from `first` at `offset`, skipping long zero-fill runs.
fn write_stretch(
    out: &OutputFile,
    pages: &[u8],
    zero_fill: &PageMask,
    first: usize,
    count: usize,
    offset: u64,
) -> Result<()> {
    let write = |from: usize, to: usize| {
        out.write_at(
            &pages[(first + from) * PAGE_SIZE..(first + to) * PAGE_SIZE],
            offset + (from * PAGE_SIZE) as u64,
        )
    };
    let (mut start, mut k) = (0usize, 0usize);
    while k < count {
        if !mask_has(zero_fill, first + k) {
            k += 1;
            continue;
        }
        let zeros = k;
        while k < count && mask_has(zero_fill, first + k) {
            k += 1;
        }
        if k - zeros >= MIN_SKIPPED_ZERO_PAGES {
            if zeros > start {
                write(start, zeros)?;
            }
            start = k;
        }
    }
    if count > start {
        write(start, count)?;
    }
    Ok(())
}

/// Writes the patched pages among `spans` over the pages just written.
fn write_patches_in(
    out: &OutputFile,
    layout: &DumpLayout,
    patches: &PagePatches,
    spans: &[ChunkSpan],
) -> Result<()> {
    for span in spans {
        // Pages the dump stores changed (decoded KDBG, KPRCB contexts).
        for (pfn, page) in patches.in_range(span.gpa_page, span.pages as u64) {
            if let Some(off) = layout.page_offset(*pfn) {
                out.write_at(&page[..], off)?;
            }
        }
    }
    Ok(())
}

/// Guest bytes the spans cover.
fn span_bytes(spans: &[ChunkSpan]) -> u64 {
    spans.iter().map(|s| (s.pages * PAGE_SIZE) as u64).sum()
}

/// Copies a raw chunk's pages file to file (in the kernel where the platform can);
/// `Ok(false)` when it could not, and the pages must be written from decoded bytes.
fn copy_chunk(
    out: &OutputFile,
    layout: &DumpLayout,
    raw: &RawChunk<'_>,
    spans: &[ChunkSpan],
) -> Result<bool> {
    let mut copied = true;
    for span in spans {
        copied = copied && copy_span(out, layout, raw.file, raw.offset, span)?;
    }
    Ok(copied)
}

/// Writes the pages of decoded chunk `buf` at their offsets.
fn write_decoded(
    out: &OutputFile,
    layout: &DumpLayout,
    buf: &[u8],
    zero_fill: &PageMask,
    spans: &[ChunkSpan],
) -> Result<()> {
    for span in spans {
        write_span(out, layout, buf, zero_fill, span)?;
    }
    Ok(())
}

/// Writes the pages of chunk `n` (and the patched pages among them) at their offsets in the
/// dump from the calling worker; returns the guest bytes done. A chunk stored raw in an input
/// file is copied file to file inside the kernel where the platform can; any other is decoded
/// into `buf`.
fn write_chunk(
    state: &dyn MemorySource,
    n: usize,
    buf: &mut [u8],
    sink: &Sink<'_>,
    scan: Option<&RootScan>,
) -> Result<u64> {
    let spans = state.chunk_spans(n);
    if spans.is_empty() {
        return Ok(0);
    }
    let scanned = scan.filter(|s| s.wants(&spans));
    // A chunk the root scan looks at is decoded, even one stored raw, so that it is read once.
    let raw = state.raw_chunk(n).filter(|_| scanned.is_none());
    let copied = match raw {
        Some(r) => copy_chunk(sink.out, sink.layout, &r, &spans)?,
        None => false,
    };
    if !copied {
        let zero_fill = state.decode_chunk(n, buf)?;
        if let Some(scan) = scanned {
            scan.observe(buf, &spans);
        }
        write_decoded(sink.out, sink.layout, buf, &zero_fill, &spans)?;
    }
    write_patches_in(sink.out, sink.layout, sink.patches, &spans)?;
    Ok(span_bytes(&spans))
}

/// Where a pass writes: the output, its layout, and the pages stored patched.
struct Sink<'a> {
    out: &'a OutputFile,
    layout: &'a DumpLayout,
    patches: &'a PagePatches,
}

/// What a decoding worker hands the writer thread.
enum Job {
    /// Chunk `n` is stored raw: copy it file to file (or decode it, where that cannot be).
    Copy { n: usize, spans: Vec<ChunkSpan> },
    /// Decoded pages of a chunk.
    Pages {
        spans: Vec<ChunkSpan>,
        buf: Vec<u8>,
        zero_fill: PageMask,
    },
}

/// The conversion's pass over every chunk: decoded by the rayon workers, written by them
/// ([`WritePath::Workers`]) or by one writer thread they feed ([`WritePath::WriterThread`]).
fn pass(
    state: &dyn MemorySource,
    sink: &Sink<'_>,
    scan: Option<&RootScan>,
    path: WritePath,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<()> {
    if path == WritePath::Workers {
        return (0..state.chunk_count()).into_par_iter().try_for_each_init(
            || vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE],
            |buf, n| -> Result<()> {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                progress.advance(write_chunk(state, n, buf, sink, scan)?);
                Ok(())
            },
        );
    }
    // Bounded: at most this many decoded chunks wait for the writer (memory stays flat).
    let queue = 2 * rayon::current_num_threads();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
    let free: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
    let take_buf = || {
        free.lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE])
    };
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<()> {
            for job in rx {
                let (spans, buf) = match job {
                    Job::Copy { n, spans } => {
                        let copied = state
                            .raw_chunk(n)
                            .map(|r| copy_chunk(sink.out, sink.layout, &r, &spans))
                            .transpose()?
                            .unwrap_or(false);
                        if copied {
                            (spans, None)
                        } else {
                            let mut buf = take_buf();
                            let zero_fill = state.decode_chunk(n, &mut buf)?;
                            write_decoded(sink.out, sink.layout, &buf, &zero_fill, &spans)?;
                            (spans, Some(buf))
                        }
                    }
                    Job::Pages {
                        spans,
                        buf,
                        zero_fill,
                    } => {
                        write_decoded(sink.out, sink.layout, &buf, &zero_fill, &spans)?;
                        (spans, Some(buf))
                    }
                };
                write_patches_in(sink.out, sink.layout, sink.patches, &spans)?;
                progress.advance(span_bytes(&spans));
                if let Some(buf) = buf {
                    free.lock().unwrap_or_else(|p| p.into_inner()).push(buf);
                }
            }
            Ok(())
        });
        let decoded =
            (0..state.chunk_count())
                .into_par_iter()
                .try_for_each_with(tx, |tx, n| -> Result<()> {
                    if cancel.is_cancelled() {
                        return Err(Error::Cancelled);
                    }
                    let spans = state.chunk_spans(n);
                    if spans.is_empty() {
                        return Ok(());
                    }
                    let scanned = scan.filter(|s| s.wants(&spans));
                    let job = if scanned.is_none() && state.raw_chunk(n).is_some() {
                        Job::Copy { n, spans }
                    } else {
                        let mut buf = take_buf();
                        let zero_fill = state.decode_chunk(n, &mut buf)?;
                        if let Some(scan) = scanned {
                            scan.observe(&buf, &spans);
                        }
                        Job::Pages {
                            spans,
                            buf,
                            zero_fill,
                        }
                    };
                    // The writer stopped on an error: it is the one to report.
                    tx.send(job).map_err(|_| Error::Cancelled)
                });
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        // The writer's error first: a worker saw only that the writer stopped.
        written.and(decoded)
    })
}

/// Chooses the layout: full when possible and wanted, else bitmap (with zero pages left out
/// if asked).
fn plan(
    state: &dyn MemorySource,
    arch: Arch,
    opts: &ConvertOptions,
    patches: &PagePatches,
    notes: &mut Vec<String>,
    cancel: &Cancel,
) -> Result<DumpLayout> {
    let runs = runs(state);
    let layout_err = |e: vm2dmp_kdump::LayoutError| Error::Unsupported {
        path: state.files().first().cloned().unwrap_or_default(),
        detail: format!("guest memory map cannot be written as a kernel dump: {e}"),
    };
    let want_bitmap = opts.skip_zero || opts.format == DumpFormat::Bitmap;
    if !want_bitmap {
        match DumpLayout::full(arch, &runs) {
            Ok(l) => return Ok(l),
            Err(vm2dmp_kdump::LayoutError::TooManyRuns { runs, max }) => {
                notes.push(format!(
                    "the guest has {runs} RAM ranges, more than the {max} a full dump header holds: written as a bitmap dump"
                ));
            }
            Err(e) => return Err(layout_err(e)),
        }
    }
    let limit = runs
        .iter()
        .map(|r| r.base_page.saturating_add(r.page_count))
        .max()
        .unwrap_or(0);
    if limit > MAX_BITMAP_PAGES {
        return Err(Error::Unsupported {
            path: state.files().first().cloned().unwrap_or_default(),
            detail: format!(
                "guest RAM ends at page {limit:#x}; bitmap dumps are written for guests whose RAM ends below 16 TiB"
            ),
        });
    }
    let present = PageBitmap::new(limit);
    for r in &runs {
        present.set_range(r.base_page, r.page_count);
    }
    if opts.skip_zero {
        (0..state.chunk_count())
            .into_par_iter()
            .try_for_each(|n| -> Result<()> {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let spans = state.chunk_spans(n);
                if spans.is_empty() {
                    // Stored but outside every memory range: not part of the dump.
                    return Ok(());
                }
                let zero = state.zero_pages(n)?;
                for span in spans {
                    for i in 0..span.pages {
                        if mask_has(&zero, span.page_in_chunk + i) {
                            present.clear(span.gpa_page + i as u64);
                        }
                    }
                }
                Ok(())
            })?;
        for pfn in patches.pfns() {
            present.set(pfn);
        }
    }
    let layout = DumpLayout::bitmap(arch, &runs, present).map_err(layout_err)?;
    // What MemProcFS (LeechCore 2.23) opens: 64-bit bitmap dumps whose pages start within
    // the first 16 MiB of the file, 32-bit dumps only in full form.
    if arch != Arch::X64 {
        notes.push(
            "32-bit bitmap dump: WinDbg and volatility3 read it; MemProcFS reads 32-bit dumps only as full dumps that keep every page".into(),
        );
    } else if layout.data_offset() > MEMPROCFS_MAX_FIRST_PAGE {
        notes.push(format!(
            "the page bitmap of a guest whose RAM ends at {} GiB puts the first page at {} MiB in the file: MemProcFS opens bitmap dumps only when that is at most 16 MiB (RAM ending below about 511 GiB); WinDbg, volatility3 and kdmp-parser read it",
            (limit << 12) >> 30,
            layout.data_offset() >> 20
        ));
    }
    Ok(layout)
}

/// Largest `FirstPage` of a bitmap dump that LeechCore (MemProcFS) accepts.
const MEMPROCFS_MAX_FIRST_PAGE: u64 = 0x0100_0000;

/// Writes a kernel dump of `state` to `target`.
///
/// The file appears under `target` only when complete; on any error (or cancellation) nothing
/// is left there. `progress` receives guest RAM bytes as they are written.
pub fn convert(
    state: &dyn MemorySource,
    target: &Path,
    opts: &ConvertOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<ConvertReport> {
    let started = Instant::now();
    let mut notes = Vec::new();
    if target.exists() && !opts.force {
        return Err(Error::OutputExists {
            path: target.to_path_buf(),
        });
    }
    let (arch, mut info) = header_info(state, opts, &mut notes)?;
    let discovery = start_discovery(state, opts, arch, &mut info, &mut notes);
    let (patches, scan) = match discovery {
        Discovery::Done(p) => (p, None),
        Discovery::Deferred(scan) => (PagePatches::default(), Some(scan)),
    };
    let layout = plan(state, arch, opts, &patches, &mut notes, cancel)?;
    let size = layout.file_size();
    let out = OutputFile::create(target, size, size, opts.force)?;

    let guest_pages = state.ram_pages();
    progress.start("converting", guest_pages * PAGE_SIZE as u64);
    let sink = Sink {
        out: &out,
        layout: &layout,
        patches: &patches,
    };
    let result = pass(
        state,
        &sink,
        scan.as_ref(),
        opts.write_path,
        progress,
        cancel,
    );
    progress.finish();
    result?;
    if let Some(scan) = scan {
        let late = finish_discovery(state, opts, scan, arch, &mut info, &mut notes);
        write_patches(&out, &layout, &late, &mut notes)?;
    }
    // The header last: kernel discovery may have ended only after the pass.
    out.write_at(&layout.header_bytes(&info), 0)?;
    out.commit()?;
    let seconds = started.elapsed().as_secs_f64();
    let pages_written = layout.present_pages();
    Ok(ConvertReport {
        input: state.files(),
        output: target.to_path_buf(),
        dump_type: layout.dump_type(),
        architecture: match arch {
            Arch::X64 => Architecture::X64,
            Arch::X86 { .. } => Architecture::X86,
        },
        guest_pages,
        pages_written,
        pages_skipped: guest_pages.saturating_sub(pages_written),
        bytes: size,
        seconds,
        bytes_per_second: if seconds > 0.0 {
            (guest_pages * PAGE_SIZE as u64) as f64 / seconds
        } else {
            0.0
        },
        directory_table_base: info.directory_table_base,
        number_processors: info.number_processors,
        bugcheck_code: info.bugcheck_code,
        notes,
    })
}
