//! Expanding the inputs of a batch (files, folders, configuration files, disks, globs) into
//! the conversions to run and the entries decided without running anything, and giving each
//! conversion its output name.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use vm2dmp::{folders::Candidate, folders::DiscoverOptions, folders::EntryKind, folders::Status};

use super::report::{file_label, Entry, Outcome};
use crate::args::{ConvertArgs, Shard};
use crate::shared::{ext_lower, has_glob_chars};

/// One conversion to run.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// The argument this conversion comes from.
    pub input: PathBuf,
    /// Its entry in the report, output path included.
    pub entry: Entry,
    /// The file to open (`.vmrs`, `.vsv`).
    pub main: PathBuf,
    /// The `.bin` of a `.vsv`, when known.
    pub bin: Option<PathBuf>,
    /// File name of the dump without extension, before de-duplication.
    name: String,
    /// Short id to tell apart entries of the same name.
    id: Option<String>,
}

enum Planned {
    Run(Job),
    Done(Entry),
    /// The memory file of the job planned at this index of the list, reached again.
    Again(Job, usize),
}

/// The conversions of a batch and the entries decided while planning, in report order.
pub(super) struct Plan {
    /// The conversions to run, each with its output path.
    pub jobs: Vec<Job>,
    /// Every entry of the report in order: `Ok(i)` is `jobs[i]`, `Err(entry)` an entry
    /// decided without running anything.
    pub order: Vec<Result<usize, Entry>>,
}

impl Plan {
    /// Expands `inputs`, names the outputs in `out_dir`, and with `shard` keeps the entries
    /// of that shard only.
    pub fn new(inputs: &[PathBuf], args: &ConvertArgs, out_dir: &Path) -> Self {
        let planned = plan(inputs, args, out_dir);
        let mut jobs: Vec<Job> = Vec::new();
        // Per planned item: the job it is, or the entry decided.
        let mut slots: Vec<Slot> = Vec::new();
        let mut job_at: HashMap<usize, usize> = HashMap::new();
        for (i, p) in planned.into_iter().enumerate() {
            match p {
                Planned::Run(j) => {
                    job_at.insert(i, jobs.len());
                    slots.push(Slot::Job(jobs.len()));
                    jobs.push(j);
                }
                Planned::Done(e) => slots.push(Slot::Done(e)),
                Planned::Again(j, first) => slots.push(Slot::Again(j, first)),
            }
        }
        assign_outputs(&mut jobs, out_dir);
        // A file reached again gets its own entry, naming the entry that converts it.
        let slots: Vec<Slot> = slots
            .into_iter()
            .map(|s| match s {
                Slot::Again(j, first) => match job_at.get(&first) {
                    Some(&k) => Slot::Same(again_entry(j, &jobs[k]), k),
                    None => Slot::Done(j.entry),
                },
                other => other,
            })
            .collect();
        let (keep_job, keep_done) = match args.shard {
            Some(shard) => shard_members(&jobs, &slots, shard),
            None => (vec![true; jobs.len()], vec![true; slots.len()]),
        };
        let mut index = vec![None; jobs.len()];
        let mut kept = Vec::new();
        for (k, j) in jobs.into_iter().enumerate() {
            if keep_job[k] {
                index[k] = Some(kept.len());
                kept.push(j);
            }
        }
        let order = slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Job(k) => index[k].map(Ok),
                Slot::Same(e, k) => index[k].is_some().then_some(Err(e)),
                Slot::Done(e) => keep_done[i].then_some(Err(e)),
                Slot::Again(..) => None,
            })
            .collect();
        Self { jobs: kept, order }
    }

    /// The entries decided while planning.
    pub fn decided(&self) -> impl Iterator<Item = &Entry> {
        self.order.iter().filter_map(|o| o.as_ref().err())
    }

    /// Every entry in report order, `done[i]` being the result of `jobs[i]`.
    pub fn entries(self, mut done: Vec<Option<Entry>>) -> Vec<Entry> {
        let jobs = self.jobs;
        self.order
            .into_iter()
            .map(|o| match o {
                Ok(i) => done.get_mut(i).and_then(Option::take).unwrap_or_else(|| {
                    Entry::new(&jobs[i].input, jobs[i].entry.label.clone())
                        .finish(Outcome::Failed, Some("not run".into()))
                }),
                Err(e) => e,
            })
            .collect()
    }
}

/// A planned item while the plan is made.
enum Slot {
    Job(usize),
    Done(Entry),
    /// Reached again: the job, and the planned index of the first.
    Again(Job, usize),
    /// Reached again, its entry made: it goes with job `usize`.
    Same(Entry, usize),
}

/// The entry of a memory file reached again: skipped, naming the entry that converts it.
fn again_entry(again: Job, first: &Job) -> Entry {
    let mut e = again.entry;
    // As the report shows it: absolute.
    let out = first
        .entry
        .output
        .as_deref()
        .map(|o| std::path::absolute(o).unwrap_or_else(|_| o.to_path_buf()));
    e.error = Some(format!(
        "the same memory file as the entry \"{}\"{}: converted once, there",
        first.entry.label,
        out.as_deref()
            .map(|o| format!(" (-> {})", o.display()))
            .unwrap_or_default()
    ));
    e.status = Outcome::Skipped;
    e.duplicate_of = out;
    e
}

/// Which jobs and which decided entries belong to `shard`. The conversions are sorted by
/// output file name (the same on every machine, whatever the mount point of the inputs) and
/// dealt out in turn: the one at position `p` goes to shard `p % N + 1`. The entries decided
/// while planning (no memory, unreadable) are dealt out the same way, sorted by their
/// argument and label; a file reached again goes with the conversion it names.
fn shard_members(jobs: &[Job], slots: &[Slot], shard: Shard) -> (Vec<bool>, Vec<bool>) {
    let deal = |keys: Vec<(String, usize)>, len: usize| {
        let mut keys = keys;
        keys.sort();
        let mut mine = vec![false; len];
        for (p, (_, i)) in keys.into_iter().enumerate() {
            mine[i] = p % shard.count + 1 == shard.index;
        }
        mine
    };
    let job_keys = jobs
        .iter()
        .enumerate()
        .map(|(k, j)| {
            let name = j
                .entry
                .output
                .as_deref()
                .map_or_else(String::new, file_label);
            (name.to_lowercase(), k)
        })
        .collect();
    let done_keys = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::Done(e) => Some((format!("{}\u{0}{}", e.input.display(), e.label), i)),
            _ => None,
        })
        .collect();
    (deal(job_keys, jobs.len()), deal(done_keys, slots.len()))
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
    let ext = ext_lower(p);
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
    // Likewise a VMware .vmem beside its .vmss (suspended) or .vmsn (snapshot).
    let vsv = match (ext.as_str(), &args.input.bin, args.input.raw) {
        ("bin", None, false) => vm2dmp::hyperv::sibling_file(p, "vsv"),
        ("vmem", None, false) => vm2dmp::hyperv::sibling_file(p, "vmss")
            .or_else(|| vm2dmp::hyperv::sibling_file(p, "vmsn")),
        _ => None,
    };
    let (main, bin) = match vsv {
        Some(vsv) => (vsv, Some(p.to_path_buf())),
        None => (p.to_path_buf(), args.input.bin.clone()),
    };
    let mut entry = Entry::new(p, file_label(p));
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
    // The same memory files reached twice (a file and its folder, overlapping globs, a
    // symbolic link) are converted once; the later ones get an entry naming the first.
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    out.into_iter()
        .enumerate()
        .map(|(i, p)| match p {
            Planned::Run(j) => {
                let key = std::fs::canonicalize(&j.main).unwrap_or_else(|_| j.main.clone());
                match seen.get(&key) {
                    Some(&first) => Planned::Again(j, first),
                    None => {
                        seen.insert(key, i);
                        Planned::Run(j)
                    }
                }
            }
            other => other,
        })
        .collect()
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
