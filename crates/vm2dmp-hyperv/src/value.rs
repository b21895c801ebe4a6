//! Stored values as both containers describe them: type, place in the file, size.

/// Type of a stored value, common to both containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueType {
    /// Signed integer (64-bit in HVS files).
    Int,
    /// Unsigned 64-bit integer (HVS only).
    Uint,
    /// IEEE 754 double (HVS only).
    Double,
    /// Boolean: nonzero is true.
    Bool,
    /// Text, UTF-16LE as stored.
    String,
    /// Raw bytes.
    Binary,
    /// A key that holds other keys (HVS only); its bytes are the container's, not a value.
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
