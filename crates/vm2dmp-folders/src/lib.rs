//! Finding memory images in VM folders: VMs, checkpoints, their configuration files and the
//! files that hold their memory, for both Hyper-V folder layouts.
//!
//! - Windows Server 2016 / Windows 10 and later: `Virtual Machines/<GUID>.vmcx` (configuration,
//!   the same HVS container as `.vmrs`), `Virtual Machines/<GUID>.vmrs`, `<GUID>.vmgs`, and
//!   `Snapshots/<GUID>.vmcx` / `.vmrs` / `.vmgs` per checkpoint.
//! - Windows Server 2008 to 2012 R2: `Virtual Machines/<GUID>.xml` with
//!   `Virtual Machines/<GUID>/<GUID>.vsv` + `.bin`, and `Snapshots/<GUID>.xml` with
//!   `Snapshots/<GUID>/<GUID>.vsv` + `.bin` per checkpoint.
//!
//! Files are recognised by their first bytes (saved states) and their names (configuration,
//! guest state, disks). Which configuration keys name a checkpoint, its parent and its time is
//! not verified on real files: `docs/vm-folders.md` lists what is verified and what is assumed.
//! Nothing here fails on a bad file: each problem becomes the status and reason of the entry it
//! concerns, so one damaged checkpoint never hides the others.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod files;
mod group;

pub use config::filetime_rfc3339;
use config::*;
use files::*;
use group::*;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use vm2dmp_hyperv::{InputFormat, OpenOptions, SavedState};
use vm2dmp_source::{Ambiguity, Error, Result};

/// Folder levels searched below the given path.
const MAX_DEPTH: usize = 8;
/// Files looked at in one search; a larger tree is refused rather than walked for minutes.
const MAX_FILES: usize = 200_000;
/// Larger `.xml` files are not VM configurations.
const MAX_XML_BYTES: u64 = 16 << 20;
/// Larger `.vmcx` files are not read as configurations.
const MAX_VMCX_BYTES: u64 = 256 << 20;

/// Configuration keys, as paths from the root: `/configuration/properties/name` in a `.vmcx`,
/// nested elements `<configuration><properties><name>` in an `.xml`.
pub mod keys {
    /// VM or checkpoint name (string). Assumed for `.vmcx`; named by published articles for
    /// `.xml`.
    pub const NAME: &str = "configuration/properties/name";
    /// Configuration version (integer). Verified: the sample `.VMRS` carries it.
    pub const VERSION: &str = "configuration/properties/version";
    /// Creation time: a FILETIME as 8 bytes (binary, or base64 text in `.xml`) or an integer.
    /// Assumed.
    pub const CREATION_TIME: &str = "configuration/properties/creation_time";
    /// The identifier of the VM or checkpoint (GUID string), used when the file name is not
    /// a GUID. Assumed.
    pub const GLOBAL_ID: &str = "configuration/properties/global_id";
    /// A checkpoint's parent checkpoint (GUID string). Assumed.
    pub const PARENT_SNAPSHOT_ID: &str = "configuration/properties/parent_snapshot_id";
    /// The VM a checkpoint belongs to (GUID string). Assumed.
    pub const VM_ID: &str = "configuration/properties/vm_id";
    /// The logical identifier (GUID string). Verified in real VM configurations, where it
    /// equals the VM's own `global_id`; taken as the owning VM when it differs (assumed to
    /// be so in a checkpoint's configuration) and `VM_ID` is absent.
    pub const LOGICAL_ID: &str = "configuration/settings/global/logical_id";
    /// Booleans that mark a VM whose saved state is encrypted: shielding, and state
    /// encryption (`encrypt_state_migration` from configuration version 7.1,
    /// `data_protection_requested` before). Paths as the Hyper-V worker process reads them
    /// (from published disassembly); not seen set in a real file.
    pub const ENCRYPTION: [&str; 3] = [
        "configuration/security/settings/shielding_requested",
        "configuration/security/settings/encrypt_state_migration",
        "configuration/security/settings/data_protection_requested",
    ];
}

/// What an entry of a [`Discovery`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum EntryKind {
    /// A VM's own state (`Virtual Machines/`): memory only while the VM is saved.
    Vm,
    /// A checkpoint (`Snapshots/`).
    Checkpoint,
    /// A saved-state file found without a configuration beside it.
    SavedState,
    /// A `.vmgs` guest-state file (firmware variables, vTPM): never memory.
    GuestState,
    /// A virtual disk (`.vhd(x)`, `.avhd(x)`): never memory.
    Disk,
}

/// Which folder layout an entry comes from, told by its configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum FolderLayout {
    /// Windows Server 2016 / Windows 10 and later: `.vmcx` configuration.
    Vmcx,
    /// Windows Server 2008 to 2012 R2: `.xml` configuration.
    Xml,
    /// No configuration file was found for it.
    None,
}

/// Whether an entry's memory can be converted, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Status {
    /// Memory present and readable.
    Ok,
    /// A valid entry that holds no memory (production checkpoint, checkpoint or VM that was
    /// off, running VM).
    NoMemory,
    /// A file that never holds memory (`.vmgs`, disks).
    NotMemory,
    /// One of the files that hold the memory is missing (a `.bin` without its `.vsv`, ...).
    MissingFile,
    /// A saved-state file with a damaged structure.
    Corrupt,
    /// A variant of the format this reader does not read.
    Unsupported,
    /// The VM's state is encrypted (shielded VM, state encryption).
    Encrypted,
    /// The file could not be read, or is not recognised as a saved state.
    Unreadable,
}

/// One VM state, checkpoint or file found by [`discover`].
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Candidate {
    /// What the entry is.
    pub kind: EntryKind,
    /// Whether its memory can be converted, or why not.
    pub status: Status,
    /// `status == Ok`: the memory can be converted.
    pub convertible: bool,
    /// Why the memory cannot be converted (one line), when it cannot.
    pub reason: Option<String>,
    /// Which folder layout the configuration file belongs to ([`FolderLayout::None`] without
    /// one).
    pub layout: FolderLayout,
    /// The VM's name from its configuration, when known.
    pub vm_name: Option<String>,
    /// The VM's GUID (lower case, no braces) or, for a VM found without one, its file name.
    pub vm_id: Option<String>,
    /// A checkpoint's name from its configuration, when known.
    pub checkpoint_name: Option<String>,
    /// A checkpoint's GUID (lower case, no braces) or, when its file name is not one, that
    /// name.
    pub checkpoint_id: Option<String>,
    /// Creation time from the configuration, RFC 3339 UTC when it is a FILETIME.
    pub created: Option<String>,
    /// The parent checkpoint's GUID (lower case, no braces), when the configuration names one.
    pub parent_id: Option<String>,
    /// The parent checkpoint's name, when it is among the entries found.
    pub parent_name: Option<String>,
    /// Level in the checkpoint tree (0 for a checkpoint without a known parent).
    pub depth: usize,
    /// The configuration file (`.vmcx` or `.xml`), when found.
    pub configuration: Option<PathBuf>,
    /// The files that hold the memory (`.vmrs`, or `.vsv` then `.bin`), or the file the entry
    /// is about.
    pub files: Vec<PathBuf>,
    /// Format of the memory files, when they could be opened.
    pub format: Option<InputFormat>,
    /// The format in words, for a memory file that is not a Hyper-V saved state (a QEMU ELF
    /// core, a VMware snapshot, ...: see [`Candidate::other_format`]).
    pub format_name: Option<String>,
    /// Guest RAM in bytes, when readable.
    pub memory_bytes: Option<u64>,
    /// Number of vCPUs in the saved state, when readable.
    pub vcpus: Option<usize>,
    /// Pending replay-log entries of a dirty `.vmrs` (replayed in memory unless `no_replay`).
    pub replay_pending: u32,
    /// Other facts worth knowing (unreadable configuration, encryption requested, ...).
    pub notes: Vec<String>,
    #[cfg_attr(feature = "serde", serde(skip))]
    main: Option<PathBuf>,
    #[cfg_attr(feature = "serde", serde(skip))]
    bin: Option<PathBuf>,
}

impl Candidate {
    fn new(kind: EntryKind) -> Self {
        Self {
            kind,
            status: Status::Ok,
            convertible: false,
            reason: None,
            layout: FolderLayout::None,
            vm_name: None,
            vm_id: None,
            checkpoint_name: None,
            checkpoint_id: None,
            created: None,
            parent_id: None,
            parent_name: None,
            depth: 0,
            configuration: None,
            files: Vec::new(),
            format: None,
            format_name: None,
            memory_bytes: None,
            vcpus: None,
            replay_pending: 0,
            notes: Vec::new(),
            main: None,
            bin: None,
        }
    }

    /// The entry of a memory file in another format than Hyper-V's, read by its own reader:
    /// `files` main file first, `format` in words; `Err(reason)` when it could not be read.
    pub fn other_format(
        files: Vec<PathBuf>,
        format: String,
        read: std::result::Result<(u64, usize), String>,
        notes: Vec<String>,
    ) -> Self {
        let mut c = Self::new(EntryKind::SavedState);
        c.main = files.first().cloned();
        c.files = files;
        c.format_name = Some(format);
        c.notes = notes;
        match read {
            Ok((bytes, vcpus)) => {
                c.convertible = true;
                c.memory_bytes = Some(bytes);
                c.vcpus = Some(vcpus);
            }
            Err(why) => c.fail(Status::Corrupt, why),
        }
        c
    }

    fn fail(&mut self, status: Status, reason: impl Into<String>) {
        self.status = status;
        self.convertible = false;
        self.reason = Some(reason.into());
    }

    /// The file to open (`.vmrs` or `.vsv`), when the entry has memory files.
    pub fn main_file(&self) -> Option<&Path> {
        self.main.as_deref()
    }

    /// The `.bin` of a `.vsv`, when the entry has one.
    pub fn bin_file(&self) -> Option<&Path> {
        self.bin.as_deref()
    }

    /// Opens the entry's memory.
    pub fn open(&self, no_replay: bool) -> Result<SavedState> {
        let main = self.main.as_deref().ok_or_else(|| Error::NoMemoryImage {
            path: self
                .configuration
                .clone()
                .or_else(|| self.files.first().cloned())
                .unwrap_or_default(),
            detail: self
                .reason
                .clone()
                .unwrap_or_else(|| "no memory file was found for it".into()),
        })?;
        SavedState::open_with(
            main,
            &OpenOptions {
                bin: self.bin.clone(),
                no_replay,
            },
        )
    }

    /// A short human name: `VM / checkpoint`, `VM (saved state)` or the file name.
    pub fn label(&self) -> String {
        let file = || {
            self.files
                .first()
                .or(self.configuration.as_ref())
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "?".into())
        };
        let vm = self.vm_name.clone().or_else(|| self.vm_id.clone());
        match self.kind {
            EntryKind::Checkpoint => {
                let cp = self
                    .checkpoint_name
                    .clone()
                    .or_else(|| self.checkpoint_id.clone())
                    .unwrap_or_else(file);
                match vm {
                    Some(v) => format!("{v} / {cp}"),
                    None => cp,
                }
            }
            EntryKind::Vm => format!("{} (VM state)", vm.unwrap_or_else(file)),
            EntryKind::GuestState => format!("{} (guest state)", file()),
            EntryKind::SavedState | EntryKind::Disk => file(),
        }
    }

    /// True when `selector` names this entry: its checkpoint GUID or name, or (for a VM's own
    /// state) the VM's GUID or name. GUIDs match without braces and in any case.
    pub fn matches(&self, selector: &str) -> bool {
        let sel = selector.trim();
        let guid = normalize_guid(sel);
        let (id, name) = match self.kind {
            EntryKind::Checkpoint => (&self.checkpoint_id, &self.checkpoint_name),
            EntryKind::Vm => (&self.vm_id, &self.vm_name),
            _ => return false,
        };
        if let (Some(g), Some(i)) = (&guid, id) {
            if g == i {
                return true;
            }
        }
        name.as_deref()
            .is_some_and(|n| n == sel || n.to_lowercase() == sel.to_lowercase())
    }
}

/// Options of [`discover`].
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Read dirty `.vmrs` files as they are, without replaying pending log entries in memory.
    pub no_replay: bool,
}

/// What [`discover`] found.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Discovery {
    /// The path that was searched.
    pub path: PathBuf,
    /// Every entry found, grouped by VM (by name in any case, then GUID; entries of no known
    /// VM last). Within a VM: its own state, its checkpoints in tree order (a parent before
    /// its children, siblings by creation time), then guest-state, saved-state and disk files.
    pub entries: Vec<Candidate>,
}

impl Discovery {
    /// Entries whose memory can be converted.
    pub fn convertible(&self) -> impl Iterator<Item = &Candidate> {
        self.entries.iter().filter(|c| c.convertible)
    }

    /// The one entry to convert: the one `selector` names (see [`Candidate::matches`]), or
    /// without a selector the only convertible entry. Errors are one line and list the choices.
    pub fn select(&self, selector: Option<&str>) -> Result<&Candidate> {
        let choices = || {
            let v: Vec<String> = self
                .entries
                .iter()
                .filter(|c| matches!(c.kind, EntryKind::Vm | EntryKind::Checkpoint))
                .map(|c| {
                    let id = match c.kind {
                        EntryKind::Vm => c.vm_id.as_deref(),
                        _ => c.checkpoint_id.as_deref(),
                    };
                    format!(
                        "\"{}\"{}{}",
                        c.label(),
                        id.map_or(String::new(), |i| format!(" {{{i}}}")),
                        if c.convertible { "" } else { " (no memory)" }
                    )
                })
                .collect();
            if v.is_empty() {
                String::new()
            } else {
                format!("; found: {}", v.join(", "))
            }
        };
        match selector {
            Some(sel) => {
                let hits: Vec<&Candidate> =
                    self.entries.iter().filter(|c| c.matches(sel)).collect();
                match hits.as_slice() {
                    [] => Err(Error::NoMatch {
                        path: self.path.clone(),
                        name: sel.to_string(),
                        found: choices(),
                    }),
                    [one] if one.convertible => Ok(one),
                    [one] => Err(Error::NoMemoryImage {
                        path: one
                            .configuration
                            .clone()
                            .or_else(|| one.files.first().cloned())
                            .unwrap_or_else(|| self.path.clone()),
                        detail: format!(
                            "{}: {}",
                            one.label(),
                            one.reason.as_deref().unwrap_or("no memory")
                        ),
                    }),
                    many => Err(Error::Ambiguous {
                        path: self.path.clone(),
                        kind: Ambiguity::Name {
                            name: sel.to_string(),
                            count: many.len(),
                        },
                        found: choices(),
                    }),
                }
            }
            None => {
                let ok: Vec<&Candidate> = self.convertible().collect();
                match ok.as_slice() {
                    [one] => Ok(one),
                    [] => Err(Error::NoMemoryImage {
                        path: self.path.clone(),
                        detail: format!(
                            "no VM state or checkpoint with memory was found here{}",
                            choices()
                        ),
                    }),
                    many => Err(Error::Ambiguous {
                        path: self.path.clone(),
                        kind: Ambiguity::SeveralImages { count: many.len() },
                        found: choices(),
                    }),
                }
            }
        }
    }
}

/// Lists the VMs, checkpoints and saved-state files under `path` (a VM folder, a Hyper-V root
/// folder, or one file) with the status of their memory. An error only when `path` itself
/// cannot be read; problems with the files found are reported per entry.
pub fn discover(path: &Path, opts: &DiscoverOptions) -> Result<Discovery> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Input {
        path: path.to_path_buf(),
        action: "cannot open",
        source,
    })?;
    if meta.is_dir() {
        let entries = scan(path, None, opts)?;
        return Ok(Discovery {
            path: path.to_path_buf(),
            entries,
        });
    }
    if is_disk_name(path) {
        let entry = match memory_for_disk(path, opts) {
            Ok(c) => c,
            Err(e) => {
                let mut c = Candidate::new(EntryKind::Disk);
                c.files.push(path.to_path_buf());
                let reason = match e {
                    Error::NoMemoryImage { detail, .. } => detail,
                    other => other.to_string(),
                };
                c.fail(Status::NotMemory, reason);
                c
            }
        };
        return Ok(Discovery {
            path: path.to_path_buf(),
            entries: vec![entry],
        });
    }
    // One file: search the folder tree it belongs to, keep the entries about it.
    let root = root_of_file(path);
    let entries = scan(&root, Some(path), opts)?;
    Ok(Discovery {
        path: path.to_path_buf(),
        entries,
    })
}

/// The checkpoint or VM state whose memory goes with a virtual disk (`.avhdx`, `.avhd`,
/// `.vhdx`, `.vhd`): the entry whose configuration names the disk file. A disk holds disk
/// contents only; when no configuration near it names it, the error says where checkpoint
/// memory is kept.
pub fn memory_for_disk(disk: &Path, opts: &DiscoverOptions) -> Result<Candidate> {
    if let Err(source) = std::fs::metadata(disk) {
        return Err(Error::Input {
            path: disk.to_path_buf(),
            action: "cannot open",
            source,
        });
    }
    let name = disk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = parent_dir(disk);
    // The VM folder above `Virtual Hard Disks` (or above any folder beside `Snapshots` or
    // `Virtual Machines`), then the disk's own folder. Never a wider search: a disk in a
    // folder of its own does not make vm2dmp walk the whole volume.
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(g) = dir.parent().filter(|g| !g.as_os_str().is_empty()) {
        let vm_folder = dir_name_is(&dir, "Virtual Hard Disks")
            || g.join("Snapshots").is_dir()
            || g.join("Virtual Machines").is_dir();
        if vm_folder {
            roots.push(g.to_path_buf());
        }
    }
    roots.push(dir.clone());
    let mut tried: Vec<String> = Vec::new();
    for root in roots {
        if tried.iter().any(|t| Path::new(t) == root) {
            continue;
        }
        tried.push(root.display().to_string());
        let Ok(entries) = scan(&root, None, opts) else {
            continue;
        };
        let mut seen = HashSet::new();
        let hits: Vec<Candidate> = entries
            .into_iter()
            .filter(|c| matches!(c.kind, EntryKind::Vm | EntryKind::Checkpoint))
            .filter(|c| {
                c.configuration.as_ref().is_some_and(|cfg| {
                    seen.insert(cfg.clone()) && config_mentions(cfg, c.layout, &name)
                })
            })
            .collect();
        match hits.len() {
            0 => continue,
            1 => {
                let Some(c) = hits.into_iter().next() else {
                    continue;
                };
                if c.convertible {
                    return Ok(c);
                }
                return Err(Error::NoMemoryImage {
                    path: disk.to_path_buf(),
                    detail: format!(
                        "a virtual disk holds disk contents, never memory; it belongs to {} \"{}\" ({}), whose memory is not available: {}",
                        if c.kind == EntryKind::Checkpoint { "checkpoint" } else { "VM" },
                        c.label(),
                        c.configuration.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
                        c.reason.as_deref().unwrap_or("no memory")
                    ),
                });
            }
            _ => {
                let with_memory: Vec<&Candidate> = hits.iter().filter(|c| c.convertible).collect();
                if let [one] = with_memory.as_slice() {
                    return Ok((*one).clone());
                }
                let names: Vec<String> =
                    hits.iter().map(|c| format!("\"{}\"", c.label())).collect();
                return Err(Error::Ambiguous {
                    path: disk.to_path_buf(),
                    kind: Ambiguity::SharedDisk {
                        names: names.join(", "),
                    },
                    found: String::new(),
                });
            }
        }
    }
    Err(Error::NoMemoryImage {
        path: disk.to_path_buf(),
        detail: format!(
            "a virtual disk ({}) holds disk contents, never memory, and no VM or checkpoint configuration under {} names it; checkpoint memory is in Snapshots/<GUID>.vmrs (Windows Server 2016 and later) or Snapshots/<GUID>/<GUID>.vsv + .bin (2008 to 2012 R2): try `vm2dmp list` on the VM folder",
            name,
            tried.first().map_or("its folder", String::as_str)
        ),
    })
}
