//! One interface over both containers: look a key up, read its value.

use std::borrow::Cow;

use vm2dmp_formats::le;

use crate::error::Result;
use crate::hvs::HvsFile;
use crate::input::InputFile;
use crate::legacy::LegacyFile;

/// Longest string value read (names and versions are a few hundred bytes).
const MAX_STRING_BYTES: u64 = 64 << 10;

/// Type of a stored value, common to both containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueType {
    Int,
    Uint,
    Double,
    Bool,
    String,
    Binary,
    Node,
}

/// Where a value's bytes are in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Value {
    pub ty: ValueType,
    /// Absolute file offset of the value bytes.
    pub offset: u64,
    pub len: u64,
    /// Offset of the entry that describes the value (for error messages).
    pub entry_offset: u64,
}

impl Value {
    pub fn new(ty: ValueType, offset: u64, len: u64, entry_offset: u64) -> Self {
        Self {
            ty,
            offset,
            len,
            entry_offset,
        }
    }
}

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
