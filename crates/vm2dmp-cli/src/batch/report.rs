//! What happened to each entry of a batch: the report (`--report FILE`, `--json`), the line
//! each entry gets on screen, the summary line, and the result of the whole run.

use std::path::{Path, PathBuf};

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
        let text = to_json(self)? + "\n";
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
