//! Key tables: the key tree, its entries packed into tables, their bytes, and where every
//! key ended up.

use std::collections::BTreeMap;
use std::io;

use super::format::{obj, ty, KEY_ENTRY_HEADER, KEY_TABLE_SIGNATURE};
use crate::common::{crc32, round_up, Out};
use crate::keys::{Key, Val};
use crate::layout::{FileRole, KeyLoc, KeyTableLoc, RamBlockLoc, SynthLayout};
use crate::options::VmrsOptions;

/// A value after the data pass: what goes into the key entry.
#[derive(Debug, Clone)]
pub(super) enum Stored {
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

/// The key entries of every node, in table order, with what their headers need.
pub(super) struct Plan {
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

/// Builds the key tree of `keys` and plans its entries (the values as `stored` by the data
/// pass) into key tables of `ts` bytes: the plan, and the entries of each table.
pub(super) fn plan(keys: &[Key], stored: &[Option<Stored>], ts: usize) -> (Plan, Vec<Vec<usize>>) {
    let nodes = build_tree(keys);
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
    (plan, tables)
}

/// Writes the key tables of `plan` (and the stale copy of table 1 when asked) at the next
/// aligned offset, and records them as objects and in `layout`.
pub(super) fn write_tables(
    out: &mut Out,
    plan: &Plan,
    tables: &[Vec<usize>],
    o: &VmrsOptions,
    objects: &mut Vec<(u8, u64, u64)>,
    layout: &mut SynthLayout,
) -> io::Result<()> {
    let align = layout.alignment;
    let ts = align as usize;
    let kt_start = round_up(out.pos(), align);
    out.pad_to(kt_start)?;
    for (ti, in_table) in tables.iter().enumerate() {
        let off = out.pos();
        let bytes = serialize_table(
            plan,
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
            plan,
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
    Ok(())
}

/// Records where every key entry and value went, in `layout.keys` and in the RAM block
/// locations `ram`.
pub(super) fn record_keys(
    plan: &Plan,
    keys: &[Key],
    layout: &mut SynthLayout,
    ram: &mut BTreeMap<u64, RamBlockLoc>,
) {
    let align = layout.alignment;
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
}
