//! Reading VM and checkpoint configurations: `.vmcx` (HVS keys) and `.xml` (2008 to 2012 R2).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vm2dmp_hyperv::{ConfigFile, ConfigValue};

use crate::files::*;
use crate::*;

/// The configuration keys read from every `.vmcx` and `.xml`.
const WANTED: [&str; 10] = [
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

/// A configuration value, whatever the file's container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CfgVal {
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
pub(crate) struct Config {
    pub(crate) path: PathBuf,
    pub(crate) layout: FolderLayout,
    /// GUID from the file name, else `global_id`, else the file stem.
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) created: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) vm_id: Option<String>,
    pub(crate) encrypted: bool,
    pub(crate) checkpoint: bool,
    /// Why the file could not be read, when it could not.
    pub(crate) problem: Option<String>,
}

pub(crate) fn read_vmcx(path: &Path) -> std::result::Result<HashMap<&'static str, CfgVal>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_VMCX_BYTES {
        return Err(format!("{len} bytes, too large for a configuration"));
    }
    let cf = ConfigFile::open_hvs(path).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for k in WANTED {
        let Ok(Some(v)) = cf.value(&format!("/{k}")) else {
            continue;
        };
        let val = match v {
            ConfigValue::Text(s) => CfgVal::Str(s),
            ConfigValue::Int(i) => CfgVal::Int(i),
            ConfigValue::Bool(b) => CfgVal::Bool(b),
            ConfigValue::Bytes(b) => CfgVal::Bytes(b),
        };
        out.insert(k, val);
    }
    Ok(out)
}

/// Text of a file that may be UTF-16 (with or without a byte-order mark) or UTF-8.
pub(crate) fn decode_text(b: &[u8]) -> Option<String> {
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

pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
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
pub(crate) fn read_xml(
    path: &Path,
) -> std::result::Result<Option<HashMap<&'static str, CfgVal>>, String> {
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
    for k in WANTED {
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
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

pub(crate) fn creation_time(v: &CfgVal) -> Option<String> {
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

pub(crate) fn read_config(path: &Path, role: Role) -> Option<Config> {
    let layout = if role == Role::VmcxConfig {
        FolderLayout::Vmcx
    } else {
        FolderLayout::Xml
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
pub(crate) fn config_mentions(cfg: &Path, layout: FolderLayout, file_name: &str) -> bool {
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
        FolderLayout::Xml => {
            decode_text(&bytes).is_some_and(|t| t.to_lowercase().contains(&needle))
        }
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
