//! Reader of the HVS container (`.vmrs`, `.vmcx`): active header, replay log, object tables,
//! key tables and the key tree. Layout: docs/hyperv-saved-state.md section 3.
//!
//! This module chooses the header, walks the object tables and parses the key tables; the
//! replay log is checked and replayed in `replay`, and the entries are linked into the key
//! tree in `key_tree`.

mod key_tree;
mod replay;

use std::collections::{HashMap, HashSet};

use vm2dmp_formats::crc32_with_zeroed_field as crc;
use vm2dmp_formats::hvs::{
    key_type, object_type, FileHeader, KeyEntryHeader, KeyTableHeader, ObjectEntry,
    FILE_OBJECT_POINTER_SIZE, FILE_SIGNATURE, FIRST_OBJECT_TABLE, FORMAT_VERSION_4_0,
    HEADER_COPY_OFFSETS, KEY_FLAG_FILE_OBJECT, KEY_TABLE_SIGNATURE, MIN_FILE_SIZE,
    OBJECT_TABLE_HEADER_SIZE, OBJECT_TABLE_SIGNATURE,
};
use vm2dmp_formats::le;

use crate::value::{Value, ValueType};
use key_tree::{build_tree, KeyTree, RawKey};
use replay::apply_replay_log;
use vm2dmp_source::InputFile;
use vm2dmp_source::Result;

pub use replay::ReplayLogStatus;

/// Most bytes of key paths listed at once: real files have a few thousand keys (a 1 TiB
/// guest's 2^20 RAM blocks take about 25 MiB of paths).
pub(crate) const MAX_LISTED_PATH_BYTES: usize = 64 << 20;

/// A parsed HVS file: the key tree with every value located in the file.
#[derive(Debug)]
pub(crate) struct HvsFile {
    pub header: FileHeader,
    pub replay: ReplayLogStatus,
    keys: KeyTree,
}

impl HvsFile {
    pub fn parse(file: &mut InputFile, replay: bool) -> Result<Self> {
        let ctx = file.ctx.clone();
        if file.len() < MIN_FILE_SIZE {
            return Err(ctx.corrupt(
                "HVS file header",
                0,
                format!(
                    "file is {} bytes, shorter than the {MIN_FILE_SIZE} bytes of headers and first object table",
                    file.len()
                ),
            ));
        }
        let header = choose_header(file)?;
        let status = apply_replay_log(file, &header, replay)?;
        let objects = walk_object_tables(file, &header)?;
        let file_objects: HashMap<u64, u32> = objects
            .iter()
            .filter(|o| o.object_type == object_type::FILE_OBJECT)
            .map(|o| (o.offset, o.size))
            .collect();
        let mut tables: HashMap<u16, (u16, u64, u32)> = HashMap::new();
        for o in objects
            .iter()
            .filter(|o| o.object_type == object_type::KEY_TABLE)
        {
            let hb = file.bytes(o.offset, KeyTableHeader::SIZE as u64, "key table header")?;
            let h = KeyTableHeader::parse(&hb)
                .ok_or_else(|| ctx.corrupt("key table header", o.offset, "truncated"))?;
            if h.signature != KEY_TABLE_SIGNATURE {
                return Err(ctx.corrupt(
                    "key table header",
                    o.offset,
                    format!("bad signature {:#06x}", h.signature),
                ));
            }
            if crc(&hb, KeyTableHeader::CHECKSUM_AT) != h.checksum {
                return Err(ctx.corrupt("key table header", o.offset, "checksum mismatch"));
            }
            if h.table_index == 0 {
                return Err(ctx.corrupt("key table header", o.offset, "table index 0"));
            }
            match tables.get(&h.table_index) {
                Some(&(seq, other, _)) if seq == h.sequence => {
                    return Err(ctx.corrupt(
                        "key table header",
                        o.offset,
                        format!(
                            "table index {} also at offset {other:#x} with the same sequence",
                            h.table_index
                        ),
                    ))
                }
                Some(&(seq, _, _)) if seq > h.sequence => {}
                _ => {
                    tables.insert(h.table_index, (h.sequence, o.offset, o.size));
                }
            }
        }
        let mut raw_keys: HashMap<(u16, u32), RawKey> = HashMap::new();
        let mut used_objects: HashSet<u64> = HashSet::new();
        let mut table_list: Vec<_> = tables.into_iter().collect();
        table_list.sort_by_key(|(idx, _)| *idx);
        for (index, (_, offset, size)) in table_list {
            parse_key_table(
                file,
                &file_objects,
                &mut used_objects,
                index,
                offset,
                size,
                &mut raw_keys,
            )?;
        }
        let keys = build_tree(file, raw_keys)?;
        Ok(Self {
            header,
            replay: status,
            keys,
        })
    }

    /// Every key with its path (e.g. `/savedstate/RamBlock0`), sorted by path; an error when
    /// the paths would add up to more than [`MAX_LISTED_PATH_BYTES`].
    pub fn keys(&self, file: &InputFile) -> Result<Vec<(String, Value)>> {
        self.keys.all(MAX_LISTED_PATH_BYTES).ok_or_else(|| {
            file.ctx.corrupt(
                "key tree",
                0,
                format!(
                    "the paths of its keys add up to more than {} MiB (deeply nested long names)",
                    MAX_LISTED_PATH_BYTES >> 20
                ),
            )
        })
    }

    /// The value at `path` (e.g. `/savedstate/RamBlock0`); `Ok(None)` if absent, an error if
    /// several siblings share the path.
    pub fn value(&self, file: &InputFile, path: &str) -> Result<Option<Value>> {
        match self.keys.lookup(file, path)?.as_slice() {
            [] => Ok(None),
            [v] => Ok(Some(*v)),
            [v, ..] => Err(file.ctx.corrupt(
                "key table entry",
                v.entry_offset,
                format!("ambiguous key {path}: several entries share this path"),
            )),
        }
    }
}

fn choose_header(file: &InputFile) -> Result<FileHeader> {
    let ctx = &file.ctx;
    let mut valid = Vec::new();
    let mut problems = Vec::new();
    for (copy, &off) in HEADER_COPY_OFFSETS.iter().enumerate() {
        let b = file.bytes(off, FileHeader::SIZE as u64, "HVS file header")?;
        let Some(h) = FileHeader::parse(&b) else {
            continue;
        };
        if h.signature != FILE_SIGNATURE {
            problems.push(format!("copy {copy}: bad signature {:#010x}", h.signature));
        } else if crc(&b, FileHeader::CHECKSUM_AT) != h.checksum {
            problems.push(format!("copy {copy}: checksum mismatch"));
        } else {
            valid.push((h, copy));
        }
    }
    let (header, copy) = match valid.as_slice() {
        [] => {
            return Err(ctx.corrupt(
                "HVS file header",
                0,
                format!("no valid header copy ({})", problems.join("; ")),
            ))
        }
        [one] => *one,
        [a, b, ..] => {
            if b.0.sequence > a.0.sequence {
                *b
            } else {
                *a
            }
        }
    };
    let at = HEADER_COPY_OFFSETS[copy];
    if header.format_version != FORMAT_VERSION_4_0 {
        return Err(ctx.unsupported(format!(
            "HVS format version {:#x} (only 0x400 is read)",
            header.format_version
        )));
    }
    let align = header.data_alignment;
    if !(4096..=65536).contains(&align) || !align.is_power_of_two() {
        return Err(ctx.corrupt(
            "HVS file header",
            at + 22,
            format!("data alignment {align} is not a power of two in 4096..65536"),
        ));
    }
    Ok(header)
}

fn walk_object_tables(file: &InputFile, header: &FileHeader) -> Result<Vec<ObjectEntry>> {
    let ctx = &file.ctx;
    let align = u64::from(header.data_alignment);
    let max_tables = file.len() / align + 1;
    let mut seen = HashSet::new();
    let mut objects = Vec::new();
    let mut regions: Vec<(u64, u64, &'static str)> = Vec::new();
    let (mut table, mut size) = (FIRST_OBJECT_TABLE, align);
    let mut table_bytes = 0u64;
    loop {
        if !seen.insert(table) || seen.len() as u64 > max_tables {
            return Err(ctx.corrupt(
                "object table",
                table,
                "object tables link back to a table already read (loop)",
            ));
        }
        // Distinct tables cannot hold more bytes than the file: this bounds what the walk reads.
        table_bytes = table_bytes.saturating_add(size);
        if table_bytes > file.len() {
            return Err(ctx.corrupt(
                "object table",
                table,
                "object tables add up to more than the file (overlapping tables)",
            ));
        }
        let tb = file.bytes(table, size, "object table")?;
        let sig = le::u32(&tb, 0).unwrap_or(0);
        let count = le::u32(&tb, 4).unwrap_or(0);
        if sig != OBJECT_TABLE_SIGNATURE {
            return Err(ctx.corrupt("object table", table, format!("bad signature {sig:#010x}")));
        }
        let needed = (count as u64)
            .checked_mul(ObjectEntry::SIZE as u64)
            .and_then(|n| n.checked_add(OBJECT_TABLE_HEADER_SIZE as u64));
        if count == 0 || needed.is_none_or(|n| n > size) {
            return Err(ctx.corrupt(
                "object table",
                table,
                format!("{count} entries do not fit in a table of {size} bytes"),
            ));
        }
        regions.push((table, size, "object table"));
        let mut next = None;
        for i in 0..count as usize {
            let at = OBJECT_TABLE_HEADER_SIZE + i * ObjectEntry::SIZE;
            let eb = &tb[at..at + ObjectEntry::SIZE];
            let off = table + at as u64;
            let e = ObjectEntry::parse(eb)
                .ok_or_else(|| ctx.corrupt("object table entry", off, "truncated"))?;
            if crc(eb, ObjectEntry::CHECKSUM_AT) != e.checksum {
                return Err(ctx.corrupt("object table entry", off, "checksum mismatch"));
            }
            let last = i + 1 == count as usize;
            match e.object_type {
                object_type::EMPTY => {}
                object_type::OBJECT_TABLE if last => next = Some((e.offset, e.size)),
                object_type::OBJECT_TABLE => {
                    return Err(ctx.corrupt(
                        "object table entry",
                        off,
                        "link to another object table outside the last slot",
                    ))
                }
                _ if last => {
                    return Err(ctx.corrupt(
                        "object table entry",
                        off,
                        format!(
                            "last slot holds object type {} instead of a link or nothing",
                            e.object_type
                        ),
                    ))
                }
                t @ (object_type::KEY_TABLE | object_type::FILE_OBJECT | object_type::FREED) => {
                    let end = e.offset.checked_add(u64::from(e.size));
                    if e.offset % align != 0
                        || e.offset < FIRST_OBJECT_TABLE
                        || end.is_none_or(|x| x > file.len())
                    {
                        return Err(ctx.corrupt(
                            "object table entry",
                            off,
                            format!(
                                "object of type {t} at {:#x}+{:#x} is unaligned or outside the file",
                                e.offset, e.size
                            ),
                        ));
                    }
                    if t != object_type::FREED {
                        regions.push((
                            e.offset,
                            u64::from(e.size),
                            if t == object_type::KEY_TABLE {
                                "key table"
                            } else {
                                "file object"
                            },
                        ));
                    }
                    objects.push(e);
                }
                t if t <= object_type::LAST_KNOWN => {}
                t => {
                    return Err(ctx.corrupt(
                        "object table entry",
                        off,
                        format!("unknown object type {t}"),
                    ))
                }
            }
        }
        match next {
            None => break,
            Some((off, sz)) => {
                let sz = u64::from(sz);
                if off % align != 0 || sz < align || off < FIRST_OBJECT_TABLE {
                    return Err(ctx.corrupt(
                        "object table entry",
                        table,
                        format!("link to a misplaced object table at {off:#x}+{sz:#x}"),
                    ));
                }
                table = off;
                size = sz;
            }
        }
    }
    regions.sort_unstable();
    for w in regions.windows(2) {
        let (a, a_len, a_what) = w[0];
        let (b, _, b_what) = w[1];
        if a + a_len > b {
            return Err(ctx.corrupt(
                b_what,
                b,
                format!("overlaps the {a_what} at {a:#x}+{a_len:#x}"),
            ));
        }
    }
    Ok(objects)
}

#[allow(clippy::too_many_arguments)]
fn parse_key_table(
    file: &InputFile,
    file_objects: &HashMap<u64, u32>,
    used_objects: &mut HashSet<u64>,
    table_index: u16,
    table_off: u64,
    table_size: u32,
    out: &mut HashMap<(u16, u32), RawKey>,
) -> Result<()> {
    let ctx = &file.ctx;
    let tb = file.bytes(table_off, u64::from(table_size), "key table")?;
    let mut pos = KeyTableHeader::SIZE;
    while pos < tb.len() {
        let at = table_off + pos as u64;
        let rest = &tb[pos..];
        if rest.len() < KeyEntryHeader::SIZE {
            // Too small for an entry: only zero padding may remain.
            if rest.iter().any(|&b| b != 0) {
                return Err(ctx.corrupt(
                    "key table entry",
                    at,
                    "partial entry at the end of the table",
                ));
            }
            break;
        }
        let h = KeyEntryHeader::parse(rest)
            .ok_or_else(|| ctx.corrupt("key table entry", at, "truncated"))?;
        if h.key_type == 0 && h.entry_size == 0 {
            // Unused tail of the table.
            if rest.iter().any(|&b| b != 0) {
                return Err(ctx.corrupt("key table entry", at, "entry of size 0"));
            }
            break;
        }
        let size = h.entry_size as usize;
        if size < KeyEntryHeader::SIZE || size > rest.len() {
            return Err(ctx.corrupt(
                "key table entry",
                at,
                format!(
                    "entry size {} outside {}..={}",
                    h.entry_size,
                    KeyEntryHeader::SIZE,
                    rest.len()
                ),
            ));
        }
        let entry = &rest[..size];
        pos += size;
        if h.key_type == key_type::FREE {
            continue;
        }
        let name_end = KeyEntryHeader::SIZE + h.name_size as usize;
        if h.name_size == 0 || name_end > size || entry[name_end - 1] != 0 {
            return Err(ctx.corrupt(
                "key table entry",
                at,
                "name missing, too long or not NUL-terminated",
            ));
        }
        let name = std::str::from_utf8(&entry[KeyEntryHeader::SIZE..name_end - 1])
            .map_err(|_| ctx.corrupt("key table entry", at, "name is not UTF-8"))?;
        if name.contains('/') {
            return Err(ctx.corrupt("key table entry", at, "name contains '/'"));
        }
        let vstart = name_end;
        let vb = &entry[vstart..];
        let vabs = at + vstart as u64;
        let in_file_object = h.flags & KEY_FLAG_FILE_OBJECT != 0;
        let fixed = |n: usize| -> Result<usize> {
            if vb.len() < n {
                Err(ctx.corrupt(
                    "key table entry",
                    at,
                    format!("{n}-byte value of {name} does not fit the entry"),
                ))
            } else {
                Ok(n)
            }
        };
        let (ty, meaningful, value) = match h.key_type {
            key_type::STRING | key_type::ARRAY => {
                let ty = if h.key_type == key_type::STRING {
                    ValueType::String
                } else {
                    ValueType::Binary
                };
                if in_file_object {
                    let n = fixed(FILE_OBJECT_POINTER_SIZE)?;
                    let vsize = le::u32(vb, 0).unwrap_or(0);
                    let foff = le::u64(vb, 4).unwrap_or(0);
                    match file_objects.get(&foff) {
                        Some(&osize) if vsize <= osize => {
                            // One value per file object: keys sharing one would let a small
                            // file describe any amount of data (e.g. every RAM block).
                            if !used_objects.insert(foff) {
                                return Err(ctx.corrupt(
                                    "key table entry",
                                    at,
                                    format!("value of {name} shares the file object at {foff:#x} with another key"),
                                ));
                            }
                        }
                        _ => {
                            return Err(ctx.corrupt(
                                "key table entry",
                                at,
                                format!(
                                    "value of {name} points to {vsize} bytes at {foff:#x}, which is not a file object large enough"
                                ),
                            ))
                        }
                    }
                    (ty, n, Value::new(ty, foff, u64::from(vsize), at))
                } else {
                    let len = le::u32(vb, 0).ok_or_else(|| {
                        ctx.corrupt("key table entry", at, "value length truncated")
                    })? as usize;
                    let n = fixed(4usize.saturating_add(len))?;
                    (ty, n, Value::new(ty, vabs + 4, len as u64, at))
                }
            }
            _ if in_file_object => {
                return Err(ctx.corrupt(
                    "key table entry",
                    at,
                    format!("file-object flag on a value of type {}", h.key_type),
                ))
            }
            key_type::INT | key_type::UINT | key_type::DOUBLE => {
                let ty = match h.key_type {
                    key_type::INT => ValueType::Int,
                    key_type::UINT => ValueType::Uint,
                    _ => ValueType::Double,
                };
                (ty, fixed(8)?, Value::new(ty, vabs, 8, at))
            }
            key_type::BOOL => (
                ValueType::Bool,
                fixed(4)?,
                Value::new(ValueType::Bool, vabs, 4, at),
            ),
            key_type::NODE => (
                ValueType::Node,
                fixed(12)?,
                Value::new(ValueType::Node, vabs, 12, at),
            ),
            t => return Err(ctx.corrupt("key table entry", at, format!("unknown value type {t}"))),
        };
        let _ = ty;
        let crc_len = vstart + meaningful;
        if crc(&entry[..crc_len], KeyEntryHeader::CHECKSUM_AT) != h.checksum {
            return Err(ctx.corrupt(
                "key table entry",
                at,
                format!("checksum mismatch on key {name}"),
            ));
        }
        out.insert(
            (table_index, (pos - size) as u32),
            RawKey {
                table_index,
                offset_in_table: (pos - size) as u32,
                header: h,
                name: name.to_owned(),
                value: Some(value),
            },
        );
    }
    Ok(())
}
