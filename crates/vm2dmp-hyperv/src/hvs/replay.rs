//! The replay log of an HVS file: its header and pending entries are validated, and the
//! pending entries are replayed in memory when asked. Layout: docs/hyperv-saved-state.md
//! section 3.

use vm2dmp_formats::crc32_with_zeroed_field as crc;
use vm2dmp_formats::hvs::{
    FileHeader, ReplayLogEntry, ReplayLogHeader, FIRST_OBJECT_TABLE, REPLAY_LOG_SIGNATURE,
};
use vm2dmp_source::Result;
use vm2dmp_source::{InputFile, Patch};

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

/// Validates the replay log that `header` declares and, when `replay` is set and entries are
/// pending, applies them to an in-memory overlay of `file` (never to the file on disk).
pub(super) fn apply_replay_log(
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
