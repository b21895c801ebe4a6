//! Walking a folder tree and telling what each file is (by name and first bytes).

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use vm2dmp_formats::{hvs, legacy};
use vm2dmp_source::{Error, Result};

use crate::*;

// Walking and classifying files.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
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

pub(crate) fn ext_lower(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

pub(crate) fn stem_of(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(crate) fn dir_name_is(dir: &Path, name: &str) -> bool {
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(name))
}

pub(crate) fn is_disk_name(p: &Path) -> bool {
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
pub(crate) fn root_of_file(file: &Path) -> PathBuf {
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

pub(crate) fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
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
                if let Err(e @ Error::TooManyFiles { .. }) = walk(&p, depth + 1, out) {
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
                return Err(Error::TooManyFiles {
                    path: dir.to_path_buf(),
                    limit: MAX_FILES,
                });
            }
            out.push(p);
        }
    }
    Ok(())
}

/// First four bytes and the four at 4096 (the second HVS header copy).
pub(crate) fn sniff(p: &Path) -> (Option<u32>, Option<u32>) {
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

pub(crate) fn classify(p: &Path, siblings_vsv: &HashSet<PathBuf>) -> Option<Role> {
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
