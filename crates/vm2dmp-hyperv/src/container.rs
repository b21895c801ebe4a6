//! One interface over both containers: look a key up, read its value.

use std::borrow::Cow;

use vm2dmp_source::le;

use std::path::Path;

use vm2dmp_formats::{hvs, legacy};
use vm2dmp_source::{InputFile, Result};

use crate::hvs::HvsFile;
use crate::legacy::LegacyFile;
use crate::value::{Value, ValueType};

/// Longest string value read (names and versions are a few hundred bytes).
const MAX_STRING_BYTES: u64 = 64 << 10;

/// Which container a file uses.
#[derive(Debug)]
pub(crate) enum Container {
    Hvs(HvsFile),
    Legacy(LegacyFile),
}

/// A parsed input file.
#[derive(Debug)]
pub(crate) struct ContainerFile {
    pub file: InputFile,
    pub container: Container,
}

impl ContainerFile {
    pub fn value(&self, path: &str) -> Result<Option<Value>> {
        match &self.container {
            Container::Hvs(h) => h.value(&self.file, path),
            Container::Legacy(l) => Ok(l.value(path)),
        }
    }

    pub fn bytes(&self, v: &Value, structure: &'static str) -> Result<Cow<'_, [u8]>> {
        self.file.bytes(v.offset, v.len, structure)
    }

    /// An integer value (signed or unsigned, read as i64), if present.
    pub fn int(&self, path: &str) -> Result<Option<i64>> {
        let Some(v) = self.value(path)? else {
            return Ok(None);
        };
        if !matches!(v.ty, ValueType::Int | ValueType::Uint) {
            return Err(self.file.ctx.corrupt(
                "key value",
                v.entry_offset,
                format!("{path} is a {:?}, not an integer", v.ty),
            ));
        }
        let b = self.bytes(&v, "key value")?;
        let mut q = [0u8; 8];
        let n = b.len().min(8);
        q[..n].copy_from_slice(&b[..n]);
        Ok(Some(i64::from_le_bytes(q)))
    }

    /// A UTF-16LE string value, if present.
    pub fn string(&self, path: &str) -> Result<Option<String>> {
        let Some(v) = self.value(path)? else {
            return Ok(None);
        };
        if v.len > MAX_STRING_BYTES {
            return Err(self.file.ctx.corrupt(
                "key value",
                v.entry_offset,
                format!(
                    "{path} is a {}-byte string (at most {MAX_STRING_BYTES})",
                    v.len
                ),
            ));
        }
        let b = self.bytes(&v, "key value")?;
        if v.ty != ValueType::String || b.len() % 2 != 0 {
            return Err(self.file.ctx.corrupt(
                "key value",
                v.entry_offset,
                format!("{path} is not a UTF-16 string"),
            ));
        }
        let units: Vec<u16> = (0..b.len() / 2)
            .filter_map(|i| le::u16(&b, i * 2))
            .collect();
        String::from_utf16(&units).map(Some).map_err(|_| {
            self.file.ctx.corrupt(
                "key value",
                v.entry_offset,
                format!("{path} is not valid UTF-16"),
            )
        })
    }
}

/// True when `head` (the first 8 KiB of a file, or as much as it has) starts like a Hyper-V
/// saved-state or configuration file: an HVS header (copy 0 at offset 0 or copy 1 at 4096) or
/// the legacy 0x500 container's signature.
pub fn is_saved_state(head: &[u8]) -> bool {
    let u32_at = |offset: u64| {
        usize::try_from(offset)
            .ok()
            .and_then(|o| vm2dmp_formats::le::u32(head, o))
    };
    let sig = u32_at(0);
    sig == Some(hvs::FILE_SIGNATURE)
        || sig == Some(legacy::SIGNATURE)
        || u32_at(hvs::HEADER_COPY_OFFSETS[1]) == Some(hvs::FILE_SIGNATURE)
}

pub(crate) fn open_container(path: &Path, replay: bool) -> Result<ContainerFile> {
    parse_container(InputFile::open(path)?, replay)
}

pub(crate) fn parse_container(mut file: InputFile, replay: bool) -> Result<ContainerFile> {
    if file.len() < 4 {
        return Err(file.ctx.corrupt(
            "file signature",
            0,
            format!("file is {} bytes long", file.len()),
        ));
    }
    let u32_at = |offset: u64| {
        file.bytes(offset, 4, "file signature")
            .ok()
            .and_then(|b| vm2dmp_formats::le::u32(&b, 0))
    };
    let sig = u32_at(0).unwrap_or(0);
    // An HVS file keeps a second header copy at 4096: recognise it when copy 0 is damaged.
    let second = u32_at(hvs::HEADER_COPY_OFFSETS[1]);
    let container = if sig == hvs::FILE_SIGNATURE || second == Some(hvs::FILE_SIGNATURE) {
        Container::Hvs(HvsFile::parse(&mut file, replay)?)
    } else if sig == legacy::SIGNATURE {
        Container::Legacy(LegacyFile::parse(&file)?)
    } else {
        return Err(file.ctx.corrupt(
            "file signature",
            0,
            format!(
                "{sig:#010x} is neither an HVS (.vmrs) nor a legacy (.vsv/.bin) saved-state file"
            ),
        ));
    };
    Ok(ContainerFile { file, container })
}

/// A Hyper-V file read for its keys only: a VM configuration (`.vmcx`, the HVS container) or
/// any `.vmrs`. Used to read names, times and identifiers; holds no memory map.
#[derive(Debug)]
pub struct ConfigFile(ContainerFile);

/// A key's value as [`ConfigFile::value`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// An integer key (signed or unsigned, read as `i64`).
    Int(i64),
    /// A boolean key.
    Bool(bool),
    /// A UTF-16 string key (invalid units replaced, trailing NULs removed).
    Text(String),
    /// A binary key.
    Bytes(Vec<u8>),
}

impl ConfigFile {
    /// Opens an HVS file (`.vmcx`, `.vmrs`) for its keys, replaying a dirty replay log in
    /// memory. A legacy 0x500 file is refused: configurations of that era are XML.
    pub fn open_hvs(path: &Path) -> Result<Self> {
        let mut file = InputFile::open(path)?;
        let h = HvsFile::parse(&mut file, true)?;
        Ok(Self(ContainerFile {
            file,
            container: Container::Hvs(h),
        }))
    }

    /// The value of `key` (a path from the root, `/configuration/properties/name`), if the
    /// file has it; `None` also for doubles, nodes and strings of an odd number of bytes.
    pub fn value(&self, key: &str) -> Result<Option<ConfigValue>> {
        let Some(v) = self.0.value(key)? else {
            return Ok(None);
        };
        let b = self.0.bytes(&v, "configuration value")?;
        Ok(match v.ty {
            ValueType::String if b.len() % 2 != 0 => None,
            ValueType::String => {
                let units: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let s = String::from_utf16_lossy(&units);
                Some(ConfigValue::Text(s.trim_end_matches('\0').to_string()))
            }
            ValueType::Int | ValueType::Uint => {
                let mut q = [0u8; 8];
                let n = b.len().min(8);
                q[..n].copy_from_slice(&b[..n]);
                Some(ConfigValue::Int(i64::from_le_bytes(q)))
            }
            ValueType::Bool => Some(ConfigValue::Bool(b.iter().any(|&x| x != 0))),
            ValueType::Binary => Some(ConfigValue::Bytes(b.to_vec())),
            ValueType::Double | ValueType::Node => None,
        })
    }
}
