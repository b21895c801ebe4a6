//! What was written where: offsets of every structure, so tests can corrupt precisely.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::encode::{TokenCounts, TokenLoc};
use crate::model::PlacedRange;
use crate::partition::PartitionLayout;

/// Which file a location refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileRole {
    /// The HVS `.VMRS`.
    Vmrs,
    /// The legacy `.vsv` (everything but the RAM blocks).
    Vsv,
    /// The legacy `.bin` (the RAM blocks).
    Bin,
}

/// One HVS object-table entry's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLoc {
    /// Object type: 1 table (link), 2 key table, 3 file object, 4 freed.
    pub kind: u8,
    /// File offset of the object.
    pub offset: u64,
    /// Size of the object (a multiple of the alignment).
    pub size: u64,
    /// File offset of the 18-byte object-table entry that describes it.
    pub entry_offset: u64,
}

/// One HVS object table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectTableLoc {
    /// File offset of the table.
    pub offset: u64,
    /// Size of the table in bytes.
    pub size: u64,
    /// `entry_count` of its header.
    pub entry_count: u32,
    /// File offset of its last slot (link to the next table, or end of chain).
    pub link_entry_offset: u64,
}

/// One HVS key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTableLoc {
    /// `table_index` of its header.
    pub index: u16,
    /// `sequence` of its header.
    pub sequence: u16,
    /// File offset of the table.
    pub offset: u64,
    /// Size of the table (its object) in bytes.
    pub size: u64,
    /// Number of entries, free entries included.
    pub entries: u32,
    /// True for a stale copy (same index, lower sequence) that a reader must ignore.
    pub stale_copy: bool,
}

/// A key (HVS key entry or legacy index slot) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLoc {
    /// File the key is in.
    pub file: FileRole,
    /// HVS: offset of the key entry; legacy: offset of the 24-byte index slot.
    pub entry_offset: u64,
    /// HVS: `entry_size`; legacy: 24.
    pub entry_size: u64,
    /// HVS value type (1..9) or legacy slot type (1, 2, 3, 5).
    pub value_type: u8,
    /// HVS entry flags (0x01 file object, 0x02 subcomponent); 0 for legacy.
    pub flags: u8,
    /// HVS: index of the key table holding the entry; 0 for legacy.
    pub table_index: u16,
    /// HVS: offset of the entry within its key table; 0 for legacy.
    pub table_offset: u32,
    /// HVS: `insertion_sequence` of the entry; legacy: 1-based slot number.
    pub insertion_sequence: u32,
    /// Offset of the value part stored in the entry (after the name) or, for legacy
    /// inline values, of the slot's inline field.
    pub stored_offset: u64,
    /// Offset of the value's data bytes: after a u32 length prefix for HVS strings and
    /// arrays, inside the file object when the value lives in one.
    pub value_offset: u64,
    /// Bytes of value data at `value_offset`.
    pub value_size: u64,
    /// HVS file object (offset, object size) or legacy allocation (offset, allocated).
    pub object: Option<(u64, u64)>,
    /// Legacy: value stored inline in the slot.
    pub inline: bool,
}

/// One RAM block value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamBlockLoc {
    /// RAM block number.
    pub block: u64,
    /// File the value is in (`.VMRS` or `.bin`).
    pub file: FileRole,
    /// Key name (`/savedstate/RamBlock7` or `RamBlock/7/`).
    pub key: String,
    /// File offset of the stored value bytes.
    pub value_offset: u64,
    /// Bytes of the stored value (1 MiB for a raw block).
    pub value_size: u64,
    /// Stored as a raw 1 MiB block.
    pub raw: bool,
    /// Raw all-zero block left as a hole in the file.
    pub hole: bool,
    /// HVS: in a file object (otherwise inline in its key entry).
    pub in_file_object: bool,
    /// Tokens of each kind in the block.
    pub counts: TokenCounts,
    /// Token locations (only with `SynthVm::record_tokens`).
    pub tokens: Vec<TokenLoc>,
}

/// One replay-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayEntryLoc {
    /// File offset of the 28-byte entry header.
    pub header_offset: u64,
    /// `destination_offset`: file offset the data belongs to.
    pub destination: u64,
    /// Bytes of data.
    pub size: u64,
    /// File offset of the data (log offset + data_offset).
    pub data_offset: u64,
}

/// The HVS replay log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayLogLoc {
    /// File offset of the log (`replay_log_offset`).
    pub offset: u64,
    /// Bytes of the log region (`replay_log_size`).
    pub size: u64,
    /// Bytes reserved for the log header and entry headers (`replay_log_header_size`).
    pub header_size: u64,
    /// Entries counted by `current_entries`.
    pub pending: Vec<ReplayEntryLoc>,
    /// Entries present but already applied.
    pub stale: Vec<ReplayEntryLoc>,
}

/// Header of a legacy container file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegacyFileLoc {
    /// File size.
    pub size: u64,
    /// `index_offset` of the header: file offset of the slot array.
    pub index_offset: u64,
    /// `index_capacity` of the header: number of slots.
    pub index_capacity: u32,
    /// `strings_offset` of the header: file offset of the name table.
    pub strings_offset: u64,
    /// `strings_allocated` of the header: bytes reserved for names.
    pub strings_allocated: u32,
    /// `strings_used` of the header: bytes of names.
    pub strings_used: u32,
    /// `.vsv` only: the internal data table as (begins, ends, used bytes), the values of
    /// the `InternalDataTable*` keys.
    pub data_table: Option<(u64, u64, u64)>,
}

/// Everything a test needs to find a structure in the written files.
#[derive(Debug, Clone, Default)]
pub struct SynthLayout {
    /// Files written, by role.
    pub files: BTreeMap<&'static str, PathBuf>,
    /// Size of the `.VMRS`, or of the `.vsv` for a legacy pair.
    pub file_size: u64,
    /// HVS: the two header copies.
    pub header_offsets: [u64; 2],
    /// HVS: object alignment (`data_alignment`); 4096 for a legacy pair.
    pub alignment: u64,
    /// HVS: the object tables, in chain order.
    pub object_tables: Vec<ObjectTableLoc>,
    /// HVS: every object an object-table entry describes.
    pub objects: Vec<ObjectLoc>,
    /// HVS: the key tables (stale copies included).
    pub key_tables: Vec<KeyTableLoc>,
    /// Keys by full path (HVS) or name (legacy). Repeated sibling nodes carry a `#n` suffix.
    pub keys: BTreeMap<String, KeyLoc>,
    /// RAM block values, by block number.
    pub ram_blocks: Vec<RamBlockLoc>,
    /// The memory map written (`RamMemoryBlock<d>`).
    pub memory_map: Vec<PlacedRange>,
    /// Inside the partition_state value.
    pub partition: PartitionLayout,
    /// HVS: the replay log.
    pub replay_log: Option<ReplayLogLoc>,
    /// Legacy: the `.bin` header values.
    pub bin: Option<LegacyFileLoc>,
    /// Legacy: the `.vsv` header values.
    pub vsv: Option<LegacyFileLoc>,
    /// Totals over all blocks.
    pub token_totals: TokenCounts,
}

impl SynthLayout {
    /// The key with this path / name; panics if absent.
    pub fn key(&self, path: &str) -> &KeyLoc {
        self.keys
            .get(path)
            .unwrap_or_else(|| panic!("no key {path:?} in layout"))
    }

    /// File offset of the partition_state value bytes.
    pub fn partition_state_offset(&self) -> u64 {
        self.keys
            .iter()
            .find(|(k, _)| k.ends_with("savedVM/partition_state"))
            .map(|(_, v)| v.value_offset)
            .expect("partition_state written")
    }

    /// File offset of chunk `id` of VP `vp` (VTL 0) inside partition_state (header of the chunk).
    pub fn chunk_offset(&self, id: u32, vp: Option<u32>) -> Option<u64> {
        self.partition
            .find(id, vp, 0)
            .map(|c| self.partition_state_offset() + c.offset)
    }

    /// Key-table location by index (the current one, not a stale copy).
    pub fn key_table(&self, index: u16) -> &KeyTableLoc {
        self.key_tables
            .iter()
            .find(|t| t.index == index && !t.stale_copy)
            .expect("key table index")
    }

    /// Raw saved-memory size in bytes (number of RAM blocks x 1 MiB).
    pub fn raw_memory_size(&self) -> u64 {
        self.ram_blocks.len() as u64 * (1 << 20)
    }
}
