//! `vm2dmp list`: the VMs, checkpoints and saved-state files of a folder, and which of them
//! hold memory that can be converted.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use serde::Serialize;
use vm2dmp::{
    folders::Candidate, folders::DiscoverOptions, folders::Discovery, folders::EntryKind,
    folders::Status,
};

use crate::args::ListArgs;
use crate::shared::{human_bytes, paint, print_stdout, to_json, use_color};

#[derive(Serialize)]
struct ListReport<'a> {
    path: &'a Path,
    /// Entries whose memory can be converted.
    convertible: usize,
    entries: &'a [Candidate],
}

pub(crate) fn run(args: &ListArgs) -> vm2dmp::Result<()> {
    let found = match other_format(&args.path) {
        Some(c) => Discovery {
            path: args.path.clone(),
            entries: vec![c],
        },
        None => vm2dmp::folders::discover(
            &args.path,
            &DiscoverOptions {
                no_replay: args.no_replay,
            },
        )?,
    };
    if args.json {
        let report = ListReport {
            path: &found.path,
            convertible: found.convertible().count(),
            entries: &found.entries,
        };
        let text = to_json(&report).map_err(|e| vm2dmp::Error::InvalidArgument(e.message()))?;
        print_stdout(&(text + "\n"));
        return Ok(());
    }
    let color = use_color(std::io::stdout().is_terminal());
    print_stdout(&render(&found, args.verbose, color));
    Ok(())
}

/// The entry of a file in a format other than Hyper-V's (QEMU, VirtualBox, VMware), read by
/// its reader; `None` for folders, Hyper-V files and files of no known format (which the
/// folder discovery reports).
fn other_format(path: &Path) -> Option<Candidate> {
    use vm2dmp::input::{detect, Format, Input, OpenOptions};
    use vm2dmp::MemorySource;
    if !path.is_file() {
        return None;
    }
    let format = match detect(path) {
        Ok(Some(Format::HyperV)) | Err(_) => return None,
        Ok(Some(f)) => f,
        // A .vmem given alone: its state file beside it.
        Ok(None) => {
            let ext = path.extension()?.to_str()?;
            if !ext.eq_ignore_ascii_case("vmem") {
                return None;
            }
            Format::Vmware
        }
    };
    Some(match Input::open(path, &OpenOptions::default()) {
        Ok(input) => {
            let m = input.machine();
            Candidate::other_format(
                input.files(),
                m.kind,
                Ok((input.ram_pages() << 12, input.vcpus().len())),
                m.notes,
            )
        }
        Err(e) => Candidate::other_format(
            vec![path.to_path_buf()],
            format.name().to_string(),
            Err(crate::describe(&e)),
            Vec::new(),
        ),
    })
}

/// The status word as shown, padded, coloured when asked.
pub(crate) fn status_word(s: Status, color: bool) -> String {
    let (word, code) = match s {
        Status::Ok => ("ok", "32"),
        Status::NoMemory => ("no-memory", "33"),
        Status::NotMemory => ("not-memory", "2"),
        Status::MissingFile => ("missing-file", "31"),
        Status::Corrupt => ("corrupt", "31"),
        Status::Unsupported => ("unsupported", "31"),
        Status::Encrypted => ("encrypted", "31"),
        Status::Unreadable => ("unreadable", "31"),
    };
    paint(&format!("{word:<12}"), code, color)
}

/// `p` relative to the listed folder when it is inside it.
fn shown(root: &Path, p: &Path) -> String {
    let base = if root.is_dir() {
        root
    } else {
        root.parent().unwrap_or(root)
    };
    p.strip_prefix(base)
        .ok()
        .filter(|r| !r.as_os_str().is_empty())
        .unwrap_or(p)
        .display()
        .to_string()
}

fn describe(c: &Candidate) -> String {
    let mut s = match c.kind {
        EntryKind::Vm => "VM state".to_string(),
        EntryKind::Checkpoint => format!(
            "checkpoint \"{}\"",
            c.checkpoint_name.as_deref().unwrap_or("?")
        ),
        EntryKind::SavedState => c
            .format_name
            .clone()
            .unwrap_or_else(|| "saved state".to_string()),
        EntryKind::GuestState => match (&c.checkpoint_name, &c.checkpoint_id) {
            (Some(n), _) => format!("guest state (.vmgs) of checkpoint \"{n}\""),
            (None, Some(id)) => format!("guest state (.vmgs) of checkpoint {{{id}}}"),
            _ => "guest state (.vmgs)".to_string(),
        },
        EntryKind::Disk => "virtual disk".to_string(),
    };
    if c.kind == EntryKind::Checkpoint {
        if let Some(id) = &c.checkpoint_id {
            let _ = write!(s, " {{{id}}}");
        }
    }
    if let (Some(t), false) = (&c.created, c.kind == EntryKind::GuestState) {
        let _ = write!(s, ", created {t}");
    }
    if c.parent_id.is_some() {
        let parent = c
            .parent_name
            .as_deref()
            .map(|n| format!("\"{n}\""))
            .or_else(|| c.parent_id.as_deref().map(|p| format!("{{{p}}}")))
            .unwrap_or_default();
        let _ = write!(s, ", parent {parent}");
    }
    if let Some(b) = c.memory_bytes {
        let _ = write!(s, ", {}", human_bytes(b as f64));
    }
    if c.replay_pending > 0 {
        let _ = write!(s, ", dirty ({} pending log entries)", c.replay_pending);
    }
    s
}

fn render(found: &Discovery, verbose: bool, color: bool) -> String {
    let mut o = String::new();
    let root = &found.path;
    let vms: std::collections::BTreeSet<&str> = found
        .entries
        .iter()
        .filter_map(|c| c.vm_id.as_deref())
        .collect();
    let checkpoints = found
        .entries
        .iter()
        .filter(|c| c.kind == EntryKind::Checkpoint)
        .count();
    let convertible = found.convertible().count();
    let _ = writeln!(
        o,
        "{}: {} VM{}, {} checkpoint{}, {} memory image{} to convert",
        root.display(),
        vms.len(),
        if vms.len() == 1 { "" } else { "s" },
        checkpoints,
        if checkpoints == 1 { "" } else { "s" },
        convertible,
        if convertible == 1 { "" } else { "s" }
    );
    let mut current_vm: Option<Option<&str>> = None;
    for c in &found.entries {
        let vm = c.vm_id.as_deref();
        if current_vm != Some(vm) {
            current_vm = Some(vm);
            let _ = writeln!(o);
            match vm {
                Some(id) => {
                    let name = c.vm_name.as_deref().unwrap_or("?");
                    let layout = match c.layout {
                        vm2dmp::folders::FolderLayout::Vmcx => " (2016+ layout, .vmcx)",
                        vm2dmp::folders::FolderLayout::Xml => " (2008-2012 R2 layout, .xml)",
                        vm2dmp::folders::FolderLayout::None => "",
                    };
                    let _ = writeln!(o, "VM \"{name}\" {{{id}}}{layout}");
                }
                None => {
                    let _ = writeln!(o, "Without a VM configuration:");
                }
            }
        }
        let indent = "  ".repeat(c.depth.min(16));
        let _ = writeln!(
            o,
            "  {} {indent}{}",
            status_word(c.status, color),
            describe(c)
        );
        let pad = " ".repeat(15);
        if !c.files.is_empty() {
            let files: Vec<String> = c.files.iter().map(|p| shown(root, p)).collect();
            let _ = writeln!(o, "{pad}{indent}{}", files.join(" + "));
        }
        if let Some(r) = &c.reason {
            let _ = writeln!(o, "{pad}{indent}{r}");
        }
        if verbose {
            if let Some(cfg) = &c.configuration {
                let _ = writeln!(o, "{pad}{indent}configuration: {}", shown(root, cfg));
            }
            if let Some(n) = c.vcpus {
                let _ = writeln!(o, "{pad}{indent}vCPUs: {n}");
            }
            for n in &c.notes {
                let _ = writeln!(o, "{pad}{indent}note: {n}");
            }
        }
    }
    let named = found
        .convertible()
        .any(|c| matches!(c.kind, EntryKind::Vm | EntryKind::Checkpoint));
    if convertible > 0 {
        let one = if named {
            format!(
                "vm2dmp convert {} --checkpoint NAME|GUID OUT.dmp",
                root.display()
            )
        } else {
            "vm2dmp convert FILE OUT.dmp".to_string()
        };
        let _ = writeln!(
            o,
            "\nConvert one with `{one}`, or all with `vm2dmp convert {} --out-dir DIR`.",
            root.display()
        );
    }
    o
}
