//! The legacy key/value container (signature 0x02182003, version 0x500): `.bin` and `.vsv`.
//!
//! Header (40 bytes at 0, the rest of the first 4096 bytes zero), data from 0x1000, the
//! index (`index_capacity` slots of 24 bytes), then the string table, which ends the file.

use std::io;
use std::path::Path;

use crate::common::{encode_blocks, round_up, Out};
use crate::encode::TokenCounts;
use crate::keys::{vsv_keys, Key, Val};
use crate::layout::{FileRole, KeyLoc, LegacyFileLoc, RamBlockLoc, SynthLayout};
use crate::model::SynthVm;
use crate::partition::{self, ChunkFlavor};

/// `signature` of both files' headers.
pub const SIGNATURE: u32 = 0x0218_2003;
/// `version` written in both files' headers.
pub const VERSION: u32 = 0x500;
/// Bytes of one index slot.
pub const SLOT_SIZE: u64 = 24;
/// Offset of the first value (the header occupies the first 4096 bytes).
pub const DATA_START: u64 = 0x1000;

/// Slot types.
pub mod ty {
    /// Binary bytes.
    pub const BINARY: u8 = 1;
    /// i64 (also used for unsigned values).
    pub const INT: u8 = 2;
    /// u32, non-zero is true.
    pub const BOOL: u8 = 3;
    /// f64 (never seen in a real file; written for [`crate::KeyValue::Double`]).
    pub const DOUBLE: u8 = 4;
    /// UTF-16LE without a terminator.
    pub const STRING: u8 = 5;
}

/// Values at least this large are stored outside the `.vsv` internal data table.
const OUTSIDE_TABLE: usize = 128 * 1024;

struct Slot {
    name: String,
    ty: u8,
    allocated: u32,
    size: u32,
    offset_or_inline: u64,
}

fn slot_value(v: &Val) -> (u8, Vec<u8>) {
    match v {
        Val::Int(x) => (ty::INT, x.to_le_bytes().to_vec()),
        Val::Uint(x) => (ty::INT, x.to_le_bytes().to_vec()),
        Val::Double(x) => (ty::DOUBLE, x.to_le_bytes().to_vec()),
        Val::Bool(x) => (ty::BOOL, (*x as u32).to_le_bytes().to_vec()),
        Val::Str(b) => (ty::STRING, b.clone()),
        Val::Bin(b) => (ty::BINARY, b.clone()),
        Val::RamBlock(_) => unreachable!(),
    }
}

fn inline(name: String, t: u8, v: &[u8]) -> Slot {
    let mut x = [0u8; 8];
    x[..v.len()].copy_from_slice(v);
    Slot {
        name,
        ty: t,
        allocated: 0,
        size: v.len() as u32,
        offset_or_inline: u64::from_le_bytes(x),
    }
}

fn default_capacity(n: usize) -> u32 {
    (round_up(n as u64, 1024).max(1024)) as u32
}

/// Write the index and the string table at the current position and finish the file.
fn finish(
    mut out: Out,
    slots: &[Slot],
    capacity: u32,
    role: FileRole,
    layout: &mut SynthLayout,
    data_table: Option<(u64, u64, u64)>,
) -> io::Result<LegacyFileLoc> {
    assert!(
        slots.len() <= capacity as usize,
        "index capacity {capacity} too small for {} slots",
        slots.len()
    );
    let index_offset = round_up(out.pos(), 4096);
    out.pad_to(index_offset)?;
    let mut strings = Vec::new();
    let mut index = vec![0u8; capacity as usize * SLOT_SIZE as usize];
    for (i, s) in slots.iter().enumerate() {
        let name_offset = strings.len() as u32;
        strings.extend_from_slice(s.name.as_bytes());
        strings.push(0);
        let b = &mut index[i * 24..i * 24 + 24];
        b[0..4].copy_from_slice(&name_offset.to_le_bytes());
        b[4..6].copy_from_slice(&((s.name.len() + 1) as u16).to_le_bytes());
        b[6] = 1;
        b[7] = s.ty;
        b[8..12].copy_from_slice(&s.allocated.to_le_bytes());
        b[12..16].copy_from_slice(&s.size.to_le_bytes());
        b[16..24].copy_from_slice(&s.offset_or_inline.to_le_bytes());
        let slot_off = index_offset + i as u64 * SLOT_SIZE;
        let inl = s.allocated == 0;
        let at = if inl {
            slot_off + 16
        } else {
            s.offset_or_inline
        };
        let prev = layout.keys.insert(
            s.name.clone(),
            KeyLoc {
                file: role,
                entry_offset: slot_off,
                entry_size: SLOT_SIZE,
                value_type: s.ty,
                flags: 0,
                table_index: 0,
                table_offset: 0,
                insertion_sequence: i as u32 + 1,
                stored_offset: at,
                value_offset: at,
                value_size: s.size as u64,
                object: if inl {
                    None
                } else {
                    Some((s.offset_or_inline, s.allocated as u64))
                },
                inline: inl,
            },
        );
        assert!(prev.is_none(), "duplicate name {}", s.name);
    }
    out.write(&index)?;
    let strings_offset = out.pos();
    let strings_allocated = round_up(strings.len() as u64, 0x4000).max(0x4000);
    out.write(&strings)?;
    let size = strings_offset + strings_allocated;
    let mut header = [0u8; 40];
    header[0..4].copy_from_slice(&SIGNATURE.to_le_bytes());
    header[4..8].copy_from_slice(&VERSION.to_le_bytes());
    header[8..12].copy_from_slice(&1u32.to_le_bytes());
    header[12..16].copy_from_slice(&capacity.to_le_bytes());
    header[16..24].copy_from_slice(&index_offset.to_le_bytes());
    header[24..32].copy_from_slice(&strings_offset.to_le_bytes());
    header[32..36].copy_from_slice(&(strings_allocated as u32).to_le_bytes());
    header[36..40].copy_from_slice(&(strings.len() as u32).to_le_bytes());
    out.write_at(0, &header)?;
    out.finish(size)?;
    Ok(LegacyFileLoc {
        size,
        index_offset,
        index_capacity: capacity,
        strings_offset,
        strings_allocated: strings_allocated as u32,
        strings_used: strings.len() as u32,
        data_table,
    })
}

/// Write a `.vsv` + `.bin` pair for `vm`.
pub fn write_vsv_bin(vm: &SynthVm, vsv_path: &Path, bin_path: &Path) -> io::Result<SynthLayout> {
    let o = &vm.legacy;
    let mut layout = SynthLayout {
        alignment: 4096,
        memory_map: vm.placed_ranges(),
        ..Default::default()
    };
    layout.files.insert("vsv", vsv_path.to_path_buf());
    layout.files.insert("bin", bin_path.to_path_buf());

    // .bin
    let order: Vec<u64> = vm
        .block_order
        .order(vm.block_count())
        .into_iter()
        .filter(|b| !o.omit_bin_keys.contains(&format!("RamBlock/{b}/")))
        .collect();
    let mut out = Out::create(bin_path)?;
    out.pad_to(DATA_START)?;
    let mut slots = Vec::with_capacity(order.len());
    let mut totals = TokenCounts::default();
    let mut ram = Vec::new();
    encode_blocks(vm, &order, vm.record_tokens, |b, enc| {
        totals.merge(&enc.counts);
        let off = out.pos();
        let alloc = round_up(enc.bytes.len() as u64, 4096);
        if enc.all_zero {
            out.zeros(alloc)?;
        } else {
            out.write(&enc.bytes)?;
            out.pad_to(off + alloc)?;
        }
        let name = format!("RamBlock/{b}/");
        slots.push(Slot {
            name: name.clone(),
            ty: ty::BINARY,
            allocated: alloc as u32,
            size: enc.bytes.len() as u32,
            offset_or_inline: off,
        });
        ram.push(RamBlockLoc {
            block: b,
            file: FileRole::Bin,
            key: name,
            value_offset: off,
            value_size: enc.bytes.len() as u64,
            raw: enc.raw,
            hole: enc.all_zero,
            in_file_object: true,
            counts: enc.counts,
            tokens: enc.tokens,
        });
        Ok(())
    })?;
    ram.sort_by_key(|r| r.block);
    layout.ram_blocks = ram;
    layout.token_totals = totals;
    let cap = o
        .bin_index_capacity
        .unwrap_or_else(|| default_capacity(slots.len()));
    layout.bin = Some(finish(out, &slots, cap, FileRole::Bin, &mut layout, None)?);

    // .vsv
    let (blob, playout) = partition::build(vm, ChunkFlavor::Vsv);
    layout.partition = playout;
    let keys: Vec<Key> = vsv_keys(vm, blob);
    let mut out = Out::create(vsv_path)?;
    out.pad_to(DATA_START)?;
    let mut slot_for: Vec<Option<Slot>> = Vec::new();
    // Large values first, each on its own 4096 boundary.
    for key in &keys {
        let (t, v) = slot_value(&key.val);
        if v.len() >= OUTSIDE_TABLE {
            let off = round_up(out.pos(), 4096);
            out.pad_to(off)?;
            out.write(&v)?;
            slot_for.push(Some(Slot {
                name: key.path.clone(),
                ty: t,
                allocated: round_up(v.len() as u64, 4096) as u32,
                size: v.len() as u32,
                offset_or_inline: off,
            }));
            out.pad_to(off + round_up(v.len() as u64, 4096))?;
        } else {
            slot_for.push(None);
        }
    }
    let begins = round_up(out.pos(), 4096);
    out.pad_to(begins)?;
    let mut slots = Vec::with_capacity(keys.len() + 3);
    for (key, pre) in keys.iter().zip(slot_for) {
        if let Some(s) = pre {
            slots.push(s);
            continue;
        }
        let (t, v) = slot_value(&key.val);
        if v.len() <= 8 {
            slots.push(inline(key.path.clone(), t, &v));
        } else {
            let off = out.pos();
            out.write(&v)?;
            slots.push(Slot {
                name: key.path.clone(),
                ty: t,
                allocated: v.len() as u32,
                size: v.len() as u32,
                offset_or_inline: off,
            });
        }
    }
    let used = out.pos() - begins;
    let ends = round_up(out.pos(), 4096);
    out.pad_to(ends)?;
    for (n, v) in [
        ("InternalDataTableBegins", begins),
        ("InternalDataTableEnds", ends),
        ("InternalDataTableUsedBytes", used),
    ] {
        slots.push(inline(n.to_string(), ty::INT, &v.to_le_bytes()));
    }
    let cap = o
        .vsv_index_capacity
        .unwrap_or_else(|| default_capacity(slots.len()));
    layout.vsv = Some(finish(
        out,
        &slots,
        cap,
        FileRole::Vsv,
        &mut layout,
        Some((begins, ends, used)),
    )?);
    layout.file_size = layout.vsv.unwrap().size;
    Ok(layout)
}
