//! The HVS container writer (`.VMRS`, format version 0x400).
//!
//! File order: header copies (0, 4096), first object table (8192), a freed object,
//! file objects (large device values, partition_state, RAM blocks), key tables, linked
//! object tables, replay log.

// This module writes the headers, the freed object and the file objects, and runs the
// passes in file order; `key_tables`, `object_tables` and `replay` build and write their
// structures, with the constants of `format` (re-exported here).

mod format;
mod key_tables;
mod object_tables;
mod replay;

use std::collections::BTreeMap;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use crate::common::{crc32, encode_blocks, round_up, Out};
use crate::encode::TokenCounts;
use crate::keys::{vmrs_keys, Val};
use crate::layout::{FileRole, RamBlockLoc, ReplayLogLoc, SynthLayout};
use crate::model::SynthVm;
use crate::partition::{self, ChunkFlavor};
use key_tables::Stored;

pub use format::{
    obj, ty, FILE_SIGNATURE, KEY_ENTRY_HEADER, KEY_TABLE_SIGNATURE, OBJECT_ENTRY_SIZE,
    OBJECT_TABLE_SIGNATURE, REPLAY_ENTRY_SIZE, REPLAY_HEADER_SIZE, REPLAY_LOG_SIGNATURE,
};

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
    let (plan, tables) = key_tables::plan(&keys, &stored, align as usize);
    key_tables::write_tables(&mut out, &plan, &tables, o, &mut objects, &mut layout)?;
    key_tables::record_keys(&plan, &keys, &mut layout, &mut ram);
    layout.ram_blocks = ram.into_values().collect();

    object_tables::write_tables(
        &mut out,
        &objects,
        first_table,
        o.object_table_size,
        &mut layout,
    )?;

    let (mut f, log) = replay::write_log(out, path, o, first_table, &mut layout)?;
    for copy in 0..2 {
        f.seek(SeekFrom::Start(copy as u64 * 4096))?;
        f.write_all(&header_bytes(vm, copy, &log))?;
    }
    f.flush()?;
    layout.replay_log = Some(log);
    Ok(layout)
}
