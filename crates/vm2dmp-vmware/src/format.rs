//! The checkpoint container: header, group table and the tag streams of the groups this
//! reader uses.
//!
//! Layout (crash `vmware_vmss.h`, volatility3 `layers/vmware.py`, Volatility 2
//! `addrspaces/vmware.py`):
//!
//! * header, 12 bytes: magic `u32`, a `u32` crash calls the version, group count `u32`;
//! * group table at 12: per group a 64-byte NUL-padded name, the offset of its first tag
//!   (`u64`) and a `u64` crash calls the group's size;
//! * tags, one after another from a group's offset until a tag whose two first bytes are
//!   zero. A tag is a flags byte (bits 0..6 the data size, bits 6..8 the number of `u32`
//!   indices), a name-length byte, the name, the indices, then the data. Data sizes 62
//!   (compressed) and 63 mark long data: the size on disk and the size in memory (`u32`
//!   each when the magic's low nibble is 0, else `u64`), a `u16` padding length, that many
//!   padding bytes, then the data.

use vm2dmp_source::{le, InputFile, Result};

/// Magic of crash's "old" checkpoints (`CPTDUMP_OLD_MAGIC_NUMBER`, 32-bit sizes).
pub const MAGIC_OLD: u32 = 0xbed0_bed0;
/// The first magic volatility3 and Volatility 2 accept; its low nibble is 0 (32-bit sizes).
pub const MAGIC_V0: u32 = 0xbed2_bed0;
/// Restored checkpoint (`CPTDUMP_RESTORED_MAGIC_NUMBER`).
pub const MAGIC_RESTORED: u32 = 0xbad1_bad1;
/// Checkpoint not to be restored (`CPTDUMP_NORESTORE_MAGIC_NUMBER`).
pub const MAGIC_NORESTORE: u32 = 0xbad2_bad2;
/// Current checkpoints (`CPTDUMP_MAGIC_NUMBER`).
pub const MAGIC: u32 = 0xbed2_bed2;
/// Partial checkpoints (`CPTDUMP_PARTIAL_MAGIC_NUMBER`).
pub const MAGIC_PARTIAL: u32 = 0xbed3_bed3;

/// Every magic value accepted.
pub const MAGICS: [u32; 6] = [
    MAGIC_OLD,
    MAGIC_V0,
    MAGIC_RESTORED,
    MAGIC_NORESTORE,
    MAGIC,
    MAGIC_PARTIAL,
];

/// Size of the header.
pub const HEADER_SIZE: u64 = 12;
/// Size of one group-table entry.
pub const GROUP_SIZE: u64 = 80;
/// Most groups accepted (real files have about a hundred).
pub const MAX_GROUPS: u32 = 4096;
/// Most tags read in one group.
pub const MAX_TAGS_PER_GROUP: usize = 1 << 20;
/// Long-data size field value meaning compressed data.
pub const SIZE_COMPRESSED: u8 = 62;
/// Long-data size field value meaning uncompressed data.
pub const SIZE_BLOCK: u8 = 63;

/// Longest tag head read at once: flags, name length, a 255-byte name, three indices, two
/// 64-bit sizes and the padding length; short data (at most 61 bytes) follows in the same read.
const TAG_HEAD_MAX: u64 = 2 + 255 + 12 + 16 + 2 + 61;

/// One group-table entry.
#[derive(Debug, Clone)]
pub struct Group {
    /// Name, up to its first NUL.
    pub name: String,
    /// Offset of the group's first tag.
    pub tags_offset: u64,
    /// Offset of this entry in the group table.
    pub entry_offset: u64,
}

/// One tag of a group.
#[derive(Debug, Clone)]
pub struct Tag {
    /// Offset of the tag's flags byte.
    pub offset: u64,
    /// Name.
    pub name: String,
    /// Number of indices (0 to 3).
    pub index_count: u8,
    /// The indices; unused ones are 0.
    pub indices: [u32; 3],
    /// Long data (size 62 or 63) rather than a value of at most 61 bytes.
    pub long: bool,
    /// Long data stored compressed (size 62).
    pub compressed: bool,
    /// Offset of the data (after any padding).
    pub data_offset: u64,
    /// Length of the data on disk.
    pub data_len: u64,
    /// The data of a short tag (empty for long data).
    pub short: Vec<u8>,
}

impl Tag {
    /// The short value as an unsigned little-endian number, when it is 1 to 8 bytes.
    pub fn value(&self) -> Option<u64> {
        if self.long || self.short.is_empty() || self.short.len() > 8 {
            return None;
        }
        let mut b = [0u8; 8];
        b[..self.short.len()].copy_from_slice(&self.short);
        Some(u64::from_le_bytes(b))
    }

    /// Index `i`, when the tag has that many.
    pub fn index(&self, i: usize) -> Option<u32> {
        (i < usize::from(self.index_count)).then(|| self.indices[i])
    }
}

/// The parsed header and group table.
#[derive(Debug, Clone)]
pub struct Container {
    /// Magic value.
    pub magic: u32,
    /// Width of long-data size fields: 4 when the magic's low nibble is 0, else 8.
    pub size_width: u64,
    /// The groups, in table order.
    pub groups: Vec<Group>,
}

impl Container {
    /// The first group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// Reads the header and the group table.
pub fn parse_container(file: &InputFile) -> Result<Container> {
    let ctx = &file.ctx;
    let head = file.bytes(0, HEADER_SIZE, "checkpoint header")?;
    let field = |off| {
        le::u32(&head, off)
            .ok_or_else(|| ctx.corrupt("checkpoint header", 0, "shorter than 12 bytes"))
    };
    let magic = field(0)?;
    let count = field(8)?;
    if !MAGICS.contains(&magic) {
        return Err(ctx.corrupt(
            "checkpoint header",
            0,
            format!("magic {magic:#010x} is not a VMware checkpoint's"),
        ));
    }
    if count > MAX_GROUPS {
        return Err(ctx.corrupt(
            "checkpoint header",
            8,
            format!("{count} groups, more than the {MAX_GROUPS} this reader accepts"),
        ));
    }
    let table_len = u64::from(count) * GROUP_SIZE;
    let table = file.bytes(HEADER_SIZE, table_len, "group table")?;
    let mut groups = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let entry_offset = HEADER_SIZE + i as u64 * GROUP_SIZE;
        let base = i * GROUP_SIZE as usize;
        let name_bytes = table.get(base..base + 64).unwrap_or(&[]);
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        let tags_offset = le::u64(&table, base + 64)
            .ok_or_else(|| ctx.corrupt("group table entry", entry_offset, "truncated"))?;
        groups.push(Group {
            name,
            tags_offset,
            entry_offset,
        });
    }
    Ok(Container {
        magic,
        size_width: if magic & 0xF == 0 { 4 } else { 8 },
        groups,
    })
}

/// Reads the tags of `group` up to its terminating null tag.
pub fn read_tags(file: &InputFile, container: &Container, group: &Group) -> Result<Vec<Tag>> {
    let ctx = &file.ctx;
    let len = file.len();
    if group.tags_offset >= len {
        return Err(ctx.corrupt(
            "group table entry",
            group.entry_offset,
            format!(
                "group \"{}\" starts at {:#x}, beyond the end of the file ({len} bytes)",
                group.name, group.tags_offset
            ),
        ));
    }
    let mut tags = Vec::new();
    let mut pos = group.tags_offset;
    loop {
        if tags.len() >= MAX_TAGS_PER_GROUP {
            return Err(ctx.corrupt(
                "tag",
                pos,
                format!(
                    "group \"{}\" has more than {MAX_TAGS_PER_GROUP} tags",
                    group.name
                ),
            ));
        }
        let avail = len.saturating_sub(pos).min(TAG_HEAD_MAX);
        let head = file.bytes(pos, avail, "tag")?;
        let truncated = |what: &str| {
            ctx.corrupt(
                "tag",
                pos,
                format!("{what} runs past the end of the file ({len} bytes)"),
            )
        };
        let (Some(flags), Some(name_len)) = (le::u8(&head, 0), le::u8(&head, 1)) else {
            return Err(truncated("the tag head"));
        };
        if flags == 0 && name_len == 0 {
            return Ok(tags);
        }
        let mut at = 2usize;
        let name_bytes = head
            .get(at..at + usize::from(name_len))
            .ok_or_else(|| truncated("the tag name"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        at += usize::from(name_len);
        let index_count = flags >> 6;
        let mut indices = [0u32; 3];
        for slot in indices.iter_mut().take(usize::from(index_count)) {
            *slot = le::u32(&head, at).ok_or_else(|| truncated("the tag indices"))?;
            at += 4;
        }
        let size = flags & 0x3F;
        let tag = if size == SIZE_BLOCK || size == SIZE_COMPRESSED {
            let w = container.size_width as usize;
            let read_size = |off: usize| -> Option<u64> {
                if w == 4 {
                    le::u32(&head, off).map(u64::from)
                } else {
                    le::u64(&head, off)
                }
            };
            let data_len = read_size(at).ok_or_else(|| truncated("the long-data sizes"))?;
            read_size(at + w).ok_or_else(|| truncated("the long-data sizes"))?;
            let pad = le::u16(&head, at + 2 * w)
                .ok_or_else(|| truncated("the long-data padding length"))?;
            let data_offset = pos + (at + 2 * w + 2) as u64 + u64::from(pad);
            let end = data_offset.checked_add(data_len).filter(|&e| e <= len);
            if end.is_none() {
                return Err(ctx.corrupt(
                    "tag",
                    pos,
                    format!(
                        "tag \"{name}\": {data_len} bytes of data at {data_offset:#x} run past the end of the file ({len} bytes)"
                    ),
                ));
            }
            Tag {
                offset: pos,
                name,
                index_count,
                indices,
                long: true,
                compressed: size == SIZE_COMPRESSED,
                data_offset,
                data_len,
                short: Vec::new(),
            }
        } else {
            let data = head
                .get(at..at + usize::from(size))
                .ok_or_else(|| truncated(&format!("tag \"{name}\": its {size}-byte value")))?;
            Tag {
                offset: pos,
                name,
                index_count,
                indices,
                long: false,
                compressed: false,
                data_offset: pos + at as u64,
                data_len: u64::from(size),
                short: data.to_vec(),
            }
        };
        // Both bounded by the file length, checked above.
        pos = tag.data_offset + tag.data_len;
        tags.push(tag);
    }
}
