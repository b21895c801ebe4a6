//! What happened to each entry of a batch: the report (`--report FILE`, `--json`), the line
//! each entry gets on screen, the summary line, and the result of the whole run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use vm2dmp::input::Input;
use vm2dmp::{folders::Candidate, folders::EntryKind, Cancel, MemorySource};

use crate::args::ConvertArgs;
use crate::shared::{human_bytes, paint, print_stdout, to_json};
use crate::CliError;

/// How the error of an entry that a signal stopped begins.
pub(super) const INTERRUPTED: &str = "interrupted";

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
    /// With --hash: the SHA-256 of each file read, keyed by the file as in `files`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<BTreeMap<PathBuf, String>>,
    /// With --hash: the SHA-256 of the dump written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    /// An entry reached again (a symlink, a folder and a file in it): the output of the entry
    /// that converts the same memory file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<PathBuf>,
}

/// The file name of `p` (the whole path when it has none), as an entry's label.
pub(super) fn file_label(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Entry {
    pub(super) fn new(input: &Path, label: String) -> Self {
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
            input_sha256: None,
            output_sha256: None,
            duplicate_of: None,
        }
    }

    /// The entry of a single conversion (`INPUT OUTPUT` with `--report`).
    pub(crate) fn single(input: &Path, state: &Input) -> Self {
        let mut e = Self::new(input, file_label(input));
        e.files = state.files();
        e.replay_pending = state
            .as_hyperv()
            .map_or(0, |s| s.replay_log().pending_entries);
        e
    }

    /// A single conversion that failed.
    pub(crate) fn failed(input: &Path, error: Option<String>) -> Self {
        Self::new(input, file_label(input)).finish(Outcome::Failed, error)
    }

    pub(super) fn from_candidate(input: &Path, c: &Candidate) -> Self {
        let mut e = Self::new(input, c.label());
        e.kind = Some(c.kind);
        e.vm_name = c.vm_name.clone();
        e.checkpoint_name = c.checkpoint_name.clone();
        e.checkpoint_id = c.checkpoint_id.clone();
        e.files = c.files.clone();
        e.notes = c.notes.clone();
        e
    }

    pub(super) fn finish(mut self, status: Outcome, error: Option<String>) -> Self {
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
    /// `K/N` with --shard: this report holds the entries of that shard only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// False in the report written before any conversion starts (it shows the path is
    /// writable); a run replaces it when it ends, also when it fails early.
    pub finished: bool,
    /// Why the whole run failed before converting anything (one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub entries: Vec<Entry>,
}

/// Set once a finished report has been written: a failing run then keeps it.
static FINISHED_WRITTEN: AtomicBool = AtomicBool::new(false);

/// True once this process wrote a finished report.
pub(crate) fn finished_written() -> bool {
    FINISHED_WRITTEN.load(Ordering::SeqCst)
}

/// `p` made absolute against the current folder (not resolving symbolic links: the path the
/// user gave, made usable from anywhere).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Entry {
    /// The entry with every path (input, output, files, hash keys) absolute.
    fn absolute(mut self) -> Self {
        self.input = absolute(&self.input);
        self.output = self.output.as_deref().map(absolute);
        self.duplicate_of = self.duplicate_of.as_deref().map(absolute);
        self.files = self.files.iter().map(|f| absolute(f)).collect();
        self.input_sha256 = self
            .input_sha256
            .map(|m| m.into_iter().map(|(f, h)| (absolute(&f), h)).collect());
        self
    }
}

impl Report {
    /// The report of a finished run, with every path absolute.
    pub fn new(out_dir: Option<PathBuf>, entries: Vec<Entry>, seconds: f64) -> Self {
        let entries: Vec<Entry> = entries.into_iter().map(Entry::absolute).collect();
        let count = |o: Outcome| entries.iter().filter(|e| e.status == o).count();
        Self {
            tool: "vm2dmp",
            version: env!("CARGO_PKG_VERSION"),
            out_dir: out_dir.as_deref().map(absolute),
            ok: count(Outcome::Ok),
            skipped: count(Outcome::Skipped),
            failed: count(Outcome::Failed),
            seconds,
            shard: None,
            finished: true,
            error: None,
            entries,
        }
    }

    /// The report written before anything is converted: no entries, not finished.
    pub fn placeholder(out_dir: Option<PathBuf>) -> Self {
        Self {
            finished: false,
            ..Self::new(out_dir, Vec::new(), 0.0)
        }
    }

    /// The report of a run that failed before converting anything.
    pub fn failed_run(out_dir: Option<PathBuf>, error: String, seconds: f64) -> Self {
        Self {
            error: Some(error),
            ..Self::new(out_dir, Vec::new(), seconds)
        }
    }

    /// Writes the report as JSON under a temporary name, then renames it into place.
    pub fn write(&self, path: &Path) -> Result<(), CliError> {
        write_atomic(path, &(to_json(self)? + "\n"), "cannot write report")?;
        if self.finished {
            FINISHED_WRITTEN.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Writes `text` to `path` under a temporary name beside it, then renames it into place:
/// a reader sees the old file or the new one, never a part.
pub(crate) fn write_atomic(path: &Path, text: &str, action: &'static str) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.json".into());
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let io_err = |source| {
        CliError::Lib(vm2dmp::Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        })
    };
    std::fs::write(&tmp, text).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(e)
    })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(e)
    })
}

/// The line an entry gets on screen: its status word (coloured when `color`), its label, and
/// where its dump went or why it has none.
pub(super) fn entry_line(e: &Entry, color: bool) -> String {
    let (word, code) = match e.status {
        Outcome::Ok => ("ok", "32"),
        Outcome::Skipped => ("skipped", "33"),
        Outcome::Failed => ("FAILED", "31"),
    };
    let word = paint(&format!("{word:<7}"), code, color);
    let text = match (e.status, &e.output, &e.error) {
        (Outcome::Ok, Some(out), _) => format!(
            "{} -> {} ({}, {:.1} s)",
            e.label,
            out.display(),
            human_bytes(e.bytes.unwrap_or(0) as f64),
            e.seconds
        ),
        (_, _, Some(err)) => format!("{}: {err}", e.label),
        _ => e.label.clone(),
    };
    format!("{word} {text}")
}

/// Writes the report where it was asked for (`--report`, `--json`) and, unless `-q`, the
/// summary line; the summary is printed even when the report file cannot be written.
pub(super) fn publish(report: &Report, args: &ConvertArgs) -> Result<(), CliError> {
    let report_written = match &args.report {
        Some(path) => report.write(path).map(|_| Some(path.clone())),
        None => Ok(None),
    };
    if args.json {
        print_stdout(&(to_json(report)? + "\n"));
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
    report_written.map(|_| ())
}

/// The result of the whole run: interrupted when a signal stopped an entry, failed when any
/// entry failed.
pub(super) fn verdict(report: &Report, cancel: &Cancel) -> Result<(), CliError> {
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

/// `vm2dmp report merge`: the entries of every report in order, totals counted again,
/// `seconds` the longest run's (shards run side by side), `shards` each report's shard.
/// Fails when two reports name the same output: shards of one run never do.
pub(crate) fn merge_reports(paths: &[PathBuf], output: Option<&Path>) -> Result<(), CliError> {
    use serde_json::{json, Value};
    let mut entries: Vec<Value> = Vec::new();
    let mut owner: BTreeMap<String, &Path> = BTreeMap::new();
    let (mut seconds, mut finished) = (0f64, true);
    let (mut out_dirs, mut shards, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for path in paths {
        let bad = |why: String| CliError::Usage(format!("{}: {why}", path.display()));
        let text = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let report: Value =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let list = report
            .get("entries")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("not a vm2dmp report (no \"entries\" list)".into()))?;
        for e in list {
            if let Some(out) = e.get("output").and_then(Value::as_str) {
                if let Some(first) = owner.insert(out.to_owned(), path) {
                    return Err(CliError::Failed(format!(
                        "{out}: in both {} and {}: the reports overlap (not shards of one run?)",
                        first.display(),
                        path.display()
                    )));
                }
            }
            entries.push(e.clone());
        }
        seconds = seconds.max(report.get("seconds").and_then(Value::as_f64).unwrap_or(0.0));
        finished &= report
            .get("finished")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        out_dirs.push(report.get("out_dir").cloned().unwrap_or(Value::Null));
        shards.push(report.get("shard").cloned().unwrap_or(Value::Null));
        if let Some(err) = report.get("error").and_then(Value::as_str) {
            errors.push(format!("{}: {err}", path.display()));
        }
    }
    let count = |s: &str| {
        entries
            .iter()
            .filter(|e| e.get("status").and_then(Value::as_str) == Some(s))
            .count()
    };
    let out_dir = match out_dirs.first() {
        Some(first) if out_dirs.iter().all(|d| d == first) => first.clone(),
        _ => Value::Null,
    };
    let mut merged = json!({
        "tool": "vm2dmp",
        "version": env!("CARGO_PKG_VERSION"),
        "out_dir": out_dir,
        "ok": count("ok"),
        "skipped": count("skipped"),
        "failed": count("failed"),
        "seconds": seconds,
        "shards": shards,
        "finished": finished,
        "entries": entries,
    });
    if !errors.is_empty() {
        merged["error"] = Value::String(errors.join("; "));
    }
    let text = to_json(&merged)? + "\n";
    match output {
        Some(path) => write_atomic(path, &text, "cannot write merged report"),
        None => {
            print_stdout(&text);
            Ok(())
        }
    }
}
