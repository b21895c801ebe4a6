//! A checksum fixer that lets mutated HVS files get past their CRC-32 fields.

use vm2dmp_formats::crc32_with_zeroed_field as crc;
use vm2dmp_formats::hvs::{
    key_type, object_type, FileHeader, KeyEntryHeader, KeyTableHeader, ObjectEntry, ReplayLogEntry,
    ReplayLogHeader, FILE_OBJECT_POINTER_SIZE, FILE_SIGNATURE, FIRST_OBJECT_TABLE,
    HEADER_COPY_OFFSETS, KEY_FLAG_FILE_OBJECT, KEY_TABLE_SIGNATURE, OBJECT_TABLE_HEADER_SIZE,
    OBJECT_TABLE_SIGNATURE, REPLAY_LOG_SIGNATURE,
};
use vm2dmp_formats::le;

fn put_u32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites the checksum of the `len`-byte structure at `start` (field at `crc_at`), if the
/// structure lies inside `d`.
fn fix(d: &mut [u8], start: u64, len: u64, crc_at: usize) -> bool {
    let (Ok(s), Ok(l)) = (usize::try_from(start), usize::try_from(len)) else {
        return false;
    };
    let Some(e) = s.checked_add(l).filter(|&e| e <= d.len()) else {
        return false;
    };
    if crc_at + 4 > l {
        return false;
    }
    let c = crc(&d[s..e], crc_at);
    put_u32(d, s + crc_at, c);
    true
}

/// Recomputes every CRC-32 of an HVS file that can be located (header copies, replay log,
/// object tables, key tables and their entries), so that mutations of the fields behind the
/// checksums reach the code that interprets them. Best effort: structures that cannot be
/// found are left alone, and the reader then rejects them as usual.
pub fn fix_hvs_checksums(d: &mut [u8]) {
    // Header copies.
    let mut headers = Vec::new();
    for &off in &HEADER_COPY_OFFSETS {
        let o = off as usize;
        if le::u32(d, o) == Some(FILE_SIGNATURE) && fix(d, off, FileHeader::SIZE as u64, 4) {
            if let Some(h) = d.get(o..).and_then(FileHeader::parse) {
                headers.push(h);
            }
        }
    }
    let Some(h) = headers.iter().copied().max_by_key(|h| h.sequence) else {
        return;
    };
    let align = u64::from(h.data_alignment);
    if !(4096..=65536).contains(&align) || !align.is_power_of_two() {
        return;
    }

    // Replay log: data checksums, entry checksums, then the log header.
    let log = h.replay_log_offset;
    if let Some(lo) = usize::try_from(log).ok().filter(|&lo| lo < d.len()) {
        if le::u32(d, lo) == Some(REPLAY_LOG_SIGNATURE) {
            if let Some(lh) = ReplayLogHeader::parse(&d[lo..]) {
                for i in 0..u64::from(lh.current_entries.min(256)) {
                    let eo = log + ReplayLogHeader::SIZE as u64 + i * ReplayLogEntry::SIZE as u64;
                    let Some(e) = d.get(eo as usize..).and_then(ReplayLogEntry::parse) else {
                        break;
                    };
                    let ds = log.checked_add(e.data_offset);
                    let de = ds.and_then(|s| s.checked_add(u64::from(e.size)));
                    if let (Some(ds), Some(de)) = (ds, de) {
                        if de <= d.len() as u64 {
                            let c = crc32fast::hash(&d[ds as usize..de as usize]);
                            put_u32(d, eo as usize + 24, c);
                        }
                    }
                    fix(
                        d,
                        eo,
                        ReplayLogEntry::SIZE as u64,
                        ReplayLogEntry::CHECKSUM_AT,
                    );
                }
                fix(
                    d,
                    log,
                    ReplayLogHeader::SIZE as u64,
                    ReplayLogHeader::CHECKSUM_AT,
                );
            }
        }
    }

    // Object tables, following the chain; key tables as they are found.
    let (mut table, mut size) = (FIRST_OBJECT_TABLE, align);
    let mut seen = Vec::new();
    while seen.len() < 64 && !seen.contains(&table) {
        seen.push(table);
        let t = table as usize;
        if le::u32(d, t) != Some(OBJECT_TABLE_SIGNATURE) {
            break;
        }
        let count = le::u32(d, t + 4).unwrap_or(0) as u64;
        let fits = count
            .checked_mul(ObjectEntry::SIZE as u64)
            .map(|n| n + OBJECT_TABLE_HEADER_SIZE as u64)
            .is_some_and(|n| n <= size && table + n <= d.len() as u64);
        if !fits {
            break;
        }
        let mut next = None;
        for i in 0..count {
            let eo = table + OBJECT_TABLE_HEADER_SIZE as u64 + i * ObjectEntry::SIZE as u64;
            fix(d, eo, ObjectEntry::SIZE as u64, ObjectEntry::CHECKSUM_AT);
            let Some(e) = ObjectEntry::parse(&d[eo as usize..]) else {
                break;
            };
            match e.object_type {
                object_type::OBJECT_TABLE => next = Some((e.offset, u64::from(e.size))),
                object_type::KEY_TABLE => fix_key_table(d, e.offset, u64::from(e.size)),
                _ => {}
            }
        }
        match next {
            Some((o, s)) if s >= align => (table, size) = (o, s),
            _ => break,
        }
    }
}

fn fix_key_table(d: &mut [u8], off: u64, size: u64) {
    let Some(end) = off.checked_add(size).filter(|&e| e <= d.len() as u64) else {
        return;
    };
    let (off, end) = (off as usize, end as usize);
    if le::u16(d, off) != Some(KEY_TABLE_SIGNATURE) {
        return;
    }
    let mut pos = off + KeyTableHeader::SIZE;
    while pos + KeyEntryHeader::SIZE <= end {
        let Some(h) = KeyEntryHeader::parse(&d[pos..end]) else {
            break;
        };
        let size = h.entry_size as usize;
        if size < KeyEntryHeader::SIZE || pos + size > end {
            break;
        }
        if h.key_type != key_type::FREE {
            let vstart = KeyEntryHeader::SIZE + h.name_size as usize;
            let value_len = |at: usize| le::u32(d, pos + at).map(|n| n as usize + 4);
            let meaningful = match h.key_type {
                key_type::STRING | key_type::ARRAY if h.flags & KEY_FLAG_FILE_OBJECT != 0 => {
                    Some(FILE_OBJECT_POINTER_SIZE)
                }
                key_type::STRING | key_type::ARRAY => value_len(vstart),
                key_type::INT | key_type::UINT | key_type::DOUBLE => Some(8),
                key_type::BOOL => Some(4),
                key_type::NODE => Some(12),
                _ => None,
            };
            if let Some(m) = meaningful.and_then(|m| m.checked_add(vstart)) {
                if m <= size {
                    fix(d, pos as u64, m as u64, KeyEntryHeader::CHECKSUM_AT);
                }
            }
        }
        pos += size;
    }
    fix(
        d,
        off as u64,
        KeyTableHeader::SIZE as u64,
        KeyTableHeader::CHECKSUM_AT,
    );
}
