//! Object tables: the first table at a fixed offset and the linked tables after the key
//! tables, listing every object.

use std::io;

use super::format::{obj, OBJECT_ENTRY_SIZE, OBJECT_TABLE_SIGNATURE};
use crate::common::{crc32, round_up, Out};
use crate::layout::{ObjectLoc, ObjectTableLoc, SynthLayout};

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

/// Writes the object tables listing `objects`: the first one (one alignment unit) at
/// `first_table`, linked ones of `object_table_size` (rounded up) at the next aligned offset.
pub(super) fn write_tables(
    out: &mut Out,
    objects: &[(u8, u64, u64)],
    first_table: u64,
    object_table_size: u32,
    layout: &mut SynthLayout,
) -> io::Result<()> {
    let align = layout.alignment;
    let first_cap = (align as usize - 8) / OBJECT_ENTRY_SIZE;
    let linked_size = round_up(object_table_size.max(1) as u64, align);
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
    Ok(())
}
