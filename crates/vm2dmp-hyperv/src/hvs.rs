//! Reader of the HVS container (`.vmrs`, `.vmcx`): active header, replay log, object tables,
//! key tables and the key tree. Layout: docs/hyperv-saved-state.md section 3.

use std::collections::{HashMap, HashSet};

use vm2dmp_formats::crc32_with_zeroed_field as crc;
use vm2dmp_formats::hvs::{
    key_type, object_type, FileHeader, KeyEntryHeader, KeyTableHeader, ObjectEntry, ReplayLogEntry,
    ReplayLogHeader, FILE_OBJECT_POINTER_SIZE, FILE_SIGNATURE, FIRST_OBJECT_TABLE,
    FORMAT_VERSION_4_0, HEADER_COPY_OFFSETS, KEY_FLAG_FILE_OBJECT, KEY_TABLE_SIGNATURE,
    MIN_FILE_SIZE, OBJECT_TABLE_HEADER_SIZE, OBJECT_TABLE_SIGNATURE, REPLAY_LOG_SIGNATURE,
};
use vm2dmp_formats::le;

use crate::value::{Value, ValueType};
use vm2dmp_source::Result;
use vm2dmp_source::{InputFile, Patch};

/// Deepest key path we follow; real files nest about six levels.
const MAX_KEY_DEPTH: usize = 256;

/// Most bytes of key paths listed at once: real files have a few thousand keys (a 1 TiB
/// guest's 2^20 RAM blocks take about 25 MiB of paths).
pub(crate) const MAX_LISTED_PATH_BYTES: usize = 64 << 20;

/// What the replay log said and what we did with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ReplayLogStatus {
    /// Entries not yet applied to the file body (a "dirty" file).
    pub pending_entries: u32,
    /// Whether those entries were applied to an in-memory overlay before reading.
    pub replayed: bool,
    /// The log region the header declares runs past the end of the file (a trimmed or
    /// truncated copy). Accepted while the log header and any pending entry are inside it.
    pub region_past_end: bool,
}

/// A parsed HVS file: the key tree with every value located in the file.
#[derive(Debug)]
pub(crate) struct HvsFile {
    pub header: FileHeader,
    pub replay: ReplayLogStatus,
    keys: KeyTree,
}

/// A key entry before its path is known.
struct RawKey {
    table_index: u16,
    offset_in_table: u32,
    header: KeyEntryHeader,
    name: String,
    value: Option<Value>,
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

fn apply_replay_log(
    file: &mut InputFile,
    header: &FileHeader,
    replay: bool,
) -> Result<ReplayLogStatus> {
    let ctx = file.ctx.clone();
    let log_off = header.replay_log_offset;
    let log_size = header.replay_log_size;
    let hdr_area = u64::from(header.replay_log_header_size);
    if log_off == 0 && log_size == 0 {
        return Ok(ReplayLogStatus::default());
    }
    // The region may run past the end of the file: copies are seen with the unused tail of
    // the log cut off. What is read of it (header, pending entries) must be inside.
    let log_end = log_off.checked_add(log_size);
    if log_end.is_none()
        || log_off >= file.len()
        || log_off < FIRST_OBJECT_TABLE
        || hdr_area < ReplayLogHeader::SIZE as u64
        || hdr_area > log_size
    {
        return Err(ctx.corrupt(
            "replay log",
            log_off,
            format!(
                "log region {log_off:#x}+{log_size:#x} (header area {hdr_area:#x}) does not fit the file ({:#x} bytes)",
                file.len()
            ),
        ));
    }
    let hb = file.bytes(log_off, ReplayLogHeader::SIZE as u64, "replay log header")?;
    let h = ReplayLogHeader::parse(&hb)
        .ok_or_else(|| ctx.corrupt("replay log header", log_off, "truncated"))?;
    if h.signature != REPLAY_LOG_SIGNATURE {
        return Err(ctx.corrupt(
            "replay log header",
            log_off,
            format!("bad signature {:#010x}", h.signature),
        ));
    }
    if crc(&hb, ReplayLogHeader::CHECKSUM_AT) != h.checksum {
        return Err(ctx.corrupt("replay log header", log_off, "checksum mismatch"));
    }
    let slots = (hdr_area - ReplayLogHeader::SIZE as u64) / ReplayLogEntry::SIZE as u64;
    if u64::from(h.max_entries) > slots || h.current_entries > h.max_entries {
        return Err(ctx.corrupt(
            "replay log header",
            log_off,
            format!(
                "{} pending of {} entries, but the header area holds {slots}",
                h.current_entries, h.max_entries
            ),
        ));
    }
    let mut status = ReplayLogStatus {
        pending_entries: h.current_entries,
        replayed: false,
        region_past_end: log_end.is_some_and(|e| e > file.len()),
    };
    if h.current_entries == 0 || !replay {
        return Ok(status);
    }
    // Each entry's data is its own stretch of the log: entries sharing data would let a small
    // log stand for any amount of replayed bytes.
    let mut data: Vec<(u64, u64, u64)> = (0..u64::from(h.current_entries))
        .filter_map(|i| {
            let eo = log_off + ReplayLogHeader::SIZE as u64 + i * ReplayLogEntry::SIZE as u64;
            let eb = file
                .bytes(eo, ReplayLogEntry::SIZE as u64, "replay log entry")
                .ok()?;
            ReplayLogEntry::parse(&eb).map(|e| (e.data_offset, u64::from(e.size), eo))
        })
        .collect();
    data.sort_unstable();
    for w in data.windows(2) {
        if w[0].0.saturating_add(w[0].1) > w[1].0 {
            return Err(ctx.corrupt(
                "replay log entry",
                w[1].2,
                "pending entries overlap each other's data in the log",
            ));
        }
    }
    let mut patches = Vec::with_capacity((h.current_entries as usize).min(1024));
    for i in 0..u64::from(h.current_entries) {
        let eo = log_off + ReplayLogHeader::SIZE as u64 + i * ReplayLogEntry::SIZE as u64;
        let eb = file.bytes(eo, ReplayLogEntry::SIZE as u64, "replay log entry")?;
        let e = ReplayLogEntry::parse(&eb)
            .ok_or_else(|| ctx.corrupt("replay log entry", eo, "truncated"))?;
        if crc(&eb, ReplayLogEntry::CHECKSUM_AT) != e.entry_checksum {
            return Err(ctx.corrupt("replay log entry", eo, "checksum mismatch"));
        }
        let size = u64::from(e.size);
        let data_ok = e.data_offset >= hdr_area
            && e.data_offset
                .checked_add(size)
                .is_some_and(|x| x <= log_size);
        let dest_end = e.destination_offset.checked_add(size);
        let dest_ok = dest_end.is_some_and(|x| x <= file.len())
            && e.destination_offset >= FIRST_OBJECT_TABLE
            && dest_end.is_some_and(|x| x <= log_off || e.destination_offset >= log_off + log_size);
        if !data_ok || !dest_ok {
            return Err(ctx.corrupt(
                "replay log entry",
                eo,
                format!(
                    "entry {i}: {size} bytes from log offset {:#x} to file offset {:#x} do not fit",
                    e.data_offset, e.destination_offset
                ),
            ));
        }
        let data = file.bytes(log_off + e.data_offset, size, "replay log data")?;
        if crc32fast::hash(&data) != e.data_checksum {
            return Err(ctx.corrupt(
                "replay log data",
                log_off + e.data_offset,
                format!("entry {i}: data checksum mismatch"),
            ));
        }
        patches.push(Patch {
            offset: e.destination_offset,
            data: data.into_owned(),
        });
    }
    // Later entries win: apply in order by keeping the list order and letting `bytes` apply
    // them one after another.
    file.set_patches(patches);
    status.replayed = true;
    Ok(status)
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

/// The key tree: every entry once, its children indexed by name. Paths are resolved by walking
/// the tree, never stored whole, so memory stays proportional to the key tables.
#[derive(Debug, Default)]
struct KeyTree {
    root: HashMap<String, Vec<usize>>,
    nodes: Vec<KeyNode>,
}

#[derive(Debug)]
struct KeyNode {
    value: Value,
    children: HashMap<String, Vec<usize>>,
}

impl KeyTree {
    /// Every entry with its path, sorted by path; `None` when the paths would add up to more
    /// than `max_bytes` (deep trees of long names: a path can reach 256 names of 254 bytes
    /// while each entry takes a few dozen bytes of the file). The tree was checked to be
    /// acyclic and at most `MAX_KEY_DEPTH` deep when it was built.
    fn all(&self, max_bytes: usize) -> Option<Vec<(String, Value)>> {
        fn walk(
            tree: &KeyTree,
            level: &HashMap<String, Vec<usize>>,
            path: &mut String,
            out: &mut Vec<(String, Value)>,
            left: &mut usize,
        ) -> Option<()> {
            for (name, indices) in level {
                for node in indices.iter().filter_map(|&i| tree.nodes.get(i)) {
                    let keep = path.len();
                    path.push('/');
                    path.push_str(name);
                    *left = left.checked_sub(path.len())?;
                    out.push((path.clone(), node.value));
                    walk(tree, &node.children, path, out, left)?;
                    path.truncate(keep);
                }
            }
            Some(())
        }
        let mut out = Vec::with_capacity(self.nodes.len().min(1 << 20));
        let mut left = max_bytes;
        walk(self, &self.root, &mut String::new(), &mut out, &mut left)?;
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.entry_offset.cmp(&b.1.entry_offset)));
        Some(out)
    }

    /// The entries at `path`; an error if an intermediate component is ambiguous.
    fn lookup(&self, file: &InputFile, path: &str) -> Result<Vec<Value>> {
        let mut level = &self.root;
        let mut parts = path.split('/').filter(|c| !c.is_empty()).peekable();
        while let Some(name) = parts.next() {
            let found = level.get(name).map(Vec::as_slice).unwrap_or(&[]);
            if parts.peek().is_none() {
                return Ok(found.iter().map(|&i| self.nodes[i].value).collect());
            }
            match found {
                [] => return Ok(Vec::new()),
                [i] => level = &self.nodes[*i].children,
                [i, ..] => {
                    return Err(file.ctx.corrupt(
                        "key table entry",
                        self.nodes[*i].value.entry_offset,
                        format!(
                            "ambiguous key {path}: several entries named {name} share a parent"
                        ),
                    ))
                }
            }
        }
        Ok(Vec::new())
    }
}

fn build_tree(file: &InputFile, raw: HashMap<(u16, u32), RawKey>) -> Result<KeyTree> {
    let ctx = &file.ctx;
    let mut keys: Vec<RawKey> = raw.into_values().collect();
    keys.sort_by_key(|k| (k.table_index, k.offset_in_table));
    let index: HashMap<(u16, u32), usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| ((k.table_index, k.offset_in_table), i))
        .collect();
    let entry_at = |k: &RawKey| k.value.map_or(0, |v| v.entry_offset);
    // Parent of every key (None: a child of the root), checked to exist and to be a node.
    let mut parents: Vec<Option<usize>> = Vec::with_capacity(keys.len());
    for k in &keys {
        let parent = (k.header.parent_table, k.header.parent_offset);
        if parent == (0, 0) {
            parents.push(None);
            continue;
        }
        let p = *index.get(&parent).ok_or_else(|| {
            ctx.corrupt(
                "key table entry",
                entry_at(k),
                format!(
                    "key {} names a parent (table {}, offset {:#x}) that does not exist",
                    k.name, parent.0, parent.1
                ),
            )
        })?;
        if keys[p].header.key_type != key_type::NODE {
            return Err(ctx.corrupt(
                "key table entry",
                entry_at(k),
                format!("parent of key {} is not a node", k.name),
            ));
        }
        parents.push(Some(p));
    }
    // Depth of every key, iteratively with memory: a chain longer than MAX_KEY_DEPTH is a
    // cycle or absurd nesting.
    let mut depth: Vec<Option<usize>> = vec![None; keys.len()];
    for (start, start_key) in keys.iter().enumerate() {
        let mut chain = Vec::new();
        let mut cur = Some(start);
        let base = loop {
            match cur {
                None => break 0,
                Some(i) => {
                    if let Some(d) = depth[i] {
                        break d;
                    }
                    if chain.len() >= MAX_KEY_DEPTH {
                        return Err(ctx.corrupt(
                            "key table entry",
                            entry_at(start_key),
                            "key parents form a cycle or nest too deep",
                        ));
                    }
                    chain.push(i);
                    cur = parents[i];
                }
            }
        };
        // A chain that stops at a key of known depth adds to it: the whole depth is bounded,
        // not only the part walked here.
        if base + chain.len() > MAX_KEY_DEPTH {
            return Err(ctx.corrupt(
                "key table entry",
                entry_at(start_key),
                format!("keys nest more than {MAX_KEY_DEPTH} levels deep"),
            ));
        }
        for (n, &i) in chain.iter().rev().enumerate() {
            depth[i] = Some(base + n + 1);
        }
    }
    let mut tree = KeyTree::default();
    let mut names = Vec::with_capacity(keys.len());
    for k in keys {
        let Some(value) = k.value else { continue };
        tree.nodes.push(KeyNode {
            value,
            children: HashMap::new(),
        });
        names.push(k.name);
    }
    for (i, name) in names.into_iter().enumerate() {
        let level = match parents[i] {
            None => &mut tree.root,
            Some(p) => &mut tree.nodes[p].children,
        };
        level.entry(name).or_default().push(i);
    }
    Ok(tree)
}
