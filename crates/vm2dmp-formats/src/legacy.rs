//! Legacy key/value container of `.vsv` and `.bin` files (signature 0x02182003, version 0x500).
//!
//! Source: docs/hyperv-saved-state.md section 4 (no public description; every field verified on
//! the real sample pair).

use crate::le;

/// `signature` of the header of both files of a pair.
pub const SIGNATURE: u32 = 0x0218_2003;
/// The only `version` seen (and supported): 0x500.
pub const VERSION_5_0: u32 = 0x500;
/// The header occupies the first page; data starts after it.
pub const MIN_FILE_SIZE: u64 = 4096;

/// File header, 40 meaningful bytes at offset 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset 0: [`SIGNATURE`] in a valid file.
    pub signature: u32,
    /// Offset 4: [`VERSION_5_0`] in the sample.
    pub version: u32,
    /// Offset 8: meaning unknown; 1 in both sample files.
    pub unknown: u32,
    /// Offset 12: number of 24-byte index slots.
    pub index_capacity: u32,
    /// Offset 16: absolute file offset of the slot array.
    pub index_offset: u64,
    /// Offset 24: absolute file offset of the name string table.
    pub strings_offset: u64,
    /// Offset 32: bytes reserved for names.
    pub strings_allocated: u32,
    /// Offset 36: bytes of names in use.
    pub strings_used: u32,
}

impl Header {
    /// Meaningful bytes of the header (the rest of the first 4096 bytes is zero).
    pub const SIZE: usize = 40;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            signature: le::u32(b, 0)?,
            version: le::u32(b, 4)?,
            unknown: le::u32(b, 8)?,
            index_capacity: le::u32(b, 12)?,
            index_offset: le::u64(b, 16)?,
            strings_offset: le::u64(b, 24)?,
            strings_allocated: le::u32(b, 32)?,
            strings_used: le::u32(b, 36)?,
        })
    }
}

/// Value types of an index slot.
pub mod slot_type {
    /// Binary bytes.
    pub const BINARY: u8 = 1;
    /// i64.
    pub const INTEGER: u8 = 2;
    /// u32, non-zero is true.
    pub const BOOLEAN: u8 = 3;
    /// UTF-16LE without a terminator.
    pub const STRING: u8 = 5;
}

/// Index slot, 24 bytes. An all-zero slot is unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Offset 0: offset of the name within the string table.
    pub name_offset: u32,
    /// Offset 4: bytes of the name including its NUL terminator.
    pub name_size: u16,
    /// Offset 6: meaning unknown; 1 in every used slot of the sample.
    pub unknown: u8,
    /// Offset 7: one of the [`slot_type`] values.
    pub slot_type: u8,
    /// Offset 8: bytes reserved for the value; 0 means the value is stored inline in
    /// `offset_or_inline`.
    pub allocated: u32,
    /// Offset 12: bytes of the value (at most 8 when inline).
    pub size: u32,
    /// Offset 16: absolute file offset of the value, or, when `allocated` is 0, the value
    /// itself in its low `size` bytes.
    pub offset_or_inline: u64,
}

impl Slot {
    /// Bytes of one slot.
    pub const SIZE: usize = 24;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            name_offset: le::u32(b, 0)?,
            name_size: le::u16(b, 4)?,
            unknown: le::u8(b, 6)?,
            slot_type: le::u8(b, 7)?,
            allocated: le::u32(b, 8)?,
            size: le::u32(b, 12)?,
            offset_or_inline: le::u64(b, 16)?,
        })
    }

    /// True for an unused slot: no name, type, allocation or size. (The other fields are
    /// not looked at.)
    pub fn is_unused(&self) -> bool {
        self.name_size == 0 && self.slot_type == 0 && self.allocated == 0 && self.size == 0
    }

    /// True when the value is stored in [`Self::offset_or_inline`] (`allocated` is 0).
    pub fn is_inline(&self) -> bool {
        self.allocated == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let mut b = [0u8; 40];
        b[0..4].copy_from_slice(&SIGNATURE.to_le_bytes());
        b[4..8].copy_from_slice(&VERSION_5_0.to_le_bytes());
        b[12..16].copy_from_slice(&1024u32.to_le_bytes());
        b[16..24].copy_from_slice(&0x179000u64.to_le_bytes());
        b[36..40].copy_from_slice(&0xD5Au32.to_le_bytes());
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.index_capacity, 1024);
        assert_eq!(h.index_offset, 0x179000);
        assert_eq!(h.strings_used, 0xD5A);
    }
}
