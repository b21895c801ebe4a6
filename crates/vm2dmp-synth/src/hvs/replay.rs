//! The replay log: sized from its entries, written after everything else, with pending
//! entries (the body holds a filler until replay) and stale, already-applied ones.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::format::{REPLAY_ENTRY_SIZE, REPLAY_HEADER_SIZE, REPLAY_LOG_SIGNATURE};
use crate::common::{crc32, round_up, Out};
use crate::layout::{ReplayEntryLoc, ReplayLogLoc, SynthLayout};
use crate::options::{ReplayTarget, StaleReplay, VmrsOptions};

/// Writes the replay log at the next aligned offset, finishes the file `out` (at `path`)
/// and returns it reopened for writing, with the log's location. `first_table` is the
/// offset of the first object table (a stale entry covers it).
pub(super) fn write_log(
    out: Out,
    path: &Path,
    o: &VmrsOptions,
    first_table: u64,
    layout: &mut SynthLayout,
) -> io::Result<(File, ReplayLogLoc)> {
    let align = layout.alignment;
    // Plan its size from the entries it will hold.
    let log_offset = round_up(out.pos(), align);
    let hs = o.replay_log_header_size as u64;
    assert!(hs as usize >= REPLAY_HEADER_SIZE + REPLAY_ENTRY_SIZE);
    let pending: Vec<(u64, u64)> = o
        .pending_replay
        .iter()
        .map(|t| resolve_target(layout, t))
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
    Ok((f, log))
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
