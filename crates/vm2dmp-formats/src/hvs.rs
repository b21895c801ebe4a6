//! HVS container (`.vmrs`, `.vmcx`): file header, replay log, object tables, key tables.
//!
//! Source: docs/hyperv-saved-state.md section 3 (layouts verified on the real sample).

use crate::le;

/// `signature` of both file-header copies.
pub const FILE_SIGNATURE: u32 = 0x0128_2014;
/// Offset of header copy 0 and copy 1.
pub const HEADER_COPY_OFFSETS: [u64; 2] = [0, 4096];
/// The only supported `format_version` (major 4, minor 0).
pub const FORMAT_VERSION_4_0: u32 = 0x0400;
/// The first object table always starts here.
pub const FIRST_OBJECT_TABLE: u64 = 8192;
/// Smallest file that can hold both headers and the first object table.
pub const MIN_FILE_SIZE: u64 = 12288;

/// File header, 46 meaningful bytes at offset 0 and again at 4096 (section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Offset 0: [`FILE_SIGNATURE`] in a valid copy.
    pub signature: u32,
    /// Offset 4: CRC-32 of the 46 bytes with this field zeroed
    /// (see [`crate::crc32_with_zeroed_field`] and [`Self::CHECKSUM_AT`]).
    pub checksum: u32,
    /// Offset 8: commit counter; of two valid copies the one with the higher value is current.
    pub sequence: u16,
    /// Offset 10: major * 256 + minor; [`FORMAT_VERSION_4_0`] is the current format.
    pub format_version: u32,
    /// Offset 14: producer-defined version of the data (0 in the sample).
    pub data_version: u32,
    /// Offset 18: no flag is defined by any source (0 in the sample).
    pub flags: u32,
    /// Offset 22: alignment of every object's offset and size (4096 to 65536, a power of two).
    pub data_alignment: u32,
    /// Offset 26: absolute file offset of the replay log.
    pub replay_log_offset: u64,
    /// Offset 34: bytes in the replay-log region.
    pub replay_log_size: u64,
    /// Offset 42: bytes at the start of the log reserved for its header and entry headers;
    /// the entries' data follows.
    pub replay_log_header_size: u32,
}

impl FileHeader {
    /// Meaningful bytes of a header copy (the rest of its 4096 bytes is zero).
    pub const SIZE: usize = 46;
    /// Offset of [`Self::checksum`] within the header.
    pub const CHECKSUM_AT: usize = 4;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            signature: le::u32(b, 0)?,
            checksum: le::u32(b, 4)?,
            sequence: le::u16(b, 8)?,
            format_version: le::u32(b, 10)?,
            data_version: le::u32(b, 14)?,
            flags: le::u32(b, 18)?,
            data_alignment: le::u32(b, 22)?,
            replay_log_offset: le::u64(b, 26)?,
            replay_log_size: le::u64(b, 34)?,
            replay_log_header_size: le::u32(b, 42)?,
        })
    }
}

/// `signature` of the replay-log header.
pub const REPLAY_LOG_SIGNATURE: u32 = 0x0111_0003;

/// Replay-log header, 34 bytes at `replay_log_offset` (section 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLogHeader {
    /// Offset 0: [`REPLAY_LOG_SIGNATURE`] in a valid log.
    pub signature: u32,
    /// Offset 4: CRC-32 of the 34 bytes with this field zeroed.
    pub checksum: u32,
    /// Offset 8: number of pending (not yet applied) entries; already-applied entries stay in
    /// the log after these but are not counted.
    pub current_entries: u32,
    /// Offset 13: entry-header slots, `(replay_log_header_size - 34) / 28`.
    pub max_entries: u32,
    /// Offset 17: non-zero when change tracking is on (0 in the sample).
    pub change_tracking_enabled: u8,
}

impl ReplayLogHeader {
    /// Bytes of the header; entry headers follow at this offset of the log.
    pub const SIZE: usize = 34;
    /// Offset of [`Self::checksum`] within the header.
    pub const CHECKSUM_AT: usize = 4;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            signature: le::u32(b, 0)?,
            checksum: le::u32(b, 4)?,
            current_entries: le::u32(b, 8)?,
            max_entries: le::u32(b, 13)?,
            change_tracking_enabled: le::u8(b, 17)?,
        })
    }
}

/// Replay-log entry header, 28 bytes each after the log header (section 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLogEntry {
    /// Offset 0: absolute file offset the entry's data is to be copied to.
    pub destination_offset: u64,
    /// Offset 8: bytes of data.
    pub size: u32,
    /// Offset 12: offset of the data relative to the start of the log (at or after
    /// `replay_log_header_size` in a valid log).
    pub data_offset: u64,
    /// Offset 20: CRC-32 of the 28-byte entry header with this field zeroed.
    pub entry_checksum: u32,
    /// Offset 24: CRC-32 of the `size` data bytes.
    pub data_checksum: u32,
}

impl ReplayLogEntry {
    /// Bytes of one entry header.
    pub const SIZE: usize = 28;
    /// Offset of [`Self::entry_checksum`] within the entry header.
    pub const CHECKSUM_AT: usize = 20;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            destination_offset: le::u64(b, 0)?,
            size: le::u32(b, 8)?,
            data_offset: le::u64(b, 12)?,
            entry_checksum: le::u32(b, 20)?,
            data_checksum: le::u32(b, 24)?,
        })
    }
}

/// `signature` of an object table.
pub const OBJECT_TABLE_SIGNATURE: u32 = 0x0111_0001;
/// Size of the object-table header (signature, entry count).
pub const OBJECT_TABLE_HEADER_SIZE: usize = 8;

/// Object types of an object-table entry (section 3.4).
pub mod object_type {
    /// Unused entry; in the last slot of a table: end of the chain.
    pub const EMPTY: u8 = 0;
    /// The next object table (valid only in the last slot of a table).
    pub const OBJECT_TABLE: u8 = 1;
    /// A key table.
    pub const KEY_TABLE: u8 = 2;
    /// Raw value bytes of a key whose value does not fit inline (no header of its own).
    pub const FILE_OBJECT: u8 = 3;
    /// Freed space.
    pub const FREED: u8 = 4;
    /// Types 5 (unknown), 6 (replay log), 7 (change-tracking buffer) are ignored.
    pub const LAST_KNOWN: u8 = 7;
}

/// Object-table entry, 18 bytes (section 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Offset 0: one of the [`object_type`] values.
    pub object_type: u8,
    /// Offset 1: CRC-32 of the 18 bytes with this field zeroed (empty entries included).
    pub checksum: u32,
    /// Offset 5: absolute file offset of the object.
    pub offset: u64,
    /// Offset 13: object size in bytes, a multiple of the data alignment.
    pub size: u32,
    /// Offset 17: 1 on used entries and 0 on empty ones in the sample ("required" or
    /// "allocated" depending on the source).
    pub flags: u8,
}

impl ObjectEntry {
    /// Bytes of one entry.
    pub const SIZE: usize = 18;
    /// Offset of [`Self::checksum`] within the entry.
    pub const CHECKSUM_AT: usize = 1;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            object_type: le::u8(b, 0)?,
            checksum: le::u32(b, 1)?,
            offset: le::u64(b, 5)?,
            size: le::u32(b, 13)?,
            flags: le::u8(b, 17)?,
        })
    }
}

/// `signature` of a key table.
pub const KEY_TABLE_SIGNATURE: u16 = 0x0002;

/// Key-table header, 10 bytes (section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTableHeader {
    /// Offset 0: [`KEY_TABLE_SIGNATURE`] in a valid table.
    pub signature: u16,
    /// Offset 2: index that key entries use as `parent_table`; starts at 1 (0 is the root).
    pub table_index: u16,
    /// Offset 4: change counter; of two tables with the same index the higher one is current.
    pub sequence: u16,
    /// Offset 6: CRC-32 of these 10 bytes only, with this field zeroed.
    pub checksum: u32,
}

impl KeyTableHeader {
    /// Bytes of the header; key entries follow at this offset of the table.
    pub const SIZE: usize = 10;
    /// Offset of [`Self::checksum`] within the header.
    pub const CHECKSUM_AT: usize = 6;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            signature: le::u16(b, 0)?,
            table_index: le::u16(b, 2)?,
            sequence: le::u16(b, 4)?,
            checksum: le::u32(b, 6)?,
        })
    }
}

/// Value types of a key entry (section 3.5).
pub mod key_type {
    /// Free entry: no name, no value; skipped by `entry_size`.
    pub const FREE: u8 = 1;
    /// i64, 8 bytes.
    pub const INT: u8 = 3;
    /// u64, 8 bytes.
    pub const UINT: u8 = 4;
    /// IEEE-754 f64, 8 bytes.
    pub const DOUBLE: u8 = 5;
    /// u32 byte length `n`, then `n` bytes of UTF-16LE without a terminator.
    pub const STRING: u8 = 6;
    /// u32 byte length `n`, then `n` bytes (binary).
    pub const ARRAY: u8 = 7;
    /// i32, non-zero is true.
    pub const BOOL: u8 = 8;
    /// Directory node: u64 change-tracking sequence, u32 next insertion sequence.
    pub const NODE: u8 = 9;
}

/// Key-entry flag: the value lives in a file object (12-byte pointer inline).
pub const KEY_FLAG_FILE_OBJECT: u8 = 0x01;

/// Key-entry header, 21 bytes, followed by the NUL-terminated name and the value (section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntryHeader {
    /// Offset 0: one of the [`key_type`] values.
    pub key_type: u8,
    /// Offset 1: [`KEY_FLAG_FILE_OBJECT`] (0x01), 0x02 subcomponent, 0x04 sequence change
    /// tracking.
    pub flags: u8,
    /// Offset 2: total bytes of the entry (header, name, value and slack), at least 21.
    pub entry_size: u32,
    /// Offset 6: `table_index` of the key table holding the parent node; 0 for a child of
    /// the root.
    pub parent_table: u16,
    /// Offset 8: offset of the parent node's entry from the start of its key table; 0 for a
    /// child of the root.
    pub parent_offset: u32,
    /// Offset 12: CRC-32 of the header (this field zeroed), the name and the value's
    /// meaningful bytes (not the slack).
    pub checksum: u32,
    /// Offset 16: 1-based order of the entry among its siblings.
    pub insertion_sequence: u32,
    /// Offset 20: bytes of the UTF-8 name that follows, including its NUL terminator.
    pub name_size: u8,
}

impl KeyEntryHeader {
    /// Bytes of the header; the name follows at this offset of the entry.
    pub const SIZE: usize = 21;
    /// Offset of [`Self::checksum`] within the header.
    pub const CHECKSUM_AT: usize = 12;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            key_type: le::u8(b, 0)?,
            flags: le::u8(b, 1)?,
            entry_size: le::u32(b, 2)?,
            parent_table: le::u16(b, 6)?,
            parent_offset: le::u32(b, 8)?,
            checksum: le::u32(b, 12)?,
            insertion_sequence: le::u32(b, 16)?,
            name_size: le::u8(b, 20)?,
        })
    }
}

/// Size of the inline pointer of a value stored in a file object: u32 size, u64 file offset.
pub const FILE_OBJECT_POINTER_SIZE: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    /// Header copy 0 of the real sample `.VMRS`.
    const SAMPLE_HEADER: &str =
        "142028011c523a8b07000004000000000000000000000010000000a0a2000000000000d000000000000000100000";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn sample_file_header_fields() {
        let b = hex(SAMPLE_HEADER);
        let h = FileHeader::parse(&b).unwrap();
        assert_eq!(h.signature, FILE_SIGNATURE);
        assert_eq!(h.sequence, 7);
        assert_eq!(h.format_version, FORMAT_VERSION_4_0);
        assert_eq!(h.data_alignment, 4096);
        assert_eq!(h.replay_log_offset, 0xA2A000);
        assert_eq!(h.replay_log_size, 0xD000);
        assert_eq!(h.replay_log_header_size, 0x1000);
        assert_eq!(
            crate::crc32_with_zeroed_field(&b[..FileHeader::SIZE], FileHeader::CHECKSUM_AT),
            h.checksum
        );
    }

    #[test]
    fn short_slices_give_none() {
        assert!(FileHeader::parse(&[0; 45]).is_none());
        assert!(ObjectEntry::parse(&[0; 17]).is_none());
        assert!(KeyEntryHeader::parse(&[0; 20]).is_none());
        assert!(ReplayLogHeader::parse(&[0; 33]).is_none());
    }
}
