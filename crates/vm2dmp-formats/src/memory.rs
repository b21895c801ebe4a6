//! Guest memory: the `RamMemoryBlock` metadata and the RAM-block token stream.
//!
//! Source: docs/hyperv-saved-state.md sections 6.1 and 6.3.

use crate::le;

/// Bytes in a guest page.
pub const PAGE_SIZE: usize = 4096;
/// Pages in one RAM block; a block always decodes to 1 MiB.
pub const PAGES_PER_BLOCK: usize = 256;
/// Bytes of one decoded RAM block (1 MiB); a stored value of exactly this size is a raw block.
pub const BLOCK_SIZE: usize = PAGE_SIZE * PAGES_PER_BLOCK;

/// `RamMemoryBlock` metadata, 48 bytes, version 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamMemoryBlock {
    /// Offset 0: structure version; only [`Self::VERSION_3`] is described anywhere.
    pub version: u32,
    /// Offset 4: bit 0 hot-added, bit 1 SGX, bit 2 VTL2 memory, bit 3 specific-purpose.
    pub flags: u32,
    /// Offset 8: 4 KiB pages in this guest-physical range.
    pub page_count: u64,
    /// Offset 16: first page of this range within the concatenation of all RAM blocks.
    pub mbp_index_start: u64,
    /// Offset 24: first guest-physical page number (GPA / 4096).
    pub gpa_page_start: u64,
    /// Offset 32: NUMA node.
    pub virtual_node: u32,
    /// Offset 36: zero.
    pub padding: u32,
    /// Offset 40: kernel-soft-reboot block id.
    pub ksr_block_id: u64,
}

impl RamMemoryBlock {
    /// Bytes of the structure (and of a valid `RamMemoryBlock` value).
    pub const SIZE: usize = 48;
    /// The only documented `version`.
    pub const VERSION_3: u32 = 3;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            version: le::u32(b, 0)?,
            flags: le::u32(b, 4)?,
            page_count: le::u64(b, 8)?,
            mbp_index_start: le::u64(b, 16)?,
            gpa_page_start: le::u64(b, 24)?,
            virtual_node: le::u32(b, 32)?,
            padding: le::u32(b, 36)?,
            ksr_block_id: le::u64(b, 40)?,
        })
    }

    /// The 48 on-disk bytes; [`Self::parse`] of them gives back `self`.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.page_count.to_le_bytes());
        b[16..24].copy_from_slice(&self.mbp_index_start.to_le_bytes());
        b[24..32].copy_from_slice(&self.gpa_page_start.to_le_bytes());
        b[32..36].copy_from_slice(&self.virtual_node.to_le_bytes());
        b[36..40].copy_from_slice(&self.padding.to_le_bytes());
        b[40..48].copy_from_slice(&self.ksr_block_id.to_le_bytes());
        b
    }
}

/// Leading u32 of each token in a RAM-block token stream.
pub mod token {
    /// End of stream.
    pub const END: u32 = 0xFFFF_FFFF;
    /// u64 pattern follows: one page of the pattern repeated.
    pub const FILL_PAGE: u32 = 0xFFFF_FFFE;
    /// u64 pattern, u32 count follow: `count` pages of the pattern.
    pub const FILL_PAGES: u32 = 0xFFFF_FFFD;
    /// u32 out_len, u32 in_len, then in_len bytes: `out_len` bytes, stored or Plain LZ77.
    pub const SIZED: u32 = 0xFFFF_FFFC;
    /// A token value equal to the page size: one raw page follows.
    pub const RAW_PAGE: u32 = 4096;
    /// Values 1..=MAX_COMPRESSED_PAGE: that many bytes of Plain LZ77 decoding to one page.
    pub const MAX_COMPRESSED_PAGE: u32 = 4095;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_memory_block_round_trip() {
        let m = RamMemoryBlock {
            version: 3,
            flags: 0,
            page_count: 64512,
            mbp_index_start: 0,
            gpa_page_start: 0x10_0000,
            virtual_node: 1,
            padding: 0,
            ksr_block_id: 7,
        };
        assert_eq!(RamMemoryBlock::parse(&m.to_bytes()), Some(m));
        assert!(RamMemoryBlock::parse(&[0; 47]).is_none());
    }
}
