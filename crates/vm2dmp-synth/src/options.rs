//! Writer options: everything that changes the bytes of the files without changing the VM.

/// A key value, for extra keys added by a test.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// HVS type 3 / legacy type 2.
    Int(i64),
    /// HVS type 4 / legacy type 2.
    Uint(u64),
    /// HVS type 5 / legacy type 4 (never seen in a real legacy file).
    Double(f64),
    /// HVS type 6 / legacy type 5 (UTF-16LE, no terminator).
    String(String),
    /// HVS type 7 / legacy type 1.
    Binary(Vec<u8>),
    /// HVS type 8 / legacy type 3.
    Bool(bool),
}

/// Order in which the `RamBlock` keys (and, for HVS, their file objects) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockOrder {
    /// 0, 1, 2, ...
    Sequential,
    /// A deterministic local shuffle (neighbours swapped), like the real sample where
    /// blocks were saved by parallel workers: `RamBlock2`, `RamBlock3`, `RamBlock0`, ...
    #[default]
    Interleaved,
    /// Fully reversed.
    Reversed,
}

impl BlockOrder {
    /// The block numbers `0..n` in this order.
    pub fn order(self, n: u64) -> Vec<u64> {
        match self {
            BlockOrder::Sequential => (0..n).collect(),
            BlockOrder::Reversed => (0..n).rev().collect(),
            BlockOrder::Interleaved => {
                let mut v: Vec<u64> = (0..n).collect();
                // Rotate every group of 3 by one and swap some neighbouring pairs.
                let mut i = 0usize;
                while i + 3 <= v.len() {
                    v[i..i + 3].rotate_left(2 - (i / 3) % 2);
                    i += 3;
                }
                let mut j = 1usize;
                while j + 1 < v.len() {
                    if (j / 5) % 2 == 0 {
                        v.swap(j, j + 1);
                    }
                    j += 5;
                }
                v
            }
        }
    }
}

/// Layout of the partition_state envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartitionStyle {
    /// As in real files: descriptor {24, 0x1040, total}, then 'METI' items Vers, VpCt,
    /// HvSm (summary PROLOG) and HvSt (the chunk stream).
    #[default]
    Items,
    /// Descriptor {24, 24, total} and 16 zero bytes, then the chunk stream (no items).
    Bare,
}

/// Order of the VTL register sets of a VP that has a VTL-1 set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VtlOrder {
    /// VP chunk, VTL-0 registers, VP_VTL(1), VTL-1 registers.
    #[default]
    Vtl0First,
    /// VP chunk, VP_VTL(1), VTL-1 registers, VP_VTL(0), VTL-0 registers.
    Vtl1First,
}

/// Options for the partition_state blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOptions {
    /// Envelope layout.
    pub style: PartitionStyle,
    /// Zero bytes stored after `total_size` (32 in real files).
    pub trailing_zeros: usize,
    /// Index of the boot processor written into VP_INDICES.
    pub boot_vp: u32,
    /// Order of the two register sets of a VP with VTL 1.
    pub vtl_order: VtlOrder,
    /// Value of the `VpCt` item; `None` = number of VPs.
    pub vp_count_item: Option<u32>,
    /// Extra chunks `(id, body)` appended before the EPILOG (e.g. unknown ids).
    pub extra_chunks: Vec<(u32, Vec<u8>)>,
}

impl Default for PartitionOptions {
    /// As in real files: `Items` envelope, 32 trailing zeros, boot VP 0, VTL 0 first, `VpCt`
    /// = number of VPs, no extra chunks.
    fn default() -> Self {
        Self {
            style: PartitionStyle::Items,
            trailing_zeros: 32,
            boot_vp: 0,
            vtl_order: VtlOrder::Vtl0First,
            vp_count_item: None,
            extra_chunks: Vec::new(),
        }
    }
}

/// One copy of the HVS file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderCopy {
    /// `sequence`: the valid copy with the higher value is current.
    pub sequence: u16,
    /// `format_version` (0x400 is the only one readers accept).
    pub format_version: u32,
    /// Store a wrong checksum.
    pub bad_checksum: bool,
    /// Store a wrong signature.
    pub bad_signature: bool,
    /// Point this copy at another replay-log offset (e.g. garbage), checksum still valid.
    pub replay_log_offset: Option<u64>,
    /// Override the alignment field.
    pub data_alignment: Option<u32>,
}

impl HeaderCopy {
    /// A valid copy with this sequence, format version 0x400 and no overrides.
    pub const fn with_sequence(sequence: u16) -> Self {
        Self {
            sequence,
            format_version: 0x400,
            bad_checksum: false,
            bad_signature: false,
            replay_log_offset: None,
            data_alignment: None,
        }
    }
}

/// What already-applied ("stale") entries the replay log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaleReplay {
    /// An empty log.
    None,
    /// A few entries whose data equals the file bytes at their destination (as in the
    /// real sample); `current_entries` stays 0.
    #[default]
    Matching,
    /// Entries whose data differs from the destination (an older version): a reader that
    /// replays entries beyond `current_entries` corrupts the file.
    Outdated,
}

/// A structure to journal as a pending replay-log entry: the correct bytes go to the log
/// and the destination in the file body is overwritten with `pending_fill`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTarget {
    /// The whole key entry of this path.
    KeyEntry(String),
    /// The stored value bytes of this path (inline value or file object contents).
    KeyValue(String),
    /// The key table with this index.
    KeyTable(u16),
    /// The n-th object table (0 = the one at 8192).
    ObjectTable(usize),
    /// Arbitrary bytes.
    Range {
        /// File offset of the first byte.
        offset: u64,
        /// Number of bytes.
        len: u64,
    },
}

/// Options for [`crate::write_vmrs`].
#[derive(Debug, Clone, PartialEq)]
pub struct VmrsOptions {
    /// Object alignment (power of two, 4096..=65536); key tables are one alignment unit.
    pub alignment: u32,
    /// Header copies 0 (at offset 0) and 1 (at 4096).
    pub headers: [HeaderCopy; 2],
    /// Size of each linked object table (a multiple of the alignment).
    pub object_table_size: u32,
    /// Strings and arrays of at least this many bytes go to file objects (2048 in Hyper-V).
    pub file_object_threshold: usize,
    /// Store every RAM block in a file object, however small.
    pub ram_blocks_always_in_file_objects: bool,
    /// Add a type-4 (freed) object filled with stale key-table-looking bytes.
    pub freed_object: bool,
    /// `sequence` of every key table header.
    pub key_table_sequence: u16,
    /// Also store a stale copy of key table 1 (same index, lower sequence, wrong contents).
    pub stale_key_table_copy: bool,
    /// Already-applied entries kept in the replay log.
    pub stale_replay: StaleReplay,
    /// Structures journaled as pending replay-log entries (their place in the file body
    /// holds `pending_fill` bytes).
    pub pending_replay: Vec<ReplayTarget>,
    /// Byte written over the destinations of pending replay entries.
    pub pending_fill: u8,
    /// Bytes reserved at the start of the log for its header and entry headers.
    pub replay_log_header_size: u32,
    /// `/savedstate/type`.
    pub savedstate_type: String,
    /// Include sample-like `/configuration/...` and `/savedstate/configuration/...` keys.
    pub device_keys: bool,
    /// Extra keys `(full path, value)`, added after the standard ones.
    pub extra_keys: Vec<(String, KeyValue)>,
    /// Keys (and whole subtrees) to leave out, by full path.
    pub omit_keys: Vec<String>,
}

impl Default for VmrsOptions {
    /// Like the real sample: alignment 4096, header sequences 7 and 6, matching stale replay
    /// entries, a freed object and the device keys; nothing pending.
    fn default() -> Self {
        Self {
            alignment: 4096,
            headers: [HeaderCopy::with_sequence(7), HeaderCopy::with_sequence(6)],
            object_table_size: 0x2000,
            file_object_threshold: 2048,
            ram_blocks_always_in_file_objects: false,
            freed_object: true,
            key_table_sequence: 2,
            stale_key_table_copy: false,
            stale_replay: StaleReplay::Matching,
            pending_replay: Vec::new(),
            pending_fill: 0xDB,
            replay_log_header_size: 0x1000,
            savedstate_type: "Normal".to_string(),
            device_keys: true,
            extra_keys: Vec::new(),
            omit_keys: Vec::new(),
        }
    }
}

/// Options for [`crate::write_vsv_bin`].
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyOptions {
    /// Index slots of the `.bin`; `None` = 1024, or the next multiple of 1024 that fits.
    pub bin_index_capacity: Option<u32>,
    /// Index slots of the `.vsv`; `None` = as for the `.bin`.
    pub vsv_index_capacity: Option<u32>,
    /// Size of the video-RAM value stored outside the internal data table (8 MiB in the
    /// real sample; 0 = no such key).
    pub vram_bytes: usize,
    /// Include sample-like `/configuration/...` device keys in the `.vsv`.
    pub device_keys: bool,
    /// Extra `.vsv` keys `(name, value)`.
    pub extra_vsv_keys: Vec<(String, KeyValue)>,
    /// `.vsv` names to leave out.
    pub omit_vsv_keys: Vec<String>,
    /// `.bin` names to leave out (e.g. `RamBlock/3/`).
    pub omit_bin_keys: Vec<String>,
}

impl Default for LegacyOptions {
    /// Default index capacities, 256 KiB of video RAM, device keys, nothing added or left out.
    fn default() -> Self {
        Self {
            bin_index_capacity: None,
            vsv_index_capacity: None,
            vram_bytes: 256 * 1024,
            device_keys: true,
            extra_vsv_keys: Vec::new(),
            omit_vsv_keys: Vec::new(),
            omit_bin_keys: Vec::new(),
        }
    }
}
