//! `vm2dmp convert`: one saved state to one kernel dump with a progress bar, or many inputs
//! into a folder (`--out-dir`, see `batch.rs`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use vm2dmp::{folders::DiscoverOptions, Cancel, ConvertOptions, DumpFormat, SavedState};

use crate::{CliError, InputArgs};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  vm2dmp convert vm.vmrs vm.dmp
  vm2dmp convert vm.vsv vm.dmp --bin /elsewhere/vm.bin
  vm2dmp convert 'D:/VMs/Web01' --checkpoint 'Before update' web01.dmp
  vm2dmp convert 'D:/VMs/Web01/Virtual Hard Disks/web01_6C1F....avhdx' web01.dmp
  vm2dmp convert --out-dir dumps --jobs 2 --report report.json 'D:/Hyper-V' '/cases/*.vmrs'

With --out-dir every input may be a saved-state file, a VM folder, a Hyper-V root folder, a
virtual disk or a glob; folders give every VM state and checkpoint with memory. A failing input
does not stop the others. Dumps already complete in the output folder are kept (--force writes
them again). Exit code 1 when any input failed.")]
pub(crate) struct ConvertArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The dump file to write; with --out-dir, more inputs
    #[arg(value_name = "OUTPUT|MORE")]
    pub more: Vec<PathBuf>,
    /// Write one dump per memory image into this folder (named after VM and checkpoint)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// In a VM folder, the checkpoint (or VM) to convert, by name or GUID
    #[arg(long, value_name = "NAME|GUID")]
    pub checkpoint: Option<String>,
    /// Inputs converted at the same time with --out-dir (pages are always converted in parallel)
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Write a JSON report of every input (input, output, status, pages, bytes, seconds, error)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Page layout: auto (full dump unless the memory map needs a bitmap), full, or bitmap
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Leave out all-zero pages (bitmap dump; readers then show those pages as missing)
    #[arg(long)]
    pub skip_zero: bool,
    /// Overwrite the output file if it exists
    #[arg(long)]
    pub force: bool,
    /// No progress bar and no notes
    #[arg(short, long)]
    pub quiet: bool,
    /// Say which files and checkpoints are read, and every note
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print the result as JSON on standard output
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: one per core)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The kernel's PDB (ntkrnlmp.pdb) or a local symbol-store folder, used when it matches
    #[arg(long, value_name = "PATH")]
    pub symbols: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub(crate) enum FormatArg {
    Auto,
    Full,
    Bitmap,
}

/// Renders library progress as an indicatif bar; `clear` removes the bar when the operation
/// ends (a single conversion), otherwise the caller decides (a batch's multi-progress display).
pub(crate) struct Bar {
    pub bar: ProgressBar,
    pub clear: bool,
}

impl vm2dmp::Progress for Bar {
    fn start(&self, _phase: &str, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(0);
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn finish(&self) {
        if self.clear {
            self.bar.finish_and_clear();
        }
    }
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn ext_lower(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A library error about choosing an entry is a usage problem (exit 2), not a failure.
fn selection_error(e: vm2dmp::Error) -> CliError {
    match e {
        e @ (vm2dmp::Error::NoMatch { .. }
        | vm2dmp::Error::Ambiguous { .. }
        | vm2dmp::Error::TooManyFiles { .. }) => CliError::Usage(crate::describe(&e)),
        other => CliError::Lib(other),
    }
}

/// Opens the one saved state that `input` stands for: a saved-state file as it is; a VM folder,
/// a configuration file or a virtual disk through discovery.
fn open_single(args: &ConvertArgs, input: &Path) -> Result<SavedState, CliError> {
    let ext = ext_lower(input);
    let disk = matches!(ext.as_str(), "vhd" | "vhdx" | "avhd" | "avhdx");
    let via_discovery = input.is_dir() || matches!(ext.as_str(), "vmcx" | "xml");
    let opts = DiscoverOptions {
        no_replay: args.input.no_replay,
    };
    let candidate = if disk && args.checkpoint.is_none() {
        vm2dmp::folders::memory_for_disk(input, &opts).map_err(selection_error)?
    } else if via_discovery || disk {
        let found = vm2dmp::folders::discover(input, &opts)?;
        found
            .select(args.checkpoint.as_deref())
            .map_err(selection_error)?
            .clone()
    } else {
        if let Some(sel) = &args.checkpoint {
            return Err(CliError::Usage(format!(
                "--checkpoint {sel}: {} is a saved-state file; --checkpoint chooses among the entries of a VM folder",
                input.display()
            )));
        }
        return Ok(SavedState::open_with(input, &args.input.open_options())?);
    };
    if args.input.bin.is_some() {
        return Err(CliError::Usage(
            "--bin applies to a .vsv given as input, not to a VM folder".into(),
        ));
    }
    if !args.quiet {
        let files: Vec<String> = candidate
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        eprintln!("reading {}: {}", candidate.label(), files.join(" + "));
    }
    Ok(candidate.open(args.input.no_replay)?)
}

/// `input` as given, or the one file a glob pattern in it matches.
fn single_input(input: &Path) -> Result<PathBuf, CliError> {
    let text = input.to_string_lossy();
    if input.exists() || !text.contains(['*', '?', '[']) {
        return Ok(input.to_path_buf());
    }
    let matched: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| CliError::Usage(format!("{text}: bad pattern: {e}")))?
        .flatten()
        .collect();
    match matched.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::Usage(format!("{text}: no file matches"))),
        many => Err(CliError::Usage(format!(
            "{text}: {} files match; give --out-dir DIR to convert them all",
            many.len()
        ))),
    }
}

pub(crate) fn run(args: &ConvertArgs, cancel: Arc<Cancel>) -> Result<(), CliError> {
    if args.skip_zero && matches!(args.format, FormatArg::Full) {
        return Err(CliError::Usage(
            "--skip-zero needs a bitmap dump; it cannot be combined with --format full".into(),
        ));
    }
    if args.jobs == Some(0) {
        return Err(CliError::Usage("--jobs must be at least 1".into()));
    }
    // Where the dumps go: `INPUT OUTPUT`, `INPUT... --out-dir DIR`, or `INPUT DIR` for an
    // existing folder.
    let (inputs, out_dir, output) = match (&args.out_dir, args.more.as_slice()) {
        (Some(dir), more) => {
            let mut v = vec![args.input.input.clone()];
            v.extend(more.iter().cloned());
            (v, Some(dir.clone()), None)
        }
        (None, [out]) if out.is_dir() => (vec![args.input.input.clone()], Some(out.clone()), None),
        (None, [out]) => (vec![args.input.input.clone()], None, Some(out.clone())),
        (None, []) => {
            return Err(CliError::Usage(
                "the dump file to write is missing: vm2dmp convert INPUT OUTPUT (or INPUT... --out-dir DIR)"
                    .into(),
            ))
        }
        (None, _) => {
            return Err(CliError::Usage(format!(
                "{} paths given: to convert several inputs, give --out-dir DIR",
                args.more.len() + 1
            )))
        }
    };
    if let Some(n) = args.threads {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let opts = ConvertOptions {
        format: match args.format {
            FormatArg::Auto => DumpFormat::Auto,
            FormatArg::Full => DumpFormat::Full,
            FormatArg::Bitmap => DumpFormat::Bitmap,
        },
        skip_zero: args.skip_zero,
        force: args.force,
        symbols: args.symbols.clone(),
        ..ConvertOptions::default()
    };
    if let Some(dir) = out_dir {
        return crate::batch::run(&inputs, &dir, args, &opts, cancel);
    }
    let output = output.unwrap_or_default();
    let input = single_input(&args.input.input)?;
    let started = std::time::Instant::now();
    let state = match open_single(args, &input) {
        Ok(s) => s,
        Err(e) => {
            write_single_report(args, &input, None, Some(&e), started)?;
            return Err(e);
        }
    };
    if args.verbose {
        eprintln!(
            "input: {}",
            state
                .files()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        );
        let replay = state.replay_log();
        if replay.pending_entries > 0 {
            eprintln!(
                "note: {} pending replay-log entries {}",
                replay.pending_entries,
                if replay.replayed {
                    "replayed in memory"
                } else {
                    "NOT replayed (--no-replay)"
                }
            );
        }
    }
    let show_bar = !args.quiet && std::io::stderr().is_terminal();
    let bar = if show_bar {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        ProgressBar::hidden()
    };
    let report = match vm2dmp::convert(&state, &output, &opts, &Bar { bar, clear: true }, &cancel) {
        Ok(r) => r,
        Err(e) => {
            let e = match e {
                vm2dmp::Error::Cancelled => {
                    CliError::Interrupted(format!("{} was not written", output.display()))
                }
                e => CliError::Lib(e),
            };
            write_single_report(args, &input, Some(&output), Some(&e), started)?;
            return Err(e);
        }
    };
    if !args.quiet {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
    }
    if args.json {
        println!("{}", crate::to_json(&report)?);
    } else if !args.quiet {
        eprintln!(
            "wrote {}: {} dump (DumpType {}), {} of {} pages, {} in {:.2} s ({}/s)",
            report.output.display(),
            if report.dump_type == 1 {
                "full"
            } else {
                "bitmap"
            },
            report.dump_type,
            report.pages_written,
            report.guest_pages,
            human_bytes(report.bytes as f64),
            report.seconds,
            human_bytes(report.bytes_per_second)
        );
    }
    if let Some(path) = &args.report {
        let mut e = crate::batch::Entry::single(&input, &state);
        e.output = Some(report.output.clone());
        e.status = crate::batch::Outcome::Ok;
        e.pages = Some(report.pages_written);
        e.bytes = Some(report.bytes);
        e.seconds = report.seconds;
        e.dump_type = Some(report.dump_type);
        e.notes = report.notes.clone();
        crate::batch::Report::new(None, vec![e], started.elapsed().as_secs_f64()).write(path)?;
    }
    Ok(())
}

/// `--report` of a single conversion that failed.
fn write_single_report(
    args: &ConvertArgs,
    input: &Path,
    output: Option<&Path>,
    err: Option<&CliError>,
    started: std::time::Instant,
) -> Result<(), CliError> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    let mut e = crate::batch::Entry::failed(input, err.map(CliError::message));
    e.output = output.map(Path::to_path_buf);
    e.seconds = started.elapsed().as_secs_f64();
    crate::batch::Report::new(None, vec![e], started.elapsed().as_secs_f64()).write(path)
}
