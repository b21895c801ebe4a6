//! `vm2dmp convert --out-dir DIR INPUT...`: many inputs (files, VM folders, Hyper-V roots,
//! globs) converted side by side, with a bar per running conversion, a JSON report, and an exit
//! code that says whether any input failed.
//!
//! Inputs run on `--jobs` plain threads; each conversion spreads its RAM blocks over the one
//! shared rayon pool (`--threads`, default one per core), so running several inputs at once
//! never starts more compute threads than the pool has.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::convert::Bar;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use vm2dmp::{
    folders::Candidate, folders::DiscoverOptions, folders::EntryKind, folders::Status,
    hyperv::OpenOptions, Cancel, ConvertOptions, DumpFile, SavedState,
};

use crate::convert::ConvertArgs;
use crate::CliError;

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    /// A dump was written.
    Ok,
    /// Nothing to do: no memory in it, or its dump exists and is complete.
    Skipped,
    /// It could not be converted.
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    /// The argument (file, folder or glob) this entry comes from.
    pub input: PathBuf,
    /// What was converted: `VM / checkpoint`, or the file name.
    pub label: String,
    pub kind: Option<EntryKind>,
    pub vm_name: Option<String>,
    pub checkpoint_name: Option<String>,
    pub checkpoint_id: Option<String>,
    /// The files read (`.vmrs`, or `.vsv` then `.bin`).
    pub files: Vec<PathBuf>,
    pub output: Option<PathBuf>,
    pub status: Outcome,
    /// Guest pages written to the dump.
    pub pages: Option<u64>,
    /// Size of the dump file.
    pub bytes: Option<u64>,
    pub seconds: f64,
    pub dump_type: Option<u32>,
    /// Pending replay-log entries of a dirty `.vmrs` (replayed in memory unless --no-replay).
    pub replay_pending: u32,
    pub notes: Vec<String>,
    /// Why it was skipped or failed (one line).
    pub error: Option<String>,
}

impl Entry {
    fn new(input: &Path, label: String) -> Self {
        Self {
            input: input.to_path_buf(),
            label,
            kind: None,
            vm_name: None,
            checkpoint_name: None,
            checkpoint_id: None,
            files: Vec::new(),
            output: None,
            status: Outcome::Failed,
            pages: None,
            bytes: None,
            seconds: 0.0,
            dump_type: None,
            replay_pending: 0,
            notes: Vec::new(),
            error: None,
        }
    }

    /// The entry of a single conversion (`INPUT OUTPUT` with `--report`).
    pub(crate) fn single(input: &Path, state: &SavedState) -> Self {
        let label = input.file_name().map_or_else(
            || input.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut e = Self::new(input, label);
        e.files = state.files();
        e.replay_pending = state.replay_log().pending_entries;
        e
    }

    /// A single conversion that failed.
    pub(crate) fn failed(input: &Path, error: Option<String>) -> Self {
        let label = input.file_name().map_or_else(
            || input.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self::new(input, label).finish(Outcome::Failed, error)
    }

    fn from_candidate(input: &Path, c: &Candidate) -> Self {
        let mut e = Self::new(input, c.label());
        e.kind = Some(c.kind);
        e.vm_name = c.vm_name.clone();
        e.checkpoint_name = c.checkpoint_name.clone();
        e.checkpoint_id = c.checkpoint_id.clone();
        e.files = c.files.clone();
        e.notes = c.notes.clone();
        e
    }

    fn finish(mut self, status: Outcome, error: Option<String>) -> Self {
        self.status = status;
        self.error = error;
        self
    }
}

/// The whole report (`--report FILE`, `--json`).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub out_dir: Option<PathBuf>,
    pub ok: usize,
    pub skipped: usize,
    pub failed: usize,
    pub seconds: f64,
    pub entries: Vec<Entry>,
}

impl Report {
    pub fn new(out_dir: Option<PathBuf>, entries: Vec<Entry>, seconds: f64) -> Self {
        let count = |o: Outcome| entries.iter().filter(|e| e.status == o).count();
        Self {
            tool: "vm2dmp",
            version: env!("CARGO_PKG_VERSION"),
            out_dir,
            ok: count(Outcome::Ok),
            skipped: count(Outcome::Skipped),
            failed: count(Outcome::Failed),
            seconds,
            entries,
        }
    }

    /// Writes the report as JSON under a temporary name, then renames it into place.
    pub fn write(&self, path: &Path) -> Result<(), CliError> {
        let text = crate::to_json(self)? + "\n";
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report.json".into());
        let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
        let io_err = |action: &'static str, source| {
            CliError::Lib(vm2dmp::Error::Io {
                path: path.to_path_buf(),
                action,
                source,
            })
        };
        std::fs::write(&tmp, text).map_err(|e| io_err("cannot write report", e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err("cannot write report", e)
        })
    }
}

/// One conversion to run.
#[derive(Debug, Clone)]
struct Job {
    input: PathBuf,
    entry: Entry,
    main: PathBuf,
    bin: Option<PathBuf>,
    /// File name of the dump without extension, before de-duplication.
    name: String,
    /// Short id to tell apart entries of the same name.
    id: Option<String>,
}

enum Planned {
    Run(Job),
    Done(Entry),
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A file name made of letters, digits, `-`, `_` and `.`.
fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if ch.is_alphanumeric() || matches!(ch, '-' | '_' | '.') {
            out.push(ch);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let t: String = out
        .trim_matches(|c| c == '_' || c == '.')
        .chars()
        .take(100)
        .collect();
    // Names Windows reserves for devices, whatever follows a dot: `CON.dmp` is not a file.
    let device = t.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = matches!(device.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (device.len() == 4
            && (device.starts_with("COM") || device.starts_with("LPT"))
            && device.as_bytes()[3].is_ascii_digit());
    if t.is_empty() {
        "dump".into()
    } else if reserved {
        // The part before the first dot is what Windows matches: suffix that part.
        match t.split_once('.') {
            Some((first, rest)) => format!("{first}_.{rest}"),
            None => format!("{t}_"),
        }
    } else {
        t
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn job_from_candidate(input: &Path, c: &Candidate) -> Option<Job> {
    let main = c.main_file()?.to_path_buf();
    let vm = c.vm_name.clone().or_else(|| c.vm_id.clone());
    let name = match c.kind {
        EntryKind::Checkpoint => {
            let cp = c
                .checkpoint_name
                .clone()
                .or_else(|| c.checkpoint_id.clone())
                .unwrap_or_else(|| stem(&main));
            match vm {
                Some(v) => format!("{v}__{cp}"),
                None => cp,
            }
        }
        EntryKind::Vm => vm.unwrap_or_else(|| stem(&main)),
        _ => stem(&main),
    };
    let id = match c.kind {
        EntryKind::Checkpoint => c.checkpoint_id.clone(),
        EntryKind::Vm => c.vm_id.clone(),
        _ => None,
    };
    Some(Job {
        input: input.to_path_buf(),
        entry: Entry::from_candidate(input, c),
        main,
        bin: c.bin_file().map(Path::to_path_buf),
        name,
        id,
    })
}

/// Turns the entries of a folder (or configuration file) into jobs and finished entries.
fn plan_discovered(input: &Path, args: &ConvertArgs, out: &mut Vec<Planned>) {
    let opts = DiscoverOptions {
        no_replay: args.input.no_replay,
    };
    let found = match vm2dmp::folders::discover(input, &opts) {
        Ok(f) => f,
        Err(e) => {
            out.push(Planned::Done(
                Entry::new(input, input.display().to_string())
                    .finish(Outcome::Failed, Some(crate::describe(&e))),
            ));
            return;
        }
    };
    let mut any = false;
    for c in &found.entries {
        if matches!(c.kind, EntryKind::GuestState | EntryKind::Disk) {
            continue;
        }
        if let Some(sel) = &args.checkpoint {
            if !c.matches(sel) {
                continue;
            }
        }
        any = true;
        if c.convertible {
            if let Some(j) = job_from_candidate(input, c) {
                out.push(Planned::Run(j));
                continue;
            }
        }
        let reason = c.reason.clone().unwrap_or_else(|| "no memory".into());
        let outcome = match c.status {
            Status::NoMemory | Status::NotMemory => Outcome::Skipped,
            _ => Outcome::Failed,
        };
        out.push(Planned::Done(
            Entry::from_candidate(input, c).finish(outcome, Some(reason)),
        ));
    }
    if !any {
        let why = match &args.checkpoint {
            Some(sel) => format!("no VM or checkpoint named \"{sel}\" here"),
            None => "no VM, checkpoint or saved-state file found here".into(),
        };
        out.push(Planned::Done(
            Entry::new(input, input.display().to_string()).finish(Outcome::Failed, Some(why)),
        ));
    }
}

fn plan_path(p: &Path, args: &ConvertArgs, out: &mut Vec<Planned>) {
    let ext = p
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if p.is_dir() || matches!(ext.as_str(), "vmcx" | "xml") {
        plan_discovered(p, args, out);
        return;
    }
    if matches!(ext.as_str(), "vhd" | "vhdx" | "avhd" | "avhdx") {
        let opts = DiscoverOptions {
            no_replay: args.input.no_replay,
        };
        match vm2dmp::folders::memory_for_disk(p, &opts) {
            Ok(c) => match job_from_candidate(p, &c) {
                Some(j) => out.push(Planned::Run(j)),
                None => out.push(Planned::Done(
                    Entry::from_candidate(p, &c)
                        .finish(Outcome::Failed, Some("no memory file".into())),
                )),
            },
            Err(e) => out.push(Planned::Done(
                Entry::new(p, p.display().to_string())
                    .finish(Outcome::Failed, Some(crate::describe(&e))),
            )),
        }
        return;
    }
    if let Some(sel) = &args.checkpoint {
        out.push(Planned::Done(
            Entry::new(p, p.display().to_string()).finish(
                Outcome::Failed,
                Some(format!(
                    "--checkpoint {sel}: this input is a saved-state file; --checkpoint chooses among the entries of a VM folder"
                )),
            ),
        ));
        return;
    }
    // A .bin given alone: its .vsv beside it is the file to open (as `convert x.bin` does), so
    // that giving both converts the pair once.
    let vsv = match (ext.as_str(), &args.input.bin) {
        ("bin", None) => vm2dmp::hyperv::sibling_file(p, "vsv"),
        _ => None,
    };
    let (main, bin) = match vsv {
        Some(vsv) => (vsv, Some(p.to_path_buf())),
        None => (p.to_path_buf(), args.input.bin.clone()),
    };
    let mut entry = Entry::new(
        p,
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    );
    entry.files = vec![p.to_path_buf()];
    out.push(Planned::Run(Job {
        input: p.to_path_buf(),
        entry,
        name: stem(&main),
        main,
        bin,
        id: None,
    }));
}

/// Expands the inputs (globs, folders) into conversions and entries already decided.
fn plan(inputs: &[PathBuf], args: &ConvertArgs, out_dir: &Path) -> Vec<Planned> {
    let mut out = Vec::new();
    // A pattern may also match the output folder or the dumps in it: those are not inputs.
    let out_dir = out_dir.canonicalize().ok();
    let in_output = |m: &Path| {
        out_dir
            .as_ref()
            .is_some_and(|o| m.canonicalize().is_ok_and(|c| c.starts_with(o)))
    };
    for input in inputs {
        let text = input.to_string_lossy();
        if !input.exists() && has_glob_chars(&text) {
            match glob::glob(&text) {
                Ok(paths) => {
                    let mut matched: Vec<PathBuf> =
                        paths.flatten().filter(|m| !in_output(m)).collect();
                    matched.sort();
                    if matched.is_empty() {
                        out.push(Planned::Done(Entry::new(input, text.to_string()).finish(
                            Outcome::Failed,
                            Some("no file matches this pattern".into()),
                        )));
                    }
                    for m in matched {
                        plan_path(&m, args, &mut out);
                    }
                }
                Err(e) => out.push(Planned::Done(
                    Entry::new(input, text.to_string())
                        .finish(Outcome::Failed, Some(format!("bad pattern: {e}"))),
                )),
            }
            continue;
        }
        if !input.exists() {
            out.push(Planned::Done(Entry::new(input, text.to_string()).finish(
                Outcome::Failed,
                Some("cannot open: no such file or folder".into()),
            )));
            continue;
        }
        plan_path(input, args, &mut out);
    }
    // The same memory files reached twice (a file and its folder, overlapping globs) are
    // converted once.
    let mut seen = HashSet::new();
    out.retain(|p| match p {
        Planned::Run(j) => {
            let key = std::fs::canonicalize(&j.main).unwrap_or_else(|_| j.main.clone());
            seen.insert(key)
        }
        Planned::Done(_) => true,
    });
    out
}

/// Gives every job a distinct output path in `out_dir` (compared without case), the same on
/// every run with the same inputs.
fn assign_outputs(jobs: &mut [Job], out_dir: &Path) {
    let mut taken: HashSet<String> = HashSet::new();
    for j in jobs.iter_mut() {
        let base = sanitize(&j.name);
        let mut name = base.clone();
        if taken.contains(&name.to_lowercase()) {
            if let Some(id) = &j.id {
                name = format!("{base}_{}", id.chars().take(8).collect::<String>());
            }
            let mut n = 2;
            let first = name.clone();
            while taken.contains(&name.to_lowercase()) {
                name = format!("{first}_{n}");
                n += 1;
            }
        }
        taken.insert(name.to_lowercase());
        j.entry.output = Some(out_dir.join(format!("{name}.dmp")));
    }
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).ok()?.modified().ok()
}

/// True when `out` is a complete kernel dump written from `main` as it is now: parsed
/// header, RequiredDumpSpace equal to the file size, not older than the input, and our
/// Comment and SystemTime naming this very file (`vm2dmp::convert::dump_matches_input`). The
/// Comment names the first file of the state: for a `.bin` that is its `.vsv`.
pub(crate) fn is_complete(out: &Path, main: &Path) -> bool {
    let Ok(dump) = DumpFile::open(out) else {
        return false;
    };
    let d = dump.dump();
    let fresh = match (modified(out), modified(main)) {
        (Some(o), Some(i)) => o >= i,
        _ => false,
    };
    let mut firsts = vec![main.to_path_buf()];
    firsts.extend(vm2dmp::hyperv::sibling_file(main, "vsv"));
    d.required_dump_space() == d.file_size()
        && fresh
        && firsts
            .iter()
            .any(|f| vm2dmp::convert::dump_matches_input(&dump, vm2dmp::hyperv::KIND, f))
}

struct Display {
    mp: MultiProgress,
    overall: ProgressBar,
    bars: bool,
    quiet: bool,
    color: bool,
}

impl Display {
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
        let (word, code) = match e.status {
            Outcome::Ok => ("ok", "32"),
            Outcome::Skipped => ("skipped", "33"),
            Outcome::Failed => ("FAILED", "31"),
        };
        let word = if self.color {
            format!("\x1b[{code}m{word:<7}\x1b[0m")
        } else {
            format!("{word:<7}")
        };
        let text = match (e.status, &e.output, &e.error) {
            (Outcome::Ok, Some(out), _) => format!(
                "{} -> {} ({}, {:.1} s)",
                e.label,
                out.display(),
                crate::list::human_bytes(e.bytes.unwrap_or(0)),
                e.seconds
            ),
            (_, _, Some(err)) => format!("{}: {err}", e.label),
            _ => e.label.clone(),
        };
        self.line(&format!("{word} {text}"));
    }
}

/// How the error of an entry that a signal stopped begins.
const INTERRUPTED: &str = "interrupted";

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
    if output.exists() && !args.force {
        return if is_complete(&output, &job.main) {
            entry.finish(
                Outcome::Skipped,
                Some("output exists and is complete (use --force to write it again)".into()),
            )
        } else {
            entry.finish(
                Outcome::Failed,
                Some(format!(
                    "{}: output exists and is not a complete dump of this input (use --force to replace it)",
                    output.display()
                )),
            )
        };
    }
    let state = match SavedState::open_with(
        &job.main,
        &OpenOptions {
            bin: job.bin.clone(),
            no_replay: args.input.no_replay,
        },
    ) {
        Ok(s) => s,
        // As when found in a folder: a file without memory is skipped, not failed.
        Err(e @ vm2dmp::Error::NoMemoryImage { .. }) => {
            return entry.finish(Outcome::Skipped, Some(e.to_string()))
        }
        Err(e) => return entry.finish(Outcome::Failed, Some(crate::describe(&e))),
    };
    entry.files = state.files();
    entry.replay_pending = state.replay_log().pending_entries;
    let bar = if display.bars {
        let b = display.mp.add(ProgressBar::new(0));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix(entry.label.chars().take(40).collect::<String>());
        b.enable_steady_tick(Duration::from_millis(250));
        b
    } else {
        ProgressBar::hidden()
    };
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

/// Runs the conversions of `inputs` into `out_dir`; the report says what happened to each.
pub(crate) fn run(
    inputs: &[PathBuf],
    out_dir: &Path,
    args: &ConvertArgs,
    opts: &ConvertOptions,
    cancel: Arc<Cancel>,
) -> Result<(), CliError> {
    let started = Instant::now();
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
    })?;

    let planned = plan(inputs, args, out_dir);
    let mut jobs: Vec<Job> = Vec::new();
    // (position in the report, entry) for entries decided while planning.
    let mut order: Vec<Result<usize, Entry>> = Vec::new();
    for p in planned {
        match p {
            Planned::Run(j) => {
                order.push(Ok(jobs.len()));
                jobs.push(j);
            }
            Planned::Done(e) => order.push(Err(e)),
        }
    }
    assign_outputs(&mut jobs, out_dir);

    let show_bars = !args.quiet && std::io::stderr().is_terminal();
    let mp = if show_bars {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    };
    let overall = if show_bars {
        let b = mp.add(ProgressBar::new(jobs.len() as u64));
        b.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {pos}/{len} inputs {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let display = Display {
        mp,
        overall,
        bars: show_bars,
        quiet: args.quiet,
        color: crate::use_color(std::io::stderr().is_terminal()),
    };
    for o in &order {
        if let Err(e) = o {
            // Entries without memory are in the report; on screen only with -v.
            if e.status == Outcome::Failed || args.verbose {
                display.entry(e);
            }
        }
    }
    if args.verbose {
        for j in &jobs {
            display.line(&format!(
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

    let workers = args.jobs.unwrap_or(1).clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Entry>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let e = convert_one(job, args, opts, &cancel, &display);
                display.entry(&e);
                if args.verbose {
                    for n in &e.notes {
                        display.line(&format!("note    {}: {n}", e.label));
                    }
                }
                display.overall.inc(1);
                let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(slot) = r.get_mut(i) {
                    *slot = Some(e);
                }
            });
        }
    });
    display.overall.finish_and_clear();

    let mut done = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let entries: Vec<Entry> = order
        .into_iter()
        .map(|o| match o {
            Ok(i) => done.get_mut(i).and_then(Option::take).unwrap_or_else(|| {
                Entry::new(&jobs[i].input, jobs[i].entry.label.clone())
                    .finish(Outcome::Failed, Some("not run".into()))
            }),
            Err(e) => e,
        })
        .collect();
    let report = Report::new(
        Some(out_dir.to_path_buf()),
        entries,
        started.elapsed().as_secs_f64(),
    );
    let report_written = match &args.report {
        Some(path) => report.write(path).map(|_| Some(path.clone())),
        None => Ok(None),
    };
    if args.json {
        crate::print_stdout(&(crate::to_json(&report)? + "\n"));
    }
    if !args.quiet {
        eprintln!(
            "{} converted, {} skipped, {} failed in {:.1} s{}",
            report.ok,
            report.skipped,
            report.failed,
            report.seconds,
            match &report_written {
                Ok(Some(p)) => format!("; report: {}", p.display()),
                _ => String::new(),
            }
        );
    }
    report_written?;
    // A signal after the last entry finished changed nothing: report the run as it went.
    let interrupted = report.entries.iter().any(|e| {
        e.error
            .as_deref()
            .is_some_and(|m| m.starts_with(INTERRUPTED))
    });
    if cancel.is_cancelled() && interrupted {
        return Err(CliError::Interrupted(format!(
            "{} of {} entries converted before it; the others were not written",
            report.ok,
            report.entries.len()
        )));
    }
    if report.failed > 0 {
        return Err(CliError::Failed(format!(
            "{} of {} entries failed",
            report.failed,
            report.entries.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe() {
        assert_eq!(sanitize("web 01__Before update!"), "web_01__Before_update");
        assert_eq!(sanitize("../../etc/passwd"), "etc_passwd");
        assert_eq!(sanitize(""), "dump");
        assert_eq!(sanitize("..."), "dump");
        assert_eq!(sanitize("a:b\\c/d"), "a_b_c_d");
        // Windows device names get a suffix; names that only start like one do not.
        assert_eq!(sanitize("CON"), "CON_");
        assert_eq!(sanitize("nul"), "nul_");
        assert_eq!(sanitize("com1"), "com1_");
        assert_eq!(sanitize("LPT9.old"), "LPT9_.old");
        assert_eq!(sanitize("CONSOLE"), "CONSOLE");
        assert_eq!(sanitize("COM10"), "COM10");
    }
}
