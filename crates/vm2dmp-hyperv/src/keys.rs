//! Every key of a saved-state or configuration file, for inspection (`vm2dmp keys`): HVS files
//! (`.vmrs`, `.vmcx`) and legacy ones (`.vsv`, `.bin`), whether or not they hold memory.

use std::path::{Path, PathBuf};

use vm2dmp_source::le;

use vm2dmp_source::Result;

use crate::container::{open_container, parse_container, Container, ContainerFile};
use crate::hvs::ReplayLogStatus;
use crate::value::{Value, ValueType};

/// Bytes of a binary value shown (as hex).
const SHOWN_BINARY_BYTES: u64 = 64;
/// Longest string value shown; longer ones are shown as their first bytes.
const SHOWN_STRING_BYTES: u64 = 64 << 10;

/// What a key holds, decoded for display.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(untagged))]
pub enum KeyData {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A double.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// A string value, decoded from UTF-16 with trailing NULs removed.
    Text(String),
    /// A binary value (or a string that is not UTF-16): the first bytes in hex.
    Bytes {
        /// The first bytes (at most 64), two lowercase hex digits each.
        hex: String,
        /// True when the value is longer than what is shown.
        truncated: bool,
    },
}

/// One key of a file.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct KeyEntry {
    /// Path of the key (`/configuration/properties/name`; legacy names as stored).
    pub path: String,
    /// `int`, `uint`, `double`, `bool`, `string`, `binary` or `node`.
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub kind: &'static str,
    /// File offset of the value bytes.
    pub offset: u64,
    /// Size of the value in bytes.
    pub size: u64,
    /// The value (`None` for nodes).
    pub value: Option<KeyData>,
}

/// The keys of one file.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct KeyListing {
    /// The file listed (the path given, or the name of an in-memory input).
    pub file: PathBuf,
    /// `hvs` or `legacy`.
    pub container: &'static str,
    /// HVS replay-log state (`None` for the legacy container).
    pub replay_log: Option<ReplayLogStatus>,
    /// Every key of the file, nodes included, sorted by path (keys sharing a path in file
    /// order).
    pub keys: Vec<KeyEntry>,
}

fn kind(t: ValueType) -> &'static str {
    match t {
        ValueType::Int => "int",
        ValueType::Uint => "uint",
        ValueType::Double => "double",
        ValueType::Bool => "bool",
        ValueType::String => "string",
        ValueType::Binary => "binary",
        ValueType::Node => "node",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn bytes_data(b: &[u8], size: u64) -> KeyData {
    KeyData::Bytes {
        hex: hex(b),
        truncated: size > b.len() as u64,
    }
}

fn decode(cf: &ContainerFile, v: &Value) -> Result<Option<KeyData>> {
    let read = |n: u64| cf.file.bytes(v.offset, v.len.min(n), "key value");
    let int8 = |b: &[u8]| {
        let mut q = [0u8; 8];
        let n = b.len().min(8);
        q[..n].copy_from_slice(&b[..n]);
        q
    };
    Ok(Some(match v.ty {
        ValueType::Node => return Ok(None),
        ValueType::Int => KeyData::Int(i64::from_le_bytes(int8(&read(8)?))),
        ValueType::Uint => KeyData::Uint(u64::from_le_bytes(int8(&read(8)?))),
        ValueType::Double => KeyData::Double(f64::from_le_bytes(int8(&read(8)?))),
        ValueType::Bool => KeyData::Bool(read(8)?.iter().any(|&b| b != 0)),
        ValueType::Binary => bytes_data(&read(SHOWN_BINARY_BYTES)?, v.len),
        ValueType::String => {
            if v.len > SHOWN_STRING_BYTES || v.len % 2 != 0 {
                bytes_data(&read(SHOWN_BINARY_BYTES)?, v.len)
            } else {
                let b = read(SHOWN_STRING_BYTES)?;
                let units: Vec<u16> = (0..b.len() / 2)
                    .filter_map(|i| le::u16(&b, i * 2))
                    .collect();
                match String::from_utf16(&units) {
                    Ok(s) => KeyData::Text(s.trim_end_matches('\0').to_owned()),
                    Err(_) => bytes_data(&b[..b.len().min(SHOWN_BINARY_BYTES as usize)], v.len),
                }
            }
        }
    }))
}

/// Lists every key of the HVS or legacy file at `path`, with its type, place and value
/// (binary values shortened). A dirty HVS file is read through its replay log unless
/// `no_replay`. Works on files that hold no memory (configurations, runtime state).
pub fn list_keys(path: impl AsRef<Path>, no_replay: bool) -> Result<KeyListing> {
    let path = path.as_ref();
    listing(path, open_container(path, !no_replay)?)
}

/// [`list_keys`] of a file held in memory; `name` stands for its path in messages.
pub fn list_keys_from_bytes(name: &Path, data: Vec<u8>, no_replay: bool) -> Result<KeyListing> {
    let file = vm2dmp_source::InputFile::from_bytes(name, data);
    listing(name, parse_container(file, !no_replay)?)
}

fn listing(path: &Path, cf: ContainerFile) -> Result<KeyListing> {
    let (container, replay_log, raw) = match &cf.container {
        Container::Hvs(h) => ("hvs", Some(h.replay), h.keys(&cf.file)?),
        Container::Legacy(l) => ("legacy", None, l.keys()),
    };
    let mut keys = Vec::with_capacity(raw.len());
    for (p, v) in raw {
        keys.push(KeyEntry {
            value: decode(&cf, &v)?,
            path: p,
            kind: kind(v.ty),
            offset: v.offset,
            size: v.len,
        });
    }
    Ok(KeyListing {
        file: path.to_path_buf(),
        container,
        replay_log,
        keys,
    })
}
