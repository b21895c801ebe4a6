//! Signatures, sizes and type codes of the HVS container, shared by the writer's parts.

/// `signature` of both header copies.
pub const FILE_SIGNATURE: u32 = 0x0128_2014;
/// `signature` of an object table.
pub const OBJECT_TABLE_SIGNATURE: u32 = 0x0111_0001;
/// `signature` of the replay-log header.
pub const REPLAY_LOG_SIGNATURE: u32 = 0x0111_0003;
/// `signature` of a key table.
pub const KEY_TABLE_SIGNATURE: u16 = 0x0002;
/// Bytes of a key-entry header (the name follows).
pub const KEY_ENTRY_HEADER: usize = 21;
/// Bytes of an object-table entry.
pub const OBJECT_ENTRY_SIZE: usize = 18;
/// Bytes of a replay-log entry header.
pub const REPLAY_ENTRY_SIZE: usize = 28;
/// Bytes of the replay-log header.
pub const REPLAY_HEADER_SIZE: usize = 34;

/// Value types of key entries.
pub mod ty {
    /// Free entry.
    pub const FREE: u8 = 1;
    /// i64.
    pub const INT: u8 = 3;
    /// u64.
    pub const UINT: u8 = 4;
    /// f64.
    pub const DOUBLE: u8 = 5;
    /// u32 length, then UTF-16LE without a terminator.
    pub const STRING: u8 = 6;
    /// u32 length, then binary bytes.
    pub const ARRAY: u8 = 7;
    /// i32, non-zero is true.
    pub const BOOL: u8 = 8;
    /// Directory node.
    pub const NODE: u8 = 9;
}

/// Object types of object-table entries.
pub mod obj {
    /// Unused entry, or end of the table chain in the last slot.
    pub const EMPTY: u8 = 0;
    /// Link to the next object table (last slot only).
    pub const TABLE: u8 = 1;
    /// Key table.
    pub const KEY_TABLE: u8 = 2;
    /// File object: raw value bytes.
    pub const FILE: u8 = 3;
    /// Freed space.
    pub const FREED: u8 = 4;
}
