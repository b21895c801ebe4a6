//! The HVS container writer (`.VMRS`, format version 0x400).
//!
//! File order: header copies (0, 4096), first object table (8192), a freed object,
//! file objects (large device values, partition_state, RAM blocks), key tables, linked
//! object tables, replay log.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::common::{crc32, encode_blocks, round_up, Out};
use crate::encode::TokenCounts;
use crate::keys::{vmrs_keys, Key, Val};
use crate::layout::{
    FileRole, KeyLoc, KeyTableLoc, ObjectLoc, ObjectTableLoc, RamBlockLoc, ReplayEntryLoc,
    ReplayLogLoc, SynthLayout,
};
use crate::model::SynthVm;
use crate::options::{ReplayTarget, StaleReplay};
use crate::partition::{self, ChunkFlavor};

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

/// A value after the data pass: what goes into the key entry.
#[derive(Debug, Clone)]
enum Stored {
    /// Type and the exact value bytes stored in the entry (length prefix included).
    Inline(u8, Vec<u8>),
    /// Type, value size, file offset.
    File(u8, u32, u64),
}

struct TreeNode {
    /// Component as given (may carry a `#n` suffix for repeated siblings).
    component: String,
    path: String,
    parent: usize,
    children: Vec<usize>,
    key: Option<usize>,
}

struct Entry {
    node: usize,
    ty: u8,
    flags: u8,
    name: Vec<u8>,
    value: Vec<u8>,
    slack: usize,
    table: usize,
    offset: usize,
}

fn build_tree(keys: &[Key]) -> Vec<TreeNode> {
    let mut nodes = vec![TreeNode {
        component: String::new(),
        path: String::new(),
        parent: usize::MAX,
        children: Vec::new(),
        key: None,
    }];
    for (ki, key) in keys.iter().enumerate() {
        let comps: Vec<&str> = key.path.split('/').filter(|c| !c.is_empty()).collect();
        assert!(!comps.is_empty(), "empty key path");
        let mut cur = 0usize;
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let found = nodes[cur]
                .children
                .iter()
                .copied()
                .find(|&ch| nodes[ch].component == *c);
            match found {
                Some(ch) if !last => {
                    assert!(nodes[ch].key.is_none(), "key {} is below a leaf", key.path);
                    cur = ch;
                }
                Some(_) => panic!("duplicate key {}", key.path),
                None => {
                    let path = format!("{}/{}", nodes[cur].path, c);
                    nodes.push(TreeNode {
                        component: c.to_string(),
                        path,
                        parent: cur,
                        children: Vec::new(),
                        key: if last { Some(ki) } else { None },
                    });
                    let id = nodes.len() - 1;
                    nodes[cur].children.push(id);
                    cur = id;
                }
            }
        }
    }
    nodes
}

fn preorder(nodes: &[TreeNode], n: usize, out: &mut Vec<usize>) {
    for &c in &nodes[n].children {
        out.push(c);
        preorder(nodes, c, out);
    }
}

fn name_of(component: &str) -> &str {
    component.split('#').next().unwrap()
}

struct Plan {
    entries: Vec<Entry>,
    nodes: Vec<TreeNode>,
    node_entry: Vec<usize>,
    ins_seq: Vec<u32>,
}

/// Serialize one key table from the plan.
fn serialize_table(
    plan: &Plan,
    in_table: &[usize],
    index: u16,
    sequence: u16,
    size: usize,
    upper_names: bool,
) -> Vec<u8> {
    let Plan {
        entries,
        nodes,
        node_entry,
        ins_seq,
    } = plan;
    let mut t = vec![0u8; size];
    t[0..2].copy_from_slice(&KEY_TABLE_SIGNATURE.to_le_bytes());
    t[2..4].copy_from_slice(&index.to_le_bytes());
    t[4..6].copy_from_slice(&sequence.to_le_bytes());
    let c = crc32(&[&t[0..6], &[0; 4]]);
    t[6..10].copy_from_slice(&c.to_le_bytes());
    let mut end = 10usize;
    for &ei in in_table {
        let e = &entries[ei];
        let esize = KEY_ENTRY_HEADER + e.name.len() + e.value.len() + e.slack;
        let parent = nodes[e.node].parent;
        let (pt, po) = if parent == 0 {
            (0u16, 0u32)
        } else {
            let pe = &entries[node_entry[parent]];
            ((pe.table + 1) as u16, pe.offset as u32)
        };
        let mut h = [0u8; KEY_ENTRY_HEADER];
        h[0] = e.ty;
        h[1] = e.flags;
        h[2..6].copy_from_slice(&(esize as u32).to_le_bytes());
        h[6..8].copy_from_slice(&pt.to_le_bytes());
        h[8..12].copy_from_slice(&po.to_le_bytes());
        h[16..20].copy_from_slice(&ins_seq[e.node].to_le_bytes());
        h[20] = e.name.len() as u8;
        let name: Vec<u8> = if upper_names {
            e.name.to_ascii_uppercase()
        } else {
            e.name.clone()
        };
        let c = crc32(&[&h, &name, &e.value]);
        h[12..16].copy_from_slice(&c.to_le_bytes());
        let o = e.offset;
        t[o..o + KEY_ENTRY_HEADER].copy_from_slice(&h);
        let o = o + KEY_ENTRY_HEADER;
        t[o..o + name.len()].copy_from_slice(&name);
        let o = o + name.len();
        t[o..o + e.value.len()].copy_from_slice(&e.value);
        end = e.offset + esize;
    }
    if end < size {
        // Free entry over the rest of the table.
        let rest = size - end;
        let mut h = [0u8; KEY_ENTRY_HEADER];
        h[0] = ty::FREE;
        h[2..6].copy_from_slice(&(rest as u32).to_le_bytes());
        h[16..20].copy_from_slice(&0xFDFD_FDFDu32.to_le_bytes());
        t[end..end + KEY_ENTRY_HEADER].copy_from_slice(&h);
        t[end + KEY_ENTRY_HEADER..].fill(0xFD);
    }
    t
}

fn object_entry(kind: u8, offset: u64, size: u64, flags: u8) -> [u8; OBJECT_ENTRY_SIZE] {
    let mut e = [0u8; OBJECT_ENTRY_SIZE];
    e[0] = kind;
    e[5..13].copy_from_slice(&offset.to_le_bytes());
    e[13..17].copy_from_slice(&(size as u32).to_le_bytes());
    e[17] = flags;
    let c = crc32(&[&e]);
    e[1..5].copy_from_slice(&c.to_le_bytes());
    e
}

/// Write the 46-byte header copy `copy` (0 or 1) for `vm` into `buf`.
fn header_bytes(vm: &SynthVm, copy: usize, log: &ReplayLogLoc) -> [u8; 46] {
    let h = &vm.vmrs.headers[copy];
    let mut b = [0u8; 46];
    let sig = if h.bad_signature {
        0x0128_2015
    } else {
        FILE_SIGNATURE
    };
    b[0..4].copy_from_slice(&sig.to_le_bytes());
    b[8..10].copy_from_slice(&h.sequence.to_le_bytes());
    b[10..14].copy_from_slice(&h.format_version.to_le_bytes());
    let align = h.data_alignment.unwrap_or(vm.vmrs.alignment);
    b[22..26].copy_from_slice(&align.to_le_bytes());
    b[26..34].copy_from_slice(&h.replay_log_offset.unwrap_or(log.offset).to_le_bytes());
    b[34..42].copy_from_slice(&log.size.to_le_bytes());
    b[42..46].copy_from_slice(&(log.header_size as u32).to_le_bytes());
    let mut c = crc32(&[&b]);
    if h.bad_checksum {
        c ^= 0x0BAD_0BAD;
    }
    b[4..8].copy_from_slice(&c.to_le_bytes());
    b
}

fn value_type(v: &Val) -> u8 {
    match v {
        Val::Int(_) => ty::INT,
        Val::Uint(_) => ty::UINT,
        Val::Double(_) => ty::DOUBLE,
        Val::Bool(_) => ty::BOOL,
        Val::Str(_) => ty::STRING,
        Val::Bin(_) | Val::RamBlock(_) => ty::ARRAY,
    }
}

fn inline_bytes(v: &Val) -> Vec<u8> {
    match v {
        Val::Int(x) => x.to_le_bytes().to_vec(),
        Val::Uint(x) => x.to_le_bytes().to_vec(),
        Val::Double(x) => x.to_le_bytes().to_vec(),
        Val::Bool(x) => (*x as i32).to_le_bytes().to_vec(),
        Val::Str(b) | Val::Bin(b) => {
            let mut o = (b.len() as u32).to_le_bytes().to_vec();
            o.extend_from_slice(b);
            o
        }
        Val::RamBlock(_) => unreachable!(),
    }
}

/// Write a `.VMRS` file for `vm`.
pub fn write_vmrs(vm: &SynthVm, path: &Path) -> io::Result<SynthLayout> {
    let o = &vm.vmrs;
    let align = o.alignment as u64;
    assert!(
        align.is_power_of_two() && (4096..=65536).contains(&align),
        "alignment must be a power of two in 4096..=65536"
    );
    let mut layout = SynthLayout {
        alignment: align,
        header_offsets: [0, 4096],
        memory_map: vm.placed_ranges(),
        ..Default::default()
    };
    layout.files.insert("vmrs", path.to_path_buf());

    let (blob, playout) = partition::build(vm, ChunkFlavor::Vmrs);
    layout.partition = playout;
    let order = vm.block_order.order(vm.block_count());
    let keys = vmrs_keys(vm, blob, &order);

    let mut out = Out::create(path)?;
    let first_table = 8192u64;
    let data_start = round_up(first_table + align, align);
    out.pad_to(data_start)?;
    // (kind, offset, size)
    let mut objects: Vec<(u8, u64, u64)> = Vec::new();

    if o.freed_object {
        let off = out.pos();
        let size = 3 * align;
        let mut b = vec![0xFDu8; size as usize];
        // Looks like an old key table: a reader must not scan for signatures.
        b[0..2].copy_from_slice(&KEY_TABLE_SIGNATURE.to_le_bytes());
        b[2..4].copy_from_slice(&1u16.to_le_bytes());
        b[4..6].copy_from_slice(&1u16.to_le_bytes());
        let c = crc32(&[&b[0..6], &[0; 4]]);
        b[6..10].copy_from_slice(&c.to_le_bytes());
        out.write(&b)?;
        objects.push((obj::FREED, off, size));
    }

    // Data pass: file objects for large values, then the RAM blocks.
    let mut stored: Vec<Option<Stored>> = vec![None; keys.len()];
    let threshold = o.file_object_threshold;
    for (i, key) in keys.iter().enumerate() {
        let t = value_type(&key.val);
        match &key.val {
            Val::Str(b) | Val::Bin(b) if b.len() >= threshold => {
                let off = out.pos();
                out.write(b)?;
                let osize = round_up(b.len().max(1) as u64, align);
                out.pad_to(off + osize)?;
                objects.push((obj::FILE, off, osize));
                stored[i] = Some(Stored::File(t, b.len() as u32, off));
            }
            Val::RamBlock(_) => {}
            v => stored[i] = Some(Stored::Inline(t, inline_bytes(v))),
        }
    }
    let ram_key_index: BTreeMap<u64, usize> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match k.val {
            Val::RamBlock(b) => Some((b, i)),
            _ => None,
        })
        .collect();
    let present_order: Vec<u64> = order
        .iter()
        .copied()
        .filter(|b| ram_key_index.contains_key(b))
        .collect();
    let mut ram: BTreeMap<u64, RamBlockLoc> = BTreeMap::new();
    let mut totals = TokenCounts::default();
    encode_blocks(vm, &present_order, vm.record_tokens, |b, enc| {
        let ki = ram_key_index[&b];
        totals.merge(&enc.counts);
        let mut loc = RamBlockLoc {
            block: b,
            file: FileRole::Vmrs,
            key: keys[ki].path.clone(),
            value_offset: 0,
            value_size: enc.bytes.len() as u64,
            raw: enc.raw,
            hole: false,
            in_file_object: false,
            counts: enc.counts,
            tokens: enc.tokens,
        };
        if enc.bytes.len() >= threshold || o.ram_blocks_always_in_file_objects {
            let off = out.pos();
            let osize = round_up(enc.bytes.len() as u64, align);
            if enc.all_zero {
                out.zeros(osize)?;
                loc.hole = true;
            } else {
                out.write(&enc.bytes)?;
                out.pad_to(off + osize)?;
            }
            objects.push((obj::FILE, off, osize));
            stored[ki] = Some(Stored::File(ty::ARRAY, enc.bytes.len() as u32, off));
            loc.value_offset = off;
            loc.in_file_object = true;
        } else {
            stored[ki] = Some(Stored::Inline(ty::ARRAY, {
                let mut v = (enc.bytes.len() as u32).to_le_bytes().to_vec();
                v.extend_from_slice(&enc.bytes);
                v
            }));
        }
        ram.insert(b, loc);
        Ok(())
    })?;
    layout.token_totals = totals;

    // Key tree and key tables.
    let nodes = build_tree(&keys);
    let mut order_nodes = Vec::new();
    preorder(&nodes, 0, &mut order_nodes);
    let mut ins_seq = vec![0u32; nodes.len()];
    for n in &nodes {
        for (i, &c) in n.children.iter().enumerate() {
            ins_seq[c] = i as u32 + 1;
        }
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(order_nodes.len());
    let mut node_entry = vec![usize::MAX; nodes.len()];
    for &n in &order_nodes {
        let node = &nodes[n];
        let mut name = name_of(&node.component).as_bytes().to_vec();
        name.push(0);
        assert!(name.len() <= 255, "key name too long: {}", node.path);
        let (t, flags, value, slack) = match node.key {
            None => {
                let mut v = 0u64.to_le_bytes().to_vec();
                v.extend_from_slice(&(node.children.len() as u32 + 1).to_le_bytes());
                (ty::NODE, 0u8, v, 0usize)
            }
            Some(ki) => {
                let slack = if node.path.starts_with("/savedstate/") {
                    12
                } else {
                    0
                };
                let sub = if keys[ki].subcomponent { 0x02 } else { 0 };
                match stored[ki].clone().expect("value stored") {
                    Stored::Inline(t, v) => (t, sub, v, slack),
                    Stored::File(t, size, off) => {
                        let mut v = size.to_le_bytes().to_vec();
                        v.extend_from_slice(&off.to_le_bytes());
                        (t, sub | 0x01, v, slack)
                    }
                }
            }
        };
        node_entry[n] = entries.len();
        entries.push(Entry {
            node: n,
            ty: t,
            flags,
            name,
            value,
            slack,
            table: 0,
            offset: 0,
        });
    }
    // Pack entries into tables.
    let ts = align as usize;
    let mut tables: Vec<Vec<usize>> = vec![Vec::new()];
    let mut pos = 10usize;
    for ei in 0..entries.len() {
        let size =
            KEY_ENTRY_HEADER + entries[ei].name.len() + entries[ei].value.len() + entries[ei].slack;
        assert!(10 + size <= ts, "key entry larger than a key table");
        if pos + size > ts {
            let last = *tables.last().unwrap().last().unwrap();
            entries[last].slack += ts - pos;
            tables.push(Vec::new());
            pos = 10;
        }
        let t = tables.len() - 1;
        entries[ei].table = t;
        entries[ei].offset = pos;
        tables[t].push(ei);
        pos += size;
    }
    if ts - pos < KEY_ENTRY_HEADER && ts > pos {
        let last = *tables.last().unwrap().last().unwrap();
        entries[last].slack += ts - pos;
    }
    let plan = Plan {
        entries,
        nodes,
        node_entry,
        ins_seq,
    };
    let kt_start = round_up(out.pos(), align);
    out.pad_to(kt_start)?;
    for (ti, in_table) in tables.iter().enumerate() {
        let off = out.pos();
        let bytes = serialize_table(
            &plan,
            in_table,
            (ti + 1) as u16,
            o.key_table_sequence,
            ts,
            false,
        );
        out.write(&bytes)?;
        objects.push((obj::KEY_TABLE, off, ts as u64));
        let end = in_table.last().map_or(10, |&l| {
            let e = &plan.entries[l];
            e.offset + KEY_ENTRY_HEADER + e.name.len() + e.value.len() + e.slack
        });
        let free = usize::from(end < ts);
        layout.key_tables.push(KeyTableLoc {
            index: (ti + 1) as u16,
            sequence: o.key_table_sequence,
            offset: off,
            size: ts as u64,
            entries: (in_table.len() + free) as u32,
            stale_copy: false,
        });
    }
    if o.stale_key_table_copy {
        let off = out.pos();
        let bytes = serialize_table(
            &plan,
            &tables[0],
            1,
            o.key_table_sequence.wrapping_sub(1),
            ts,
            true,
        );
        out.write(&bytes)?;
        objects.push((obj::KEY_TABLE, off, ts as u64));
        layout.key_tables.push(KeyTableLoc {
            index: 1,
            sequence: o.key_table_sequence.wrapping_sub(1),
            offset: off,
            size: ts as u64,
            entries: layout.key_tables[0].entries,
            stale_copy: true,
        });
    }
    // Key locations.
    for e in &plan.entries {
        let node = &plan.nodes[e.node];
        let entry_offset = layout.key_tables[e.table].offset + e.offset as u64;
        let stored_offset = entry_offset + (KEY_ENTRY_HEADER + e.name.len()) as u64;
        let (value_offset, value_size, object) = if e.flags & 1 != 0 {
            let size = u32::from_le_bytes(e.value[0..4].try_into().unwrap()) as u64;
            let off = u64::from_le_bytes(e.value[4..12].try_into().unwrap());
            let osize = round_up(size.max(1), align);
            (off, size, Some((off, osize)))
        } else if e.ty == ty::STRING || e.ty == ty::ARRAY {
            (stored_offset + 4, e.value.len() as u64 - 4, None)
        } else {
            (stored_offset, e.value.len() as u64, None)
        };
        if let Some(ki) = node.key {
            if let Val::RamBlock(b) = keys[ki].val {
                let r = ram.get_mut(&b).unwrap();
                r.value_offset = value_offset;
            }
        }
        layout.keys.insert(
            node.path.clone(),
            KeyLoc {
                file: FileRole::Vmrs,
                entry_offset,
                entry_size: (KEY_ENTRY_HEADER + e.name.len() + e.value.len() + e.slack) as u64,
                value_type: e.ty,
                flags: e.flags,
                table_index: (e.table + 1) as u16,
                table_offset: e.offset as u32,
                insertion_sequence: plan.ins_seq[e.node],
                stored_offset,
                value_offset,
                value_size,
                object,
                inline: false,
            },
        );
    }
    layout.ram_blocks = ram.into_values().collect();

    // Object tables.
    let first_cap = (align as usize - 8) / OBJECT_ENTRY_SIZE;
    let linked_size = round_up(o.object_table_size.max(1) as u64, align);
    let linked_cap = (linked_size as usize - 8) / OBJECT_ENTRY_SIZE;
    assert!(linked_cap >= 2);
    let mut table_caps = vec![first_cap];
    let mut room = first_cap - 1;
    while room < objects.len() {
        table_caps.push(linked_cap);
        room += linked_cap - 1;
    }
    let mut table_offsets = vec![first_table];
    let lt_start = round_up(out.pos(), align);
    out.pad_to(lt_start)?;
    for i in 1..table_caps.len() {
        table_offsets.push(lt_start + (i as u64 - 1) * linked_size);
    }
    let mut next_obj = 0usize;
    let mut table_bytes: Vec<Vec<u8>> = Vec::new();
    for (ti, &cap) in table_caps.iter().enumerate() {
        let size = if ti == 0 { align } else { linked_size };
        let mut t = vec![0u8; size as usize];
        t[0..4].copy_from_slice(&OBJECT_TABLE_SIGNATURE.to_le_bytes());
        t[4..8].copy_from_slice(&(cap as u32).to_le_bytes());
        for slot in 0..cap {
            let at = 8 + slot * OBJECT_ENTRY_SIZE;
            let e = if slot + 1 == cap {
                if ti + 1 < table_caps.len() {
                    object_entry(obj::TABLE, table_offsets[ti + 1], linked_size, 1)
                } else {
                    object_entry(obj::EMPTY, 0, 0, 0)
                }
            } else if next_obj < objects.len() {
                let (k, off, size) = objects[next_obj];
                layout.objects.push(ObjectLoc {
                    kind: k,
                    offset: off,
                    size,
                    entry_offset: table_offsets[ti] + at as u64,
                });
                next_obj += 1;
                object_entry(k, off, size, 1)
            } else {
                object_entry(obj::EMPTY, 0, 0, 0)
            };
            t[at..at + OBJECT_ENTRY_SIZE].copy_from_slice(&e);
        }
        layout.object_tables.push(ObjectTableLoc {
            offset: table_offsets[ti],
            size,
            entry_count: cap as u32,
            link_entry_offset: table_offsets[ti] + (8 + (cap - 1) * OBJECT_ENTRY_SIZE) as u64,
        });
        table_bytes.push(t);
    }
    for (ti, t) in table_bytes.iter().enumerate().skip(1) {
        debug_assert_eq!(out.pos(), table_offsets[ti]);
        out.write(t)?;
    }
    out.write_at(first_table, &table_bytes[0])?;

    // Replay log: plan its size from the entries it will hold.
    let log_offset = round_up(out.pos(), align);
    let hs = o.replay_log_header_size as u64;
    assert!(hs as usize >= REPLAY_HEADER_SIZE + REPLAY_ENTRY_SIZE);
    let pending: Vec<(u64, u64)> = o
        .pending_replay
        .iter()
        .map(|t| resolve_target(&layout, t))
        .collect();
    let stale: Vec<(u64, u64)> = match o.stale_replay {
        StaleReplay::None => Vec::new(),
        _ => {
            let mut v = vec![(first_table + 26, align - 26)];
            v.push((layout.key_tables[0].offset, layout.key_tables[0].size));
            let last = layout.key_tables.iter().rfind(|t| !t.stale_copy).unwrap();
            if last.index != 1 {
                v.push((last.offset, last.size));
            }
            v
        }
    };
    let data_total: u64 = pending.iter().chain(stale.iter()).map(|r| r.1).sum();
    let data_area = round_up(data_total, align).max(0xC000);
    let log = ReplayLogLoc {
        offset: log_offset,
        size: hs + data_area,
        header_size: hs,
        pending: Vec::new(),
        stale: Vec::new(),
    };
    let file_size = log.offset + log.size;
    let file = out.finish(file_size)?;
    drop(file);
    layout.file_size = file_size;

    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let read = |f: &mut std::fs::File, off: u64, len: u64| -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(off))?;
        f.read_exact(&mut b)?;
        Ok(b)
    };
    let max_entries = ((hs as usize - REPLAY_HEADER_SIZE) / REPLAY_ENTRY_SIZE) as u32;
    assert!(
        pending.len() + stale.len() <= max_entries as usize,
        "too many replay entries"
    );
    let mut log_header_area = vec![0u8; hs as usize];
    let mut log_data: Vec<u8> = Vec::new();
    let mut log = log;
    let mut datas: Vec<(u64, Vec<u8>, bool)> = Vec::new();
    for &(dest, len) in &pending {
        datas.push((dest, read(&mut f, dest, len)?, true));
    }
    for &(dest, len) in &stale {
        let mut d = read(&mut f, dest, len)?;
        if o.stale_replay == StaleReplay::Outdated {
            for (i, b) in d.iter_mut().enumerate() {
                if i % 7 == 3 {
                    *b ^= 0x5A;
                }
            }
        }
        datas.push((dest, d, false));
    }
    for (i, (dest, d, is_pending)) in datas.iter().enumerate() {
        let data_offset = hs + log_data.len() as u64;
        log_data.extend_from_slice(d);
        let mut e = [0u8; REPLAY_ENTRY_SIZE];
        e[0..8].copy_from_slice(&dest.to_le_bytes());
        e[8..12].copy_from_slice(&(d.len() as u32).to_le_bytes());
        e[12..20].copy_from_slice(&data_offset.to_le_bytes());
        e[24..28].copy_from_slice(&crc32(&[d]).to_le_bytes());
        let c = crc32(&[&e]);
        e[20..24].copy_from_slice(&c.to_le_bytes());
        let at = REPLAY_HEADER_SIZE + i * REPLAY_ENTRY_SIZE;
        log_header_area[at..at + REPLAY_ENTRY_SIZE].copy_from_slice(&e);
        let loc = ReplayEntryLoc {
            header_offset: log.offset + at as u64,
            destination: *dest,
            size: d.len() as u64,
            data_offset: log.offset + data_offset,
        };
        if *is_pending {
            log.pending.push(loc);
        } else {
            log.stale.push(loc);
        }
    }
    let mut h = [0u8; REPLAY_HEADER_SIZE];
    h[0..4].copy_from_slice(&REPLAY_LOG_SIGNATURE.to_le_bytes());
    h[8..12].copy_from_slice(&(pending.len() as u32).to_le_bytes());
    h[13..17].copy_from_slice(&max_entries.to_le_bytes());
    let c = crc32(&[&h]);
    h[4..8].copy_from_slice(&c.to_le_bytes());
    log_header_area[..REPLAY_HEADER_SIZE].copy_from_slice(&h);
    f.seek(SeekFrom::Start(log.offset))?;
    f.write_all(&log_header_area)?;
    f.write_all(&log_data)?;
    // Pending entries: the body holds something else until the log is replayed.
    for &(dest, len) in &pending {
        f.seek(SeekFrom::Start(dest))?;
        f.write_all(&vec![o.pending_fill; len as usize])?;
    }
    for copy in 0..2 {
        f.seek(SeekFrom::Start(copy as u64 * 4096))?;
        f.write_all(&header_bytes(vm, copy, &log))?;
    }
    f.flush()?;
    layout.replay_log = Some(log);
    Ok(layout)
}

fn resolve_target(layout: &SynthLayout, t: &ReplayTarget) -> (u64, u64) {
    match t {
        ReplayTarget::KeyEntry(p) => {
            let k = layout.key(p);
            (k.entry_offset, k.entry_size)
        }
        ReplayTarget::KeyValue(p) => {
            let k = layout.key(p);
            assert!(k.value_size > 0, "empty value {p}");
            (k.value_offset, k.value_size)
        }
        ReplayTarget::KeyTable(i) => {
            let t = layout.key_table(*i);
            (t.offset, t.size)
        }
        ReplayTarget::ObjectTable(i) => {
            let t = &layout.object_tables[*i];
            (t.offset, t.size)
        }
        ReplayTarget::Range { offset, len } => (*offset, *len),
    }
}
