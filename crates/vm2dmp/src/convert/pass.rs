//! The conversion's pass over every chunk of guest memory: decoded by the rayon workers and
//! written at fixed offsets, by the workers themselves or by one writer thread they feed;
//! chunks stored raw copied file to file.

use rayon::prelude::*;
use vm2dmp_guest::{PagePatches, RootScan};
use vm2dmp_kdump::DumpLayout;
use vm2dmp_source::{
    mask_has, Cancel, ChunkSpan, Error, InputFile, MemorySource, PageMask, Progress, RawChunk,
    Result, MAX_CHUNK_PAGES, PAGE_SIZE,
};

use crate::output::OutputFile;

/// How a conversion's decoded pages reach the dump file. Both give the same bytes; they differ
/// in speed (benches/RESULTS-compressed.md: on 2 cores the workers' own positioned writes are
/// as fast on disk and faster in memory, where a writer thread competes with the decoders for
/// the cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WritePath {
    /// Each decoding worker writes its own pages with positioned writes.
    #[default]
    Workers,
    /// One writer thread does every write and file-to-file copy, fed by the decoding workers
    /// through a bounded queue: the workers never wait on the output file's lock.
    WriterThread,
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

/// Copies raw chunk `n` file to file; where that cannot be done (another platform, a file
/// system without in-kernel copies, replayed bytes), decodes it into `buf` and writes it.
fn copy_or_write(
    state: &dyn MemorySource,
    n: usize,
    raw: &RawChunk<'_>,
    spans: &[ChunkSpan],
    sink: &Sink<'_>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    if !copy_chunk(sink.out, sink.layout, raw, spans)? {
        buf.resize(MAX_CHUNK_PAGES * PAGE_SIZE, 0);
        let zero_fill = state.decode_chunk(n, buf)?;
        write_decoded(sink.out, sink.layout, buf, &zero_fill, spans)?;
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
    buf: &mut Vec<u8>,
    sink: &Sink<'_>,
    scan: Option<&RootScan>,
) -> Result<u64> {
    let spans = state.chunk_spans(n);
    if spans.is_empty() {
        return Ok(0);
    }
    let scanned = scan.filter(|s| s.wants(&spans));
    // A chunk the root scan looks at is decoded, even one stored raw, so that it is read once.
    match state.raw_chunk(n).filter(|_| scanned.is_none()) {
        Some(raw) => copy_or_write(state, n, &raw, &spans, sink, buf)?,
        None => {
            let zero_fill = state.decode_chunk(n, buf)?;
            if let Some(scan) = scanned {
                scan.observe(buf, &spans);
            }
            write_decoded(sink.out, sink.layout, buf, &zero_fill, &spans)?;
        }
    }
    write_patches_in(sink.out, sink.layout, sink.patches, &spans)?;
    Ok(span_bytes(&spans))
}

/// Where a pass writes: the output, its layout, and the pages stored patched.
pub(super) struct Sink<'a> {
    pub out: &'a OutputFile,
    pub layout: &'a DumpLayout,
    pub patches: &'a PagePatches,
}

/// What a decoding worker hands the writer thread.
enum Job<'a> {
    /// Chunk `n` is stored raw: copy it file to file (or decode it, where that cannot be).
    Copy {
        n: usize,
        raw: RawChunk<'a>,
        spans: Vec<ChunkSpan>,
    },
    /// Decoded pages of a chunk.
    Pages {
        spans: Vec<ChunkSpan>,
        buf: Vec<u8>,
        zero_fill: PageMask,
    },
}

/// The conversion's pass over every chunk: decoded by the rayon workers, written by them
/// ([`WritePath::Workers`]) or by one writer thread they feed ([`WritePath::WriterThread`]).
pub(super) fn pass(
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
            // For the raw chunks that cannot be copied file to file.
            let mut spare = Vec::new();
            for job in rx {
                let (spans, buf) = match job {
                    Job::Copy { n, raw, spans } => {
                        copy_or_write(state, n, &raw, &spans, sink, &mut spare)?;
                        (spans, None)
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
                    let raw = state.raw_chunk(n).filter(|_| scanned.is_none());
                    let job = if let Some(raw) = raw {
                        Job::Copy { n, raw, spans }
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

/// Writes patched pages over the pages the pass wrote (those the layout stores).
pub(super) fn write_patches(
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
