//! The key tree of an HVS file, built from the key entries of every table; paths are
//! resolved by walking it.

use std::collections::HashMap;

use vm2dmp_formats::hvs::{key_type, KeyEntryHeader};
use vm2dmp_source::InputFile;
use vm2dmp_source::Result;

use crate::value::Value;

/// Deepest key path we follow; real files nest about six levels.
const MAX_KEY_DEPTH: usize = 256;

/// A key entry before its path is known.
pub(super) struct RawKey {
    pub(super) table_index: u16,
    pub(super) offset_in_table: u32,
    pub(super) header: KeyEntryHeader,
    pub(super) name: String,
    pub(super) value: Option<Value>,
}

/// The key tree: every entry once, its children indexed by name. Paths are resolved by walking
/// the tree, never stored whole, so memory stays proportional to the key tables.
#[derive(Debug, Default)]
pub(super) struct KeyTree {
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
    pub(super) fn all(&self, max_bytes: usize) -> Option<Vec<(String, Value)>> {
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
    pub(super) fn lookup(&self, file: &InputFile, path: &str) -> Result<Vec<Value>> {
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

/// Links the entries of every key table into the key tree: each parent must exist and be
/// a node, and no chain of parents may loop or nest deeper than [`MAX_KEY_DEPTH`].
pub(super) fn build_tree(file: &InputFile, raw: HashMap<(u16, u32), RawKey>) -> Result<KeyTree> {
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
