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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;
use vm2dmp_formats::{hvs, legacy};

use crate::container::{Container, ContainerFile, ValueType};
use crate::error::{Error, Result};
use crate::hvs::HvsFile;
use crate::input::InputFile;
use crate::state::{InputFormat, OpenOptions, SavedState};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Windows Server 2016 / Windows 10 and later: `.vmcx` configuration.
    Vmcx,
    /// Windows Server 2008 to 2012 R2: `.xml` configuration.
    Xml,
    /// No configuration file was found for it.
    None,
}

/// Whether an entry's memory can be converted, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub kind: EntryKind,
    pub status: Status,
    /// `status == Ok`: the memory can be converted.
    pub convertible: bool,
    /// Why the memory cannot be converted (one line), when it cannot.
    pub reason: Option<String>,
    pub layout: Layout,
    pub vm_name: Option<String>,
    /// The VM's GUID (lower case, no braces) or, for a VM found without one, its file name.
    pub vm_id: Option<String>,
    pub checkpoint_name: Option<String>,
    pub checkpoint_id: Option<String>,
    /// Creation time from the configuration, RFC 3339 UTC when it is a FILETIME.
    pub created: Option<String>,
    pub parent_id: Option<String>,
    pub parent_name: Option<String>,
    /// Level in the checkpoint tree (0 for a checkpoint without a known parent).
    pub depth: usize,
    /// The configuration file (`.vmcx` or `.xml`), when found.
    pub configuration: Option<PathBuf>,
    /// The files that hold the memory (`.vmrs`, or `.vsv` then `.bin`), or the file the entry
    /// is about.
    pub files: Vec<PathBuf>,
    pub format: Option<InputFormat>,
    /// Guest RAM in bytes, when readable.
    pub memory_bytes: Option<u64>,
    pub vcpus: Option<usize>,
    /// Pending replay-log entries of a dirty `.vmrs` (replayed in memory unless `no_replay`).
    pub replay_pending: u32,
    /// Other facts worth knowing (unreadable configuration, encryption requested, ...).
    pub notes: Vec<String>,
    #[serde(skip)]
    main: Option<PathBuf>,
    #[serde(skip)]
    bin: Option<PathBuf>,
}

impl Candidate {
    fn new(kind: EntryKind) -> Self {
        Self {
            kind,
            status: Status::Ok,
            convertible: false,
            reason: None,
            layout: Layout::None,
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
            memory_bytes: None,
            vcpus: None,
            replay_pending: 0,
            notes: Vec::new(),
            main: None,
            bin: None,
        }
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
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// The path that was searched.
    pub path: PathBuf,
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
                    [] => Err(Error::InvalidArgument(format!(
                        "{}: no VM or checkpoint named \"{sel}\"{}",
                        self.path.display(),
                        choices()
                    ))),
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
                    many => Err(Error::InvalidArgument(format!(
                        "{}: \"{sel}\" names {} entries; give the GUID instead{}",
                        self.path.display(),
                        many.len(),
                        choices()
                    ))),
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
                    many => Err(Error::InvalidArgument(format!(
                        "{}: {} memory images found; choose one with --checkpoint NAME|GUID, or convert all with --out-dir DIR{}",
                        self.path.display(),
                        many.len(),
                        choices()
                    ))),
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
                let c = hits
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::InvalidArgument("internal: empty match list".into()))?;
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
                return Err(Error::InvalidArgument(format!(
                    "{}: several configurations name this disk ({}); convert the VM folder with --checkpoint NAME|GUID",
                    disk.display(),
                    names.join(", ")
                )));
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

// ---------------------------------------------------------------------------------------------
// Walking and classifying files.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    VmcxConfig,
    XmlConfig,
    /// HVS saved state (`.vmrs`).
    HvsState,
    /// Legacy container (`.vsv` or `.bin`).
    Legacy,
    /// Named like a saved state but neither container signature.
    Unrecognised,
    GuestState,
}

fn ext_lower(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn stem_of(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn dir_name_is(dir: &Path, name: &str) -> bool {
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(name))
}

fn is_disk_name(p: &Path) -> bool {
    matches!(ext_lower(p).as_str(), "vhd" | "vhdx" | "avhd" | "avhdx")
}

/// `{8-4-4-4-12}` hex, braces optional, any case -> lower case without braces.
pub(crate) fn normalize_guid(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    let b = t.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, &c) in b.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (c == b'-') || (!dash && !c.is_ascii_hexdigit()) {
            return None;
        }
    }
    Some(t.to_ascii_lowercase())
}

/// The folder whose tree holds everything about `file`: the parent of `Snapshots` or
/// `Virtual Machines` when the file is in one (or in a `<GUID>` folder inside one).
fn root_of_file(file: &Path) -> PathBuf {
    let mut d = parent_dir(file);
    if d.file_name()
        .is_some_and(|n| normalize_guid(&n.to_string_lossy()).is_some())
    {
        if let Some(p) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            d = p.to_path_buf();
        }
    }
    if dir_name_is(&d, "Snapshots") || dir_name_is(&d, "Virtual Machines") {
        if let Some(p) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            d = p.to_path_buf();
        }
    }
    d
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|source| Error::Input {
        path: dir.to_path_buf(),
        action: "cannot list folder",
        source,
    })?;
    let mut items: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    items.sort();
    for p in items {
        let Ok(lmeta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if lmeta.is_dir() {
            // Symbolic links to folders are not followed (no loops).
            if depth < MAX_DEPTH {
                // A sub-folder that cannot be listed is skipped, not fatal; too many files
                // anywhere below is, so that nothing is left out silently.
                if let Err(e @ Error::InvalidArgument(_)) = walk(&p, depth + 1, out) {
                    return Err(e);
                }
            }
            continue;
        }
        let is_file = if lmeta.file_type().is_symlink() {
            std::fs::metadata(&p).is_ok_and(|m| m.is_file())
        } else {
            lmeta.is_file()
        };
        if is_file {
            if out.len() >= MAX_FILES {
                return Err(Error::InvalidArgument(format!(
                    "{}: more than {MAX_FILES} files below this folder; give a VM folder instead",
                    dir.display()
                )));
            }
            out.push(p);
        }
    }
    Ok(())
}

/// First four bytes and the four at 4096 (the second HVS header copy).
fn sniff(p: &Path) -> (Option<u32>, Option<u32>) {
    // Files that say they are empty are not opened (pseudo-files such as /proc/kmsg would
    // block a read).
    if std::fs::metadata(p).map_or(true, |m| m.len() < 4) {
        return (None, None);
    }
    let Ok(mut f) = std::fs::File::open(p) else {
        return (None, None);
    };
    let mut a = [0u8; 4];
    let first = f.read_exact(&mut a).ok().map(|_| u32::from_le_bytes(a));
    let second = f
        .seek(SeekFrom::Start(hvs::HEADER_COPY_OFFSETS[1]))
        .ok()
        .and_then(|_| f.read_exact(&mut a).ok())
        .map(|_| u32::from_le_bytes(a));
    (first, second)
}

fn classify(p: &Path, siblings_vsv: &HashSet<PathBuf>) -> Option<Role> {
    let ext = ext_lower(p);
    match ext.as_str() {
        "vmgs" => return Some(Role::GuestState),
        "xml" => return Some(Role::XmlConfig),
        "vhd" | "vhdx" | "avhd" | "avhdx" => return None,
        _ => {}
    }
    let (first, second) = sniff(p);
    let is_hvs = first == Some(hvs::FILE_SIGNATURE) || second == Some(hvs::FILE_SIGNATURE);
    if ext == "vmcx" {
        // Read even when damaged: the entry then says why its configuration is unreadable.
        return Some(Role::VmcxConfig);
    }
    if is_hvs {
        return Some(Role::HvsState);
    }
    if first == Some(legacy::SIGNATURE) {
        return Some(Role::Legacy);
    }
    let guid_stem = normalize_guid(&stem_of(p)).is_some();
    let named_like_state = match ext.as_str() {
        "vmrs" | "vsv" => true,
        "bin" => guid_stem || siblings_vsv.contains(&p.with_extension("vsv")),
        _ => false,
    };
    named_like_state.then_some(Role::Unrecognised)
}

// ---------------------------------------------------------------------------------------------
// Configuration files.

/// A configuration value, whatever the file's container.
#[derive(Debug, Clone, PartialEq)]
enum CfgVal {
    Str(String),
    Int(i64),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl CfgVal {
    fn text(&self) -> Option<String> {
        match self {
            CfgVal::Str(s) => Some(s.trim().to_string()),
            CfgVal::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }
    fn truthy(&self) -> bool {
        match self {
            CfgVal::Bool(b) => *b,
            CfgVal::Int(i) => *i != 0,
            CfgVal::Str(s) => s.trim().eq_ignore_ascii_case("true") || s.trim() == "1",
            CfgVal::Bytes(b) => b.iter().any(|&x| x != 0),
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    path: PathBuf,
    layout: Layout,
    /// GUID from the file name, else `global_id`, else the file stem.
    id: String,
    name: Option<String>,
    created: Option<String>,
    parent_id: Option<String>,
    vm_id: Option<String>,
    encrypted: bool,
    checkpoint: bool,
    /// Why the file could not be read, when it could not.
    problem: Option<String>,
}

fn read_vmcx(path: &Path) -> std::result::Result<HashMap<&'static str, CfgVal>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_VMCX_BYTES {
        return Err(format!("{len} bytes, too large for a configuration"));
    }
    let mut file = InputFile::open(path).map_err(|e| e.to_string())?;
    let h = HvsFile::parse(&mut file, true).map_err(|e| e.to_string())?;
    let cf = ContainerFile {
        file,
        container: Container::Hvs(h),
    };
    let mut out = HashMap::new();
    let wanted = [
        keys::NAME,
        keys::VERSION,
        keys::CREATION_TIME,
        keys::GLOBAL_ID,
        keys::PARENT_SNAPSHOT_ID,
        keys::VM_ID,
        keys::LOGICAL_ID,
        keys::ENCRYPTION[0],
        keys::ENCRYPTION[1],
        keys::ENCRYPTION[2],
    ];
    for k in wanted {
        let Ok(Some(v)) = cf.value(&format!("/{k}")) else {
            continue;
        };
        let Ok(b) = cf.bytes(&v, "configuration value") else {
            continue;
        };
        let val = match v.ty {
            ValueType::String => {
                if b.len() % 2 != 0 {
                    continue;
                }
                let units: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let s = String::from_utf16_lossy(&units);
                CfgVal::Str(s.trim_end_matches('\0').to_string())
            }
            ValueType::Int | ValueType::Uint => {
                let mut q = [0u8; 8];
                let n = b.len().min(8);
                q[..n].copy_from_slice(&b[..n]);
                CfgVal::Int(i64::from_le_bytes(q))
            }
            ValueType::Bool => CfgVal::Bool(b.iter().any(|&x| x != 0)),
            ValueType::Binary => CfgVal::Bytes(b.to_vec()),
            ValueType::Double | ValueType::Node => continue,
        };
        out.insert(k, val);
    }
    Ok(out)
}

/// Text of a file that may be UTF-16 (with or without a byte-order mark) or UTF-8.
fn decode_text(b: &[u8]) -> Option<String> {
    let utf16 = |b: &[u8], le: bool| {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).ok()
    };
    if let Some(rest) = b.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = b.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    let b = b.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(b);
    if b.len() >= 2 && b[0] == b'<' && b[1] == 0 {
        return utf16(b, true);
    }
    if b.len() >= 2 && b[0] == 0 && b[1] == b'<' {
        return utf16(b, false);
    }
    String::from_utf8(b.to_vec()).ok()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Reads an `.xml` configuration; `Ok(None)` when the file is XML of another kind.
fn read_xml(path: &Path) -> std::result::Result<Option<HashMap<&'static str, CfgVal>>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_XML_BYTES {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let Some(text) = decode_text(&bytes) else {
        return Ok(None);
    };
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 2_000_000,
        ..Default::default()
    };
    let doc = match roxmltree::Document::parse_with_options(&text, opts) {
        Ok(d) => d,
        Err(e) => {
            // Only an error when it looks like a VM configuration at all.
            return if text.contains("<configuration") {
                Err(format!("XML: {e}"))
            } else {
                Ok(None)
            };
        }
    };
    let root = doc.root_element();
    if !root.tag_name().name().eq_ignore_ascii_case("configuration") {
        return Ok(None);
    }
    let mut out = HashMap::new();
    let wanted = [
        keys::NAME,
        keys::VERSION,
        keys::CREATION_TIME,
        keys::GLOBAL_ID,
        keys::PARENT_SNAPSHOT_ID,
        keys::VM_ID,
        keys::LOGICAL_ID,
        keys::ENCRYPTION[0],
        keys::ENCRYPTION[1],
        keys::ENCRYPTION[2],
    ];
    for k in wanted {
        let mut parts = k.split('/');
        parts.next(); // "configuration" is the root.
        let mut node = Some(root);
        for part in parts {
            node = node.and_then(|n| {
                n.children()
                    .find(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case(part))
            });
        }
        let Some(n) = node else { continue };
        let text: String = n
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect();
        let text = text.trim().to_string();
        let ty = n.attribute("type").unwrap_or("string").to_ascii_lowercase();
        let val = match ty.as_str() {
            "integer" => match text.parse::<i64>() {
                Ok(i) => CfgVal::Int(i),
                Err(_) => match text.parse::<u64>() {
                    Ok(u) => CfgVal::Int(u as i64),
                    Err(_) => continue,
                },
            },
            "bool" | "boolean" => CfgVal::Bool(text.eq_ignore_ascii_case("true") || text == "1"),
            "bytes" => match base64_decode(&text) {
                Some(b) => CfgVal::Bytes(b),
                None => continue,
            },
            _ => CfgVal::Str(text),
        };
        out.insert(k, val);
    }
    Ok(Some(out))
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A FILETIME (100 ns since 1601-01-01 UTC) as RFC 3339, for 1970 to 9999.
pub fn filetime_rfc3339(ft: u64) -> Option<String> {
    const UNIX_EPOCH: u64 = 116_444_736_000_000_000;
    const YEAR_10000: u64 = 2_650_467_744_000_000_000;
    if !(UNIX_EPOCH..YEAR_10000).contains(&ft) {
        return None;
    }
    let secs = (ft - UNIX_EPOCH) / 10_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    ))
}

fn creation_time(v: &CfgVal) -> Option<String> {
    match v {
        CfgVal::Bytes(b) if b.len() == 8 => {
            let mut q = [0u8; 8];
            q.copy_from_slice(b);
            filetime_rfc3339(u64::from_le_bytes(q))
        }
        CfgVal::Int(i) => u64::try_from(*i).ok().and_then(filetime_rfc3339),
        CfgVal::Str(s) => match s.trim().parse::<u64>() {
            Ok(ft) => filetime_rfc3339(ft),
            Err(_) if !s.trim().is_empty() => Some(s.trim().chars().take(64).collect()),
            Err(_) => None,
        },
        _ => None,
    }
}

fn read_config(path: &Path, role: Role) -> Option<Config> {
    let layout = if role == Role::VmcxConfig {
        Layout::Vmcx
    } else {
        Layout::Xml
    };
    let dir = parent_dir(path);
    let stem = stem_of(path);
    let mut cfg = Config {
        path: path.to_path_buf(),
        layout,
        id: normalize_guid(&stem).unwrap_or_else(|| stem.clone()),
        name: None,
        created: None,
        parent_id: None,
        vm_id: None,
        encrypted: false,
        checkpoint: dir_name_is(&dir, "Snapshots"),
        problem: None,
    };
    let values = match role {
        Role::VmcxConfig => match read_vmcx(path) {
            Ok(v) => v,
            Err(e) => {
                cfg.problem = Some(e);
                return Some(cfg);
            }
        },
        _ => match read_xml(path) {
            Ok(Some(v)) => v,
            Ok(None) => return None,
            Err(e) => {
                cfg.problem = Some(e);
                return Some(cfg);
            }
        },
    };
    // A .vmcx that is not a VM's configuration (e.g. the host's data.vmcx) has no
    // configuration/properties at all.
    if role == Role::VmcxConfig
        && !values.contains_key(keys::NAME)
        && !values.contains_key(keys::VERSION)
    {
        return None;
    }
    let text = |k: &str| {
        values
            .get(k)
            .and_then(CfgVal::text)
            .filter(|s| !s.is_empty())
    };
    cfg.name = text(keys::NAME);
    if normalize_guid(&stem).is_none() {
        if let Some(g) = text(keys::GLOBAL_ID).and_then(|g| normalize_guid(&g)) {
            cfg.id = g;
        }
    }
    cfg.created = values.get(keys::CREATION_TIME).and_then(creation_time);
    cfg.parent_id = text(keys::PARENT_SNAPSHOT_ID).and_then(|g| normalize_guid(&g));
    cfg.vm_id = [keys::VM_ID, keys::LOGICAL_ID]
        .into_iter()
        .filter_map(|k| text(k).and_then(|g| normalize_guid(&g)))
        .find(|g| *g != cfg.id);
    cfg.encrypted = keys::ENCRYPTION
        .iter()
        .any(|k| values.get(k).is_some_and(CfgVal::truthy));
    if !dir_name_is(&dir, "Virtual Machines") && (cfg.parent_id.is_some() || cfg.vm_id.is_some()) {
        cfg.checkpoint = true;
    }
    Some(cfg)
}

/// True when the configuration file names `file_name` (a disk), compared without case.
fn config_mentions(cfg: &Path, layout: Layout, file_name: &str) -> bool {
    if file_name.is_empty() {
        return false;
    }
    let Ok(meta) = std::fs::metadata(cfg) else {
        return false;
    };
    if meta.len() > MAX_VMCX_BYTES {
        return false;
    }
    let Ok(bytes) = std::fs::read(cfg) else {
        return false;
    };
    let needle = file_name.to_lowercase();
    match layout {
        Layout::Xml => decode_text(&bytes).is_some_and(|t| t.to_lowercase().contains(&needle)),
        _ => {
            // Strings in an HVS file are UTF-16LE.
            let pat: Vec<u16> = needle.encode_utf16().collect();
            let hay: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let lower = |u: u16| {
                if (u16::from(b'A')..=u16::from(b'Z')).contains(&u) {
                    u + 32
                } else {
                    u
                }
            };
            // Both byte alignments: values are not necessarily at even offsets.
            let odd: Vec<u16> = bytes
                .get(1..)
                .unwrap_or(&[])
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            [hay, odd].iter().any(|h| {
                h.windows(pat.len())
                    .any(|w| w.iter().zip(&pat).all(|(&a, &b)| lower(a) == b))
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Putting it together.

/// The memory files of one state: `.vmrs`, or `.vsv` and `.bin`, or an unrecognised file.
#[derive(Debug, Default)]
struct Group {
    dir: PathBuf,
    stem: String,
    hvs: Option<PathBuf>,
    vsv: Option<PathBuf>,
    bin: Option<PathBuf>,
    unrecognised: Option<PathBuf>,
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

fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Fills `c` from the memory files of `g`: opens them and records what they hold.
fn evaluate(c: &mut Candidate, g: &Group, opts: &DiscoverOptions, encrypted: bool) {
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
            c.memory_bytes = Some(state.ram_pages() * crate::PAGE_SIZE as u64);
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

fn scan(root: &Path, only: Option<&Path>, opts: &DiscoverOptions) -> Result<Vec<Candidate>> {
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
fn link_parents_and_sort(out: &mut [Candidate]) {
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
