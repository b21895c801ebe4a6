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
    pub signature: u32,
    pub checksum: u32,
    pub sequence: u16,
    pub format_version: u32,
    pub data_version: u32,
    pub flags: u32,
    pub data_alignment: u32,
    pub replay_log_offset: u64,
    pub replay_log_size: u64,
    pub replay_log_header_size: u32,
}

impl FileHeader {
    pub const SIZE: usize = 46;
    pub const CHECKSUM_AT: usize = 4;

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
    pub signature: u32,
    pub checksum: u32,
    pub current_entries: u32,
    pub max_entries: u32,
    pub change_tracking_enabled: u8,
}

impl ReplayLogHeader {
    pub const SIZE: usize = 34;
    pub const CHECKSUM_AT: usize = 4;

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
    pub destination_offset: u64,
    pub size: u32,
    /// Relative to the start of the log.
    pub data_offset: u64,
    pub entry_checksum: u32,
    pub data_checksum: u32,
}

impl ReplayLogEntry {
    pub const SIZE: usize = 28;
    pub const CHECKSUM_AT: usize = 20;

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
    pub const EMPTY: u8 = 0;
    pub const OBJECT_TABLE: u8 = 1;
    pub const KEY_TABLE: u8 = 2;
    pub const FILE_OBJECT: u8 = 3;
    pub const FREED: u8 = 4;
    /// Types 5 (unknown), 6 (replay log), 7 (change-tracking buffer) are ignored.
    pub const LAST_KNOWN: u8 = 7;
}

/// Object-table entry, 18 bytes (section 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectEntry {
    pub object_type: u8,
    pub checksum: u32,
    pub offset: u64,
    pub size: u32,
    pub flags: u8,
}

impl ObjectEntry {
    pub const SIZE: usize = 18;
    pub const CHECKSUM_AT: usize = 1;

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
    pub signature: u16,
    pub table_index: u16,
    pub sequence: u16,
    pub checksum: u32,
}

impl KeyTableHeader {
    pub const SIZE: usize = 10;
    pub const CHECKSUM_AT: usize = 6;

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
    pub const FREE: u8 = 1;
    pub const INT: u8 = 3;
    pub const UINT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const STRING: u8 = 6;
    pub const ARRAY: u8 = 7;
    pub const BOOL: u8 = 8;
    pub const NODE: u8 = 9;
}

/// Key-entry flag: the value lives in a file object (12-byte pointer inline).
pub const KEY_FLAG_FILE_OBJECT: u8 = 0x01;

/// Key-entry header, 21 bytes, followed by the NUL-terminated name and the value (section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntryHeader {
    pub key_type: u8,
    pub flags: u8,
    pub entry_size: u32,
    pub parent_table: u16,
    pub parent_offset: u32,
    pub checksum: u32,
    pub insertion_sequence: u32,
    pub name_size: u8,
}

impl KeyEntryHeader {
    pub const SIZE: usize = 21;
    pub const CHECKSUM_AT: usize = 12;

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
