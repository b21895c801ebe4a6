//! Any [`MemorySource`] -> Windows kernel crash dump.
//!
//! The output is laid out first (header, optional bitmap, every page's offset), created at its
//! final size under a temporary name, and filled by parallel workers: each decodes one RAM block
//! into its own buffer and writes the block's pages at their fixed offsets with positioned writes.
//! No lock on the hot path, no allocation per page.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rayon::prelude::*;
use vm2dmp_guest::context::cpu_context;
use vm2dmp_guest::{PagePatches, RootScan, Roots};
use vm2dmp_kdump::{consts, Arch, DumpHeaderInfo, DumpLayout, MemoryRun, PageBitmap};
use vm2dmp_source::{
    mask_has, Architecture, Cancel, CpuState, Error, MemorySource, Progress, Result, PAGE_SIZE,
};

use crate::output::OutputFile;

mod pass;

pub use pass::WritePath;
use pass::{pass, write_patches, Sink};

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
    /// How decoded pages reach the file ([`WritePath::Workers`] by default).
    pub write_path: WritePath,
    /// The input was opened without replaying its pending log entries (`--no-replay`). It
    /// changes the pages only of a dirty input; it is recorded in the default Comment, like
    /// the other settings that change a dump's bytes, so that [`dump_origin`] tells a dump made
    /// this way from one made from the replayed state.
    pub no_replay: bool,
    /// Compute the SHA-256 of every input file and of the dump
    /// ([`ConvertReport::input_sha256`], [`ConvertReport::output_sha256`]); see
    /// [`crate::hash`] for how the bytes are read.
    pub hash: bool,
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
    /// SHA-256 (lowercase hex) of each input file, keyed by the path as in `input`, when
    /// [`ConvertOptions::hash`] asked for it.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub input_sha256: Option<BTreeMap<PathBuf, String>>,
    /// SHA-256 (lowercase hex) of the dump file, when [`ConvertOptions::hash`] asked for it.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub output_sha256: Option<String>,
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

/// The settings recorded in the default Comment: those that change a dump's bytes for the
/// same input (`--format full` and `auto` give the same bytes, so only `bitmap` is named).
fn settings_tag(opts: &ConvertOptions) -> String {
    let mut tags = Vec::new();
    if opts.skip_zero {
        tags.push("skip-zero");
    } else if opts.format == DumpFormat::Bitmap {
        tags.push("bitmap");
    }
    if opts.symbols.is_some() {
        tags.push("symbols");
    }
    if opts.no_replay {
        tags.push("no-replay");
    }
    tags.join(" ")
}

/// The Comment a conversion writes for an input of kind `kind` ("Hyper-V saved state")
/// whose main file is named `input_name`: `vm2dmp VERSION: KIND NAME`, with the settings that
/// change the bytes after the version when there are any (`vm2dmp 0.1.0 [skip-zero]: ...`).
/// Nothing in it depends on the machine, the folder of the input or the time of the run.
fn default_comment(kind: &str, input_name: &str, opts: &ConvertOptions) -> String {
    let tag = settings_tag(opts);
    let version = env!("CARGO_PKG_VERSION");
    if tag.is_empty() {
        format!("vm2dmp {version}: {kind} {input_name}")
    } else {
        format!("vm2dmp {version} [{tag}]: {kind} {input_name}")
    }
}

/// What of `comment` fits the header: ASCII, at most 127 bytes.
fn header_comment(comment: &str) -> String {
    comment.chars().filter(char::is_ascii).take(127).collect()
}

/// Splits a default Comment into its settings and what follows the version (`KIND NAME`).
fn comment_parts(comment: &str) -> Option<(&str, &str)> {
    let (head, tail) = comment.split_once(": ")?;
    let settings = head
        .split_once(" [")
        .map_or("", |(_, s)| s.trim_end_matches(']'));
    Some((settings, tail))
}

/// Whether an existing dump was made from an input, and how ([`dump_origin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpOrigin {
    /// Made from this input file as it is now, with the same settings: a conversion with
    /// these options would write the same bytes.
    Same,
    /// Made from this input file as it is now, but with other settings (format, zero pages,
    /// symbols, replay): its bytes differ from what these options write.
    OtherSettings {
        /// The settings the dump's Comment records (`""`: the defaults).
        recorded: String,
        /// The settings of these options.
        wanted: String,
    },
    /// Not made from this input file as it is now (another file of that name, an older copy
    /// of it, a custom Comment, or not one of our dumps).
    Other,
}

/// How `dump` relates to a conversion of the input of kind `kind`
/// ([`MachineInfo::kind`](vm2dmp_source::MachineInfo::kind)) whose first file is `input` as
/// that file is now, with `opts`: its default Comment (whatever version wrote it) names the
/// file, its SystemTime is the file's modification time, and its Comment records the same
/// settings ([`DumpOrigin::Same`]) or others ([`DumpOrigin::OtherSettings`]).
pub fn dump_origin(
    dump: &crate::dump::DumpFile,
    kind: &str,
    input: &Path,
    opts: &ConvertOptions,
) -> DumpOrigin {
    let Some(name) = input.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return DumpOrigin::Other;
    };
    let Some(mtime) = std::fs::metadata(input)
        .ok()
        .and_then(|m| m.modified().ok())
        .map(filetime)
    else {
        return DumpOrigin::Other;
    };
    let info = dump.dump().info();
    let want = header_comment(&default_comment(kind, &name, opts));
    let (Some((want_settings, want_tail)), Some((got_settings, got_tail))) =
        (comment_parts(&want), comment_parts(&info.comment))
    else {
        return DumpOrigin::Other;
    };
    if info.system_time != mtime || got_tail != want_tail {
        DumpOrigin::Other
    } else if got_settings != want_settings {
        DumpOrigin::OtherSettings {
            recorded: got_settings.to_owned(),
            wanted: want_settings.to_owned(),
        }
    } else {
        DumpOrigin::Same
    }
}

/// True when [`dump_origin`] is [`DumpOrigin::Same`]: `dump` is what a conversion of `input`
/// as it is now with `opts` writes. A dump of another file with the same name, of an earlier
/// version of this one, or made with other settings does not match.
pub fn dump_matches_input(
    dump: &crate::dump::DumpFile,
    kind: &str,
    input: &Path,
    opts: &ConvertOptions,
) -> bool {
    dump_origin(dump, kind, input, opts) == DumpOrigin::Same
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
    if !boot.paging_enabled() && !state.vcpus().is_empty() {
        notes.push(format!(
            "VP {} is in {} (CR0 {:#x}): no paged operating system was running, so no Windows kernel is present; the dump holds guest-physical memory only and DirectoryTableBase is meaningless",
            boot.index,
            boot.mode_description(),
            boot.cr0
        ));
    }
    let machine = state.machine();
    notes.extend(machine.notes.iter().cloned());
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
        .unwrap_or_else(|| default_comment(&machine.kind, &input_name, opts));
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

/// Guest RAM as dump runs (touching ranges merged by the layout).
fn runs(state: &dyn MemorySource) -> Vec<MemoryRun> {
    state
        .ram_ranges()
        .iter()
        .map(|r| MemoryRun::new(r.gpa_page_start, r.page_count))
        .collect()
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
/// is left there. `progress` receives guest RAM bytes as they are written. With
/// [`ConvertOptions::hash`] the input files are hashed on a thread of their own while the
/// pages are written, and the dump before it is renamed into place ([`crate::hash`]).
///
/// The bytes written depend only on the input's contents, the name and modification time of
/// its first file, and `opts`: not on the number of threads, the folder the input is in, the
/// machine or the time of the run.
pub fn convert(
    state: &dyn MemorySource,
    target: &Path,
    opts: &ConvertOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<ConvertReport> {
    let started = Instant::now();
    let files = state.files();
    // Set when writing the dump failed: the input hashes are not wanted any more.
    let failed = Cancel::new();
    let stop = || cancel.is_cancelled() || failed.is_cancelled();
    std::thread::scope(|s| {
        let inputs = opts
            .hash
            .then(|| s.spawn(|| crate::hash::sha256_files(&files, &stop)));
        let written = write_dump(state, target, opts, progress, cancel);
        if written.is_err() {
            failed.cancel();
        }
        let input_sha256 = inputs
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .transpose();
        let (out, mut report) = written?;
        report.input_sha256 = input_sha256?;
        if opts.hash {
            report.output_sha256 = Some(out.sha256(&stop)?);
        }
        out.commit()?;
        report.seconds = started.elapsed().as_secs_f64();
        report.bytes_per_second = if report.seconds > 0.0 {
            (report.guest_pages * PAGE_SIZE as u64) as f64 / report.seconds
        } else {
            0.0
        };
        Ok(report)
    })
}

/// Writes the whole dump, header included, under its temporary name; the caller commits it.
fn write_dump(
    state: &dyn MemorySource,
    target: &Path,
    opts: &ConvertOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(OutputFile, ConvertReport)> {
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
    let pages_written = layout.present_pages();
    let report = ConvertReport {
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
        seconds: 0.0,
        bytes_per_second: 0.0,
        directory_table_base: info.directory_table_base,
        number_processors: info.number_processors,
        bugcheck_code: info.bugcheck_code,
        notes,
        input_sha256: None,
        output_sha256: None,
    };
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_records_the_settings_that_change_the_bytes() {
        let plain = ConvertOptions::default();
        let c = default_comment("Hyper-V saved state", "vm.vmrs", &plain);
        assert_eq!(
            c,
            format!(
                "vm2dmp {}: Hyper-V saved state vm.vmrs",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(comment_parts(&c), Some(("", "Hyper-V saved state vm.vmrs")));
        // Full and auto write the same bytes: the same Comment.
        let full = ConvertOptions {
            format: DumpFormat::Full,
            ..ConvertOptions::default()
        };
        assert_eq!(
            default_comment("k", "n", &full),
            default_comment("k", "n", &plain)
        );
        let all = ConvertOptions {
            format: DumpFormat::Bitmap,
            skip_zero: true,
            symbols: Some("ntkrnlmp.pdb".into()),
            no_replay: true,
            ..ConvertOptions::default()
        };
        let c = default_comment("Hyper-V saved state", "vm.vmrs", &all);
        assert_eq!(
            comment_parts(&c),
            Some(("skip-zero symbols no-replay", "Hyper-V saved state vm.vmrs"))
        );
        let bitmap = ConvertOptions {
            format: DumpFormat::Bitmap,
            ..ConvertOptions::default()
        };
        assert_eq!(settings_tag(&bitmap), "bitmap");
        // A Comment written before settings were recorded reads as the defaults.
        assert_eq!(
            comment_parts("vm2dmp 0.0.9: Hyper-V saved state vm.vmrs"),
            Some(("", "Hyper-V saved state vm.vmrs"))
        );
        assert_eq!(comment_parts("made by hand"), None);
    }
}
