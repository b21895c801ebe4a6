//! Stored values as both containers describe them: type, place in the file, size.

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
