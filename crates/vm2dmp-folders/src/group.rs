//! Grouping the files of a tree into VMs and checkpoints, and judging each one's memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use vm2dmp_hyperv::{OpenOptions, SavedState};
use vm2dmp_source::{Error, Result};

use crate::config::*;
use crate::files::*;
use crate::*;

/// The memory files of one state: `.vmrs`, or `.vsv` and `.bin`, or an unrecognised file.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) dir: PathBuf,
    pub(crate) stem: String,
    pub(crate) hvs: Option<PathBuf>,
    pub(crate) vsv: Option<PathBuf>,
    pub(crate) bin: Option<PathBuf>,
    pub(crate) unrecognised: Option<PathBuf>,
}

impl Group {
    fn files(&self) -> Vec<PathBuf> {
        [&self.hvs, &self.vsv, &self.bin, &self.unrecognised]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Fills `c` from the memory files of `g`: opens them and records what they hold.
pub(crate) fn evaluate(c: &mut Candidate, g: &Group, opts: &DiscoverOptions, encrypted: bool) {
    c.files = g.files();
    if let Some(u) = &g.unrecognised {
        c.main = None;
        let status = if encrypted {
            Status::Encrypted
        } else {
            Status::Unreadable
        };
        c.fail(
            status,
            format!(
                "{}: neither an HVS nor a legacy saved-state signature at offset 0: encrypted (shielded VM) state, or not a saved state",
                u.display()
            ),
        );
        return;
    }
    let (main, bin) = match (&g.hvs, &g.vsv, &g.bin) {
        (Some(h), _, _) => (h.clone(), None),
        (None, Some(v), b) => (v.clone(), b.clone()),
        (None, None, Some(b)) => {
            c.fail(
                Status::MissingFile,
                format!(
                    "{}: memory file without its .vsv (memory map and vCPU state): {}.vsv is missing beside it",
                    b.display(),
                    g.stem
                ),
            );
            return;
        }
        (None, None, None) => {
            c.fail(Status::NoMemory, "no memory file");
            return;
        }
    };
    c.main = Some(main.clone());
    c.bin = bin.clone();
    match SavedState::open_with(
        &main,
        &OpenOptions {
            bin,
            no_replay: opts.no_replay,
        },
    ) {
        Ok(state) => {
            c.status = Status::Ok;
            c.convertible = true;
            c.reason = None;
            c.format = Some(state.format());
            c.memory_bytes = Some(state.ram_pages() * vm2dmp_source::PAGE_SIZE as u64);
            c.vcpus = Some(state.vcpus().len());
            c.replay_pending = state.replay_log().pending_entries;
            if encrypted {
                c.notes.push(
                    "the configuration asks for encrypted state, yet the file reads as a plain saved state"
                        .into(),
                );
            }
        }
        Err(e) => {
            let (status, reason) = match &e {
                Error::NoMemoryImage { .. } => (
                    Status::NoMemory,
                    match c.kind {
                        EntryKind::Checkpoint => format!(
                            "no memory saved with this checkpoint (a production checkpoint, or a standard checkpoint of a VM that was off): {e}"
                        ),
                        EntryKind::Vm => format!(
                            "no saved memory (the VM is running or off; its .vmrs holds runtime state only): {e}"
                        ),
                        _ => e.to_string(),
                    },
                ),
                Error::MissingBin { .. } => (Status::MissingFile, e.to_string()),
                Error::Corrupt { .. } => (Status::Corrupt, e.to_string()),
                Error::Unsupported { .. } => (Status::Unsupported, e.to_string()),
                _ => (Status::Unreadable, e.to_string()),
            };
            let status = if encrypted && status != Status::MissingFile {
                Status::Encrypted
            } else {
                status
            };
            let reason = if status == Status::Encrypted {
                format!("the configuration marks this VM's state as encrypted (shielded VM or state encryption); it cannot be read without the host's key: {e}")
            } else {
                reason
            };
            c.fail(status, reason);
        }
    }
}

pub(crate) fn scan(
    root: &Path,
    only: Option<&Path>,
    opts: &DiscoverOptions,
) -> Result<Vec<Candidate>> {
    let mut files = Vec::new();
    // For one file outside any VM folder layout, its own folder is enough.
    let outside_layout = only.is_some_and(|o| parent_dir(o) == root)
        && !root.join("Snapshots").is_dir()
        && !root.join("Virtual Machines").is_dir();
    walk(root, if outside_layout { MAX_DEPTH } else { 0 }, &mut files)?;
    let vsv_set: HashSet<PathBuf> = files
        .iter()
        .filter(|p| ext_lower(p) == "vsv")
        .cloned()
        .collect();
    // Keyed by (folder, lower-case stem).
    let mut groups: BTreeMap<(PathBuf, String, bool), Group> = BTreeMap::new();
    let mut configs: Vec<Config> = Vec::new();
    let mut guest_states: Vec<PathBuf> = Vec::new();
    for p in &files {
        let Some(role) = classify(p, &vsv_set) else {
            continue;
        };
        let dir = parent_dir(p);
        let stem = stem_of(p);
        let ext = ext_lower(p);
        // A .vmrs and a .vsv/.bin pair of the same name are two saved states.
        let legacy_family = match role {
            Role::Legacy => true,
            Role::Unrecognised => ext == "vsv" || ext == "bin",
            _ => false,
        };
        let key = (dir.clone(), stem.to_lowercase(), legacy_family);
        match role {
            Role::VmcxConfig | Role::XmlConfig => {
                if let Some(c) = read_config(p, role) {
                    configs.push(c);
                }
            }
            Role::GuestState => guest_states.push(p.clone()),
            Role::HvsState | Role::Legacy | Role::Unrecognised => {
                let g = groups.entry(key).or_insert_with(|| Group {
                    dir,
                    stem,
                    ..Group::default()
                });
                match (role, ext.as_str()) {
                    (Role::HvsState, _) => {
                        if g.hvs.is_none() {
                            g.hvs = Some(p.clone());
                        }
                    }
                    // A .bin without a known signature still pairs with its .vsv: opening
                    // the pair then names the damaged file.
                    (Role::Legacy | Role::Unrecognised, "bin") => g.bin = Some(p.clone()),
                    (Role::Legacy, _) => {
                        if g.vsv.is_none() {
                            g.vsv = Some(p.clone());
                        } else {
                            g.bin = Some(p.clone());
                        }
                    }
                    _ => g.unrecognised = Some(p.clone()),
                }
            }
        }
    }

    // Configuration for a group or a guest-state file: same stem, in the same folder or in the
    // folder above (2008 to 2012 R2 keep <GUID>/<GUID>.vsv beside <GUID>.xml).
    let find_config = |dir: &Path, stem: &str| -> Option<usize> {
        let up = dir.parent().map(Path::to_path_buf);
        let same_stem = |c: &Config| stem_of(&c.path).eq_ignore_ascii_case(stem);
        configs
            .iter()
            .position(|c| same_stem(c) && parent_dir(&c.path) == dir)
            .or_else(|| {
                configs.iter().position(|c| {
                    same_stem(c) && up.as_deref().is_some_and(|u| parent_dir(&c.path) == u)
                })
            })
    };

    // VM configurations by id, and the VM of each checkpoint configuration.
    let vm_configs: Vec<usize> = (0..configs.len())
        .filter(|&i| !configs[i].checkpoint)
        .collect();
    let vm_of_config = |c: &Config| -> Option<usize> {
        if !c.checkpoint {
            return None;
        }
        if let Some(v) = &c.vm_id {
            if let Some(&i) = vm_configs.iter().find(|&&i| configs[i].id == *v) {
                return Some(i);
            }
        }
        // Snapshots/ beside Virtual Machines/ holding a single VM.
        let snap_dir = parent_dir(&c.path);
        if let Some(base) = snap_dir.parent() {
            let vms: Vec<usize> = vm_configs
                .iter()
                .copied()
                .filter(|&i| {
                    let d = parent_dir(&configs[i].path);
                    d.parent() == Some(base) || d == base
                })
                .collect();
            if let [one] = vms.as_slice() {
                return Some(*one);
            }
        }
        if let [one] = vm_configs.as_slice() {
            return Some(*one);
        }
        None
    };

    let mut out: Vec<Candidate> = Vec::new();
    let mut used_configs = vec![false; configs.len()];
    let fill_from_config = |c: &mut Candidate, ci: usize| {
        let cfg = &configs[ci];
        c.layout = cfg.layout;
        c.configuration = Some(cfg.path.clone());
        if let Some(p) = &cfg.problem {
            c.notes.push(format!(
                "configuration {} could not be read: {p}",
                cfg.path.display()
            ));
        }
        if cfg.checkpoint {
            c.kind = EntryKind::Checkpoint;
            c.checkpoint_id = Some(cfg.id.clone());
            c.checkpoint_name = cfg.name.clone();
            c.created = cfg.created.clone();
            c.parent_id = cfg.parent_id.clone();
            match vm_of_config(cfg) {
                Some(vi) => {
                    c.vm_id = Some(configs[vi].id.clone());
                    c.vm_name = configs[vi].name.clone();
                }
                None => c.vm_id = cfg.vm_id.clone(),
            }
        } else {
            c.kind = EntryKind::Vm;
            c.vm_id = Some(cfg.id.clone());
            c.vm_name = cfg.name.clone();
            c.created = cfg.created.clone();
        }
    };

    let wanted = |paths: &[PathBuf], cfg: Option<&Path>| -> bool {
        match only {
            None => true,
            Some(o) => {
                paths.iter().any(|p| same_file(p, o)) || cfg.is_some_and(|c| same_file(c, o))
            }
        }
    };

    for g in groups.values() {
        let ci = find_config(&g.dir, &g.stem);
        if !wanted(&g.files(), ci.map(|i| configs[i].path.as_path())) {
            if let Some(i) = ci {
                used_configs[i] = true;
            }
            continue;
        }
        let mut c = Candidate::new(EntryKind::SavedState);
        let mut encrypted = false;
        if let Some(i) = ci {
            used_configs[i] = true;
            fill_from_config(&mut c, i);
            encrypted = configs[i].encrypted;
        } else {
            // No configuration: the folder tells what it is.
            let mut d = g.dir.clone();
            if normalize_guid(
                &d.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
            .is_some()
            {
                d = parent_dir(&d);
            }
            let id = normalize_guid(&g.stem).unwrap_or_else(|| g.stem.clone());
            if dir_name_is(&d, "Snapshots") {
                c.kind = EntryKind::Checkpoint;
                c.checkpoint_id = Some(id);
            } else if dir_name_is(&d, "Virtual Machines") {
                c.kind = EntryKind::Vm;
                c.vm_id = Some(id);
            }
        }
        evaluate(&mut c, g, opts, encrypted);
        out.push(c);
    }

    // Configurations without memory files.
    for (i, cfg) in configs.iter().enumerate() {
        if used_configs[i] || !wanted(&[], Some(&cfg.path)) {
            continue;
        }
        let mut c = Candidate::new(EntryKind::Vm);
        fill_from_config(&mut c, i);
        if let Some(p) = &cfg.problem {
            c.fail(
                Status::Unreadable,
                format!(
                    "configuration {} could not be read: {p}",
                    cfg.path.display()
                ),
            );
        } else if c.kind == EntryKind::Checkpoint {
            c.fail(
                Status::NoMemory,
                "no memory saved with this checkpoint (a production checkpoint, or a standard checkpoint of a VM that was off): no .vmrs or .vsv/.bin beside its configuration",
            );
        } else {
            c.fail(
                Status::NoMemory,
                "no saved state: the VM is off or running (no .vmrs or .vsv/.bin beside its configuration)",
            );
        }
        out.push(c);
    }

    // Guest-state files.
    for p in &guest_states {
        let ci = find_config(&parent_dir(p), &stem_of(p));
        if !wanted(std::slice::from_ref(p), None) {
            continue;
        }
        let mut c = Candidate::new(EntryKind::GuestState);
        if let Some(i) = ci {
            fill_from_config(&mut c, i);
            c.kind = EntryKind::GuestState;
        }
        c.files = vec![p.clone()];
        c.fail(
            Status::NotMemory,
            "a .vmgs file holds guest firmware state (UEFI variables, vTPM), never memory",
        );
        out.push(c);
    }

    link_parents_and_sort(&mut out);
    Ok(out)
}

/// Parent names, depth in the checkpoint tree, and a stable order: by VM, the VM's own state
/// first, then its checkpoint tree (parents before children, older first), then guest state;
/// entries without a VM last, by file.
pub(crate) fn link_parents_and_sort(out: &mut [Candidate]) {
    let names: HashMap<String, Option<String>> = out
        .iter()
        .filter(|c| c.kind == EntryKind::Checkpoint)
        .filter_map(|c| Some((c.checkpoint_id.clone()?, c.checkpoint_name.clone())))
        .collect();
    let parents: HashMap<String, String> = out
        .iter()
        .filter(|c| c.kind == EntryKind::Checkpoint)
        .filter_map(|c| Some((c.checkpoint_id.clone()?, c.parent_id.clone()?)))
        .collect();
    for c in out.iter_mut() {
        if let Some(p) = &c.parent_id {
            c.parent_name = names.get(p).cloned().flatten();
        }
        if c.kind == EntryKind::Checkpoint {
            let mut depth = 0;
            let mut cur = c.checkpoint_id.clone();
            let mut seen = HashSet::new();
            while let Some(id) = cur {
                if !seen.insert(id.clone()) {
                    break;
                }
                match parents.get(&id) {
                    Some(p) if names.contains_key(p) => {
                        depth += 1;
                        cur = Some(p.clone());
                    }
                    _ => break,
                }
            }
            c.depth = depth;
        }
    }
    // Tree order within a VM: the path of creation keys from the root.
    let created: HashMap<String, (String, String)> = out
        .iter()
        .filter(|c| c.kind == EntryKind::Checkpoint)
        .filter_map(|c| {
            Some((
                c.checkpoint_id.clone()?,
                (
                    c.created.clone().unwrap_or_default(),
                    c.checkpoint_name.clone().unwrap_or_default(),
                ),
            ))
        })
        .collect();
    let tree_key = |c: &Candidate| -> Vec<(String, String, String)> {
        let mut chain = Vec::new();
        let mut cur = c.checkpoint_id.clone();
        let mut seen = HashSet::new();
        while let Some(id) = cur {
            if !seen.insert(id.clone()) {
                break;
            }
            let (t, n) = created.get(&id).cloned().unwrap_or_default();
            chain.push((t, n, id.clone()));
            cur = parents.get(&id).filter(|p| names.contains_key(*p)).cloned();
        }
        chain.reverse();
        chain
    };
    let kind_rank = |k: EntryKind| match k {
        EntryKind::Vm => 0,
        EntryKind::Checkpoint => 1,
        EntryKind::GuestState => 2,
        EntryKind::SavedState => 3,
        EntryKind::Disk => 4,
    };
    out.sort_by_cached_key(|c| {
        (
            c.vm_id.is_none(),
            c.vm_name.clone().unwrap_or_default().to_lowercase(),
            c.vm_id.clone().unwrap_or_default(),
            kind_rank(c.kind),
            if c.kind == EntryKind::Checkpoint {
                tree_key(c)
            } else {
                Vec::new()
            },
            c.files.first().cloned().or_else(|| c.configuration.clone()),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        assert_eq!(
            normalize_guid("{0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9}").as_deref(),
            Some("0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9")
        );
        assert!(normalize_guid("0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F").is_none());
        assert!(normalize_guid("0A1B2C3D-4E5F-6071-8293_A4B5C6D7E8F9").is_none());
        assert!(normalize_guid("").is_none());
        assert!(normalize_guid("{}").is_none());
    }

    #[test]
    fn filetimes() {
        assert_eq!(
            filetime_rfc3339(116_444_736_000_000_000).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        // 2024-02-29 12:34:56 UTC = 1709210096 s after the Unix epoch.
        let ft = 116_444_736_000_000_000 + 1_709_210_096 * 10_000_000;
        assert_eq!(
            filetime_rfc3339(ft).as_deref(),
            Some("2024-02-29T12:34:56Z")
        );
        assert_eq!(filetime_rfc3339(0), None);
        assert_eq!(filetime_rfc3339(u64::MAX), None);
    }

    #[test]
    fn base64_and_text() {
        assert_eq!(
            base64_decode("AAECAwQFBgc=").unwrap(),
            vec![0, 1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a*b").is_none());
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "<configuration/>".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&utf16).as_deref(), Some("<configuration/>"));
        assert_eq!(decode_text(b"<a/>").as_deref(), Some("<a/>"));
        assert!(decode_text(&[0xFF, 0xFE, 0x00, 0xD8]).is_none());
    }
}
