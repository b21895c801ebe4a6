//! Running a batch: the output folder, the conversions on `--jobs` threads with a bar each,
//! and the report at the end.
//!
//! Inputs run on `--jobs` plain threads; each conversion spreads its RAM blocks over the one
//! shared rayon pool (`--threads`, default one per core), so running several inputs at once
//! never starts more compute threads than the pool has.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use vm2dmp::input::Input;
use vm2dmp::{Cancel, ConvertOptions, DumpFile, MemorySource};

use super::plan::{Job, Plan};
use super::report::{self, Entry, Outcome, Report, INTERRUPTED};
use crate::args::ConvertArgs;
use crate::shared::{bar_style, use_color, Bar};
use crate::CliError;

/// Runs the conversions of `inputs` into `out_dir`; the report says what happened to each.
pub(crate) fn run(
    inputs: &[PathBuf],
    out_dir: &Path,
    args: &ConvertArgs,
    opts: &ConvertOptions,
    cancel: Arc<Cancel>,
) -> Result<(), CliError> {
    let started = Instant::now();
    prepare(inputs, out_dir, args)?;
    let plan = Plan::new(inputs, args, out_dir);
    let display = Display::new(args, plan.jobs.len());
    display.plan(&plan, args);
    let done = run_jobs(&plan.jobs, args, opts, &cancel, &display);
    display.overall.finish_and_clear();
    let mut report = Report::new(
        Some(out_dir.to_path_buf()),
        plan.entries(done),
        started.elapsed().as_secs_f64(),
    );
    report.shard = args.shard.map(|s| s.to_string());
    report::publish(&report, args)?;
    report::verdict(&report, &cancel)
}

/// Checks the options that only make sense for one input and creates the output folder.
fn prepare(inputs: &[PathBuf], out_dir: &Path, args: &ConvertArgs) -> Result<(), CliError> {
    if inputs.len() > 1 && args.input.bin.is_some() {
        return Err(CliError::Usage(
            "--bin names the memory file of one .vsv; with several inputs keep each .bin beside its .vsv".into(),
        ));
    }
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(CliError::Usage(format!(
            "--out-dir {}: exists and is not a folder",
            out_dir.display()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| {
        CliError::Lib(vm2dmp::Error::Io {
            path: out_dir.to_path_buf(),
            action: "cannot create output folder",
            source,
        })
    })
}

/// Runs `jobs` on `--jobs` threads, each taking the next job not yet started; the entry of
/// every job that ran, by job index.
fn run_jobs(
    jobs: &[Job],
    args: &ConvertArgs,
    opts: &ConvertOptions,
    cancel: &Cancel,
    display: &Display,
) -> Vec<Option<Entry>> {
    let workers = args.jobs.unwrap_or(1).clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Entry>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let e = convert_one(job, args, opts, cancel, display);
                display.finished(&e, args.verbose);
                let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(slot) = r.get_mut(i) {
                    *slot = Some(e);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Converts one job: skipped when its complete dump is already there, failed when a foreign
/// file is in the way or the input cannot be read.
fn convert_one(
    job: &Job,
    args: &ConvertArgs,
    opts: &ConvertOptions,
    cancel: &Cancel,
    display: &Display,
) -> Entry {
    let started = Instant::now();
    let mut entry = job.entry.clone();
    let Some(output) = entry.output.clone() else {
        return entry.finish(Outcome::Failed, Some("no output path".into()));
    };
    if cancel.is_cancelled() {
        return entry.finish(
            Outcome::Failed,
            Some(format!("{INTERRUPTED} before it started")),
        );
    }
    let mut open = match args.input.open_options() {
        Ok(o) => o,
        Err(e) => return entry.finish(Outcome::Failed, Some(e)),
    };
    open.memory_file = job.bin.clone();
    if output.exists() && !args.force {
        let kind = input_kind(&job.main, &open);
        return existing_output(entry, &output, &job.main, &kind, opts, cancel);
    }
    let state = match Input::open(&job.main, &open) {
        Ok(s) => s,
        // As when found in a folder: a file without memory is skipped, not failed.
        Err(e @ vm2dmp::Error::NoMemoryImage { .. }) => {
            return entry.finish(Outcome::Skipped, Some(e.to_string()))
        }
        Err(e) => return entry.finish(Outcome::Failed, Some(crate::describe(&e))),
    };
    entry.files = state.files();
    entry.replay_pending = state
        .as_hyperv()
        .map_or(0, |s| s.replay_log().pending_entries);
    let bar = display.job_bar(&entry.label);
    let result = vm2dmp::convert(
        &state,
        &output,
        opts,
        &Bar {
            bar: bar.clone(),
            clear: false,
        },
        cancel,
    );
    bar.finish_and_clear();
    display.mp.remove(&bar);
    entry.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(r) => {
            entry.pages = Some(r.pages_written);
            entry.bytes = Some(r.bytes);
            entry.dump_type = Some(r.dump_type);
            entry.notes.extend(r.notes);
            entry.input_sha256 = r.input_sha256;
            entry.output_sha256 = r.output_sha256;
            entry.finish(Outcome::Ok, None)
        }
        Err(vm2dmp::Error::Cancelled) => entry.finish(
            Outcome::Failed,
            Some(format!(
                "{INTERRUPTED} while writing; the dump was not written"
            )),
        ),
        Err(e) => entry.finish(Outcome::Failed, Some(crate::describe(&e))),
    }
}

/// The entry of a job whose output exists (without `--force`): skipped when it is the
/// complete dump of this input made with these settings (with `--hash`, the hashes of the
/// files and of the dump as they are), failed otherwise, saying why.
fn existing_output(
    mut entry: Entry,
    output: &Path,
    main: &Path,
    kind: &str,
    opts: &ConvertOptions,
    cancel: &Cancel,
) -> Entry {
    use vm2dmp::convert::DumpOrigin;
    match origin(output, main, kind, opts) {
        DumpOrigin::Same => {
            if opts.hash {
                let hashes = hash_existing(&entry.files, output, cancel);
                match hashes {
                    Ok((inputs, dump)) => {
                        entry.input_sha256 = Some(inputs);
                        entry.output_sha256 = Some(dump);
                    }
                    Err(e) => return entry.finish(Outcome::Failed, Some(crate::describe(&e))),
                }
            }
            entry.finish(
                Outcome::Skipped,
                Some("output exists and is complete (use --force to write it again)".into()),
            )
        }
        DumpOrigin::OtherSettings { recorded, wanted } => {
            let name = |s: String| if s.is_empty() { "the defaults".into() } else { s };
            entry.finish(
                Outcome::Failed,
                Some(format!(
                    "{}: output exists, made from this input with other settings ({}, not {}); use --force to write it again",
                    output.display(),
                    name(recorded),
                    name(wanted)
                )),
            )
        }
        DumpOrigin::Other => entry.finish(
            Outcome::Failed,
            Some(format!(
                "{}: output exists and is not a complete dump of this input (use --force to replace it)",
                output.display()
            )),
        ),
    }
}

/// The SHA-256 of each of `files` and of the dump `output`.
fn hash_existing(
    files: &[PathBuf],
    output: &Path,
    cancel: &Cancel,
) -> Result<(std::collections::BTreeMap<PathBuf, String>, String), vm2dmp::Error> {
    let inputs = files
        .iter()
        .map(|f| Ok((f.clone(), vm2dmp::hash::sha256_file(f, cancel)?)))
        .collect::<Result<_, vm2dmp::Error>>()?;
    Ok((inputs, vm2dmp::hash::sha256_file(output, cancel)?))
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).ok()?.modified().ok()
}

/// How `out` relates to a conversion of `main` as it is now with `opts`: a complete dump
/// (parsed header, RequiredDumpSpace equal to the file size, not older than the input) whose
/// Comment and SystemTime name this very file and whose Comment records the same settings
/// (`vm2dmp::convert::dump_origin`). The Comment names the first file of the state: for a
/// `.bin` that is its `.vsv`.
/// What the dump's Comment calls the input at `main`: a Hyper-V saved state without opening
/// it (its kind does not depend on the file), another format as its reader names it.
fn input_kind(main: &Path, open: &vm2dmp::input::OpenOptions) -> String {
    if open.raw.is_none()
        && matches!(
            vm2dmp::input::detect(main),
            Ok(Some(vm2dmp::input::Format::HyperV))
        )
    {
        return vm2dmp::hyperv::KIND.into();
    }
    vm2dmp::input::Input::open(main, open)
        .map(|i| i.machine().kind)
        .unwrap_or_else(|_| vm2dmp::hyperv::KIND.into())
}

fn origin(
    out: &Path,
    main: &Path,
    kind: &str,
    opts: &ConvertOptions,
) -> vm2dmp::convert::DumpOrigin {
    use vm2dmp::convert::{dump_origin, DumpOrigin};
    let Ok(dump) = DumpFile::open(out) else {
        return DumpOrigin::Other;
    };
    let d = dump.dump();
    let fresh = match (modified(out), modified(main)) {
        (Some(o), Some(i)) => o >= i,
        _ => false,
    };
    if d.required_dump_space() != d.file_size() || !fresh {
        return DumpOrigin::Other;
    }
    let mut firsts = vec![main.to_path_buf()];
    firsts.extend(vm2dmp::hyperv::sibling_file(main, "vsv"));
    let found: Vec<DumpOrigin> = firsts
        .iter()
        .map(|f| dump_origin(&dump, kind, f, opts))
        .collect();
    found
        .iter()
        .find(|o| **o == DumpOrigin::Same)
        .or_else(|| found.iter().find(|o| **o != DumpOrigin::Other))
        .cloned()
        .unwrap_or(DumpOrigin::Other)
}

/// What a batch shows on standard error: on a terminal, an overall bar and one bar per
/// running conversion, with the entry lines printed above them; otherwise the lines only.
struct Display {
    mp: MultiProgress,
    overall: ProgressBar,
    bars: bool,
    quiet: bool,
    color: bool,
}

impl Display {
    fn new(args: &ConvertArgs, jobs: usize) -> Self {
        let bars = !args.quiet && std::io::stderr().is_terminal();
        let mp = if bars {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        let overall = if bars {
            let b = mp.add(ProgressBar::new(jobs as u64));
            b.set_style(bar_style("[{elapsed_precise}] {pos}/{len} inputs {msg}"));
            b
        } else {
            ProgressBar::hidden()
        };
        Self {
            mp,
            overall,
            bars,
            quiet: args.quiet,
            color: use_color(std::io::stderr().is_terminal()),
        }
    }

    fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        if self.bars {
            let _ = self.mp.println(s);
        } else {
            eprintln!("{s}");
        }
    }

    fn entry(&self, e: &Entry) {
        self.line(&report::entry_line(e, self.color));
    }

    /// The entries decided while planning that are worth showing (failures; all with `-v`),
    /// and with `-v` every conversion planned.
    fn plan(&self, plan: &Plan, args: &ConvertArgs) {
        for e in plan.decided() {
            // Entries without memory are in the report; on screen only with -v.
            if e.status == Outcome::Failed || args.verbose {
                self.entry(e);
            }
        }
        if args.verbose {
            for j in &plan.jobs {
                self.line(&format!(
                    "plan    {} ({}) -> {}",
                    j.entry.label,
                    j.main.display(),
                    j.entry
                        .output
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ));
            }
        }
    }

    /// A conversion has ended: its line, with `verbose` its notes, and one more on the
    /// overall bar.
    fn finished(&self, e: &Entry, verbose: bool) {
        self.entry(e);
        if verbose {
            for n in &e.notes {
                self.line(&format!("note    {}: {n}", e.label));
            }
        }
        self.overall.inc(1);
    }

    /// The bar of one running conversion (hidden when not on a terminal).
    fn job_bar(&self, label: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let b = self.mp.add(ProgressBar::new(0));
        b.set_style(
            bar_style("{prefix} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .progress_chars("=> "),
        );
        b.set_prefix(label.chars().take(40).collect::<String>());
        b.enable_steady_tick(Duration::from_millis(250));
        b
    }
}
