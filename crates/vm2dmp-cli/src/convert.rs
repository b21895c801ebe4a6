//! `vm2dmp convert`: one saved state to one kernel dump with a progress bar, or many inputs
//! into a folder (`--out-dir`, see `batch/`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use vm2dmp::input::Input;
use vm2dmp::{folders::DiscoverOptions, Cancel, ConvertOptions, DumpFormat, MemorySource};

use crate::args::{ConvertArgs, FormatArg};
use crate::batch::{Entry, Outcome, Report};
use crate::shared::{bar_style, ext_lower, has_glob_chars, human_bytes, to_json, Bar};
use crate::CliError;

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
fn open_single(args: &ConvertArgs, input: &Path) -> Result<Input, CliError> {
    let ext = ext_lower(input);
    let disk = matches!(ext.as_str(), "vhd" | "vhdx" | "avhd" | "avhdx");
    let via_discovery =
        !args.input.raw && (input.is_dir() || matches!(ext.as_str(), "vmcx" | "xml"));
    let disk = disk && !args.input.raw;
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
        let opts = args.input.open_options().map_err(CliError::Usage)?;
        return Ok(Input::open(input, &opts)?);
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
    Ok(Input::HyperV(Box::new(
        candidate.open(args.input.no_replay)?,
    )))
}

/// `input` as given, or the one file a glob pattern in it matches.
fn single_input(input: &Path) -> Result<PathBuf, CliError> {
    let text = input.to_string_lossy();
    if input.exists() || !has_glob_chars(&text) {
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

/// `vm2dmp convert`. With `--report`, the report file is written before anything else (a
/// placeholder with `"finished": false`), so that a path that cannot be written is found
/// before any conversion; a run that fails before writing its final report replaces it with
/// one that holds the error.
pub(crate) fn run(args: &ConvertArgs, cancel: Arc<Cancel>) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    if let Some(path) = &args.report {
        if let Some(dir) = args.out_dir.as_deref().filter(|d| !d.exists()) {
            // The report may be meant to go in the output folder; an error here is found again
            // (and reported) when the folder is prepared.
            let _ = std::fs::create_dir_all(dir);
        }
        let mut placeholder = Report::placeholder(args.out_dir.clone());
        placeholder.shard = args.shard.map(|s| s.to_string());
        placeholder
            .write(path)
            .map_err(|e| CliError::Usage(format!("--report: {}", e.message())))?;
    }
    let result = run_checked(args, cancel);
    if let (Err(e), Some(path)) = (&result, &args.report) {
        if !crate::batch::finished_written() {
            let mut r = Report::failed_run(
                args.out_dir.clone(),
                e.message(),
                started.elapsed().as_secs_f64(),
            );
            r.shard = args.shard.map(|s| s.to_string());
            // The run's own error is the one to show.
            let _ = r.write(path);
        }
    }
    result
}

fn run_checked(args: &ConvertArgs, cancel: Arc<Cancel>) -> Result<(), CliError> {
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
        no_replay: args.input.no_replay,
        hash: args.hash,
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
        let replay = state
            .as_hyperv()
            .map(|s| s.replay_log())
            .unwrap_or_default();
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
            bar_style(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
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
        println!("{}", to_json(&report)?);
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
        for (file, hex) in report.input_sha256.iter().flatten() {
            eprintln!("SHA-256 {hex}  {}", file.display());
        }
        if let Some(hex) = &report.output_sha256 {
            eprintln!("SHA-256 {hex}  {}", report.output.display());
        }
    }
    if let Some(path) = &args.report {
        let mut e = Entry::single(&input, &state);
        e.output = Some(report.output.clone());
        e.status = Outcome::Ok;
        e.pages = Some(report.pages_written);
        e.bytes = Some(report.bytes);
        e.seconds = report.seconds;
        e.dump_type = Some(report.dump_type);
        e.notes = report.notes.clone();
        e.input_sha256 = report.input_sha256.clone();
        e.output_sha256 = report.output_sha256.clone();
        Report::new(None, vec![e], started.elapsed().as_secs_f64()).write(path)?;
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
    let mut e = Entry::failed(input, err.map(CliError::message));
    e.output = output.map(Path::to_path_buf);
    e.seconds = started.elapsed().as_secs_f64();
    Report::new(None, vec![e], started.elapsed().as_secs_f64()).write(path)
}
