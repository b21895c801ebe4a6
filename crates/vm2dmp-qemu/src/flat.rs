//! makedumpfile's *flattened* format: a kdump-compressed file written as a stream (to a pipe
//! or over ssh), which `makedumpfile -R` turns back into the plain file. QEMU up to 8.1 writes
//! its kdump-compressed dumps this way (`dump-guest-memory -z/-l/-s`); QEMU 8.2 added plain
//! `kdump-raw-*` formats and no longer flattens unless asked to.
//!
//! Layout (QEMU `include/sysemu/dump.h`: `MakedumpfileHeader`, `MakedumpfileDataHeader`,
//! `MAX_SIZE_MDF_HEADER`, `END_FLAG_FLAT_HEADER`; makedumpfile `makedumpfile.h`:
//! `struct makedumpfile_header`, `struct makedumpfile_data_header`), all integers big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | signature `makedumpfile`, NUL-padded |
//! | 16 | 8 | type (i64, 1 = flattened) |
//! | 24 | 8 | version (i64, 1) |
//! | 32 | 4064 | zero up to 4096 (`MAX_SIZE_MDF_HEADER`) |
//!
//! then records from offset 4096: `{ i64 offset, i64 size }` followed by `size` bytes that
//! belong at `offset` of the plain file, until a record with offset = size = -1. QEMU writes
//! each part of the file once, in order; makedumpfile may write a part again (a header filled
//! in at the end), so where records overlap the later one wins, as it does when `-R` replays
//! them onto a file. Bytes no record covers read as zero, as in the file `-R` writes.
//!
//! [`FlattenedFile::from_input`] indexes the records once (one small read per record, the
//! index bounded by the file's size) and [`FlattenedFile::read_into`] reads the plain file
//! through the index.

use std::collections::BTreeMap;

use vm2dmp_source::{FileCtx, InputFile, Result};

/// Size of the flattened header; the first record follows it.
pub const FLAT_HEADER_SIZE: u64 = 4096;
/// Signature at offset 0 of a flattened file.
pub const FLAT_SIGNATURE: &[u8; 12] = b"makedumpfile";
/// Size of a record header (`makedumpfile_data_header`).
const RECORD_HEADER_SIZE: u64 = 16;

/// True when `head` (the first bytes of a file, at least 32) starts a flattened file: the
/// `makedumpfile` signature, NUL-padded to 16 bytes, and type 1.
pub fn is_flattened(head: &[u8]) -> bool {
    head.len() >= 32
        && head.starts_with(FLAT_SIGNATURE)
        && head[12..16].iter().all(|&b| b == 0)
        && head[16..24] == 1i64.to_be_bytes()
}

/// One run of the plain file held by a record: plain-file bytes `start .. end` are at
/// `file_offset` of the flattened file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    start: u64,
    end: u64,
    file_offset: u64,
}

/// A flattened file read as the plain file it stands for.
#[derive(Debug)]
pub struct FlattenedFile {
    input: InputFile,
    /// Sorted by `start`, not overlapping.
    extents: Vec<Extent>,
    /// One past the last byte any record writes: the plain file's length.
    len: u64,
    records: u64,
    ended: bool,
}

impl FlattenedFile {
    /// Indexes the records of `input`, which must start with the flattened header.
    ///
    /// [`Error::Corrupt`](vm2dmp_source::Error::Corrupt) for a bad header, a record header or
    /// data running past the end of the file, or a negative or overflowing offset or size. A
    /// file that ends cleanly after a record without the end marker is accepted
    /// ([`FlattenedFile::ended`] says so).
    pub fn from_input(input: InputFile) -> Result<Self> {
        let ctx = input.ctx.clone();
        let head = input.bytes(0, 32.min(input.len()), "flattened header")?;
        if !is_flattened(&head) {
            return Err(ctx.corrupt(
                "flattened header",
                0,
                "no \"makedumpfile\" signature with type 1",
            ));
        }
        let version = i64::from_be_bytes(head[24..32].try_into().unwrap_or([0; 8]));
        if version != 1 {
            return Err(ctx.unsupported(format!(
                "flattened format version {version} (only version 1 is known)"
            )));
        }
        drop(head);
        if input.len() < FLAT_HEADER_SIZE {
            return Err(ctx.corrupt(
                "flattened header",
                0,
                format!(
                    "the file is {} bytes, shorter than the {FLAT_HEADER_SIZE}-byte header",
                    input.len()
                ),
            ));
        }

        let file_len = input.len();
        let mut map = ExtentMap::default();
        let mut pos = FLAT_HEADER_SIZE;
        let mut records = 0u64;
        let mut ended = false;
        while pos < file_len {
            let mut hdr = [0u8; RECORD_HEADER_SIZE as usize];
            input.read_into(pos, &mut hdr, "flattened record header")?;
            let offset = i64::from_be_bytes(hdr[..8].try_into().unwrap_or([0; 8]));
            let size = i64::from_be_bytes(hdr[8..].try_into().unwrap_or([0; 8]));
            if offset == -1 && size == -1 {
                ended = true;
                break;
            }
            let data = pos + RECORD_HEADER_SIZE;
            let (Ok(start), Ok(size)) = (u64::try_from(offset), u64::try_from(size)) else {
                return Err(ctx.corrupt(
                    "flattened record header",
                    pos,
                    format!("negative offset {offset} or size {size}"),
                ));
            };
            let Some(end) = start.checked_add(size).filter(|&e| e <= i64::MAX as u64) else {
                return Err(ctx.corrupt(
                    "flattened record header",
                    pos,
                    format!("offset {start:#x} + size {size:#x} overflows"),
                ));
            };
            if size > file_len - data.min(file_len) {
                return Err(ctx.corrupt(
                    "flattened record header",
                    pos,
                    format!("{size} bytes of data run past the end of the file ({file_len} bytes)"),
                ));
            }
            if size > 0 {
                map.insert(Extent {
                    start,
                    end,
                    file_offset: data,
                });
            }
            records += 1;
            pos = data + size;
        }
        let extents: Vec<Extent> = map.0.into_values().collect();
        let len = extents.last().map_or(0, |e| e.end);
        Ok(Self {
            input,
            extents,
            len,
            records,
            ended,
        })
    }

    /// The flattened file itself.
    pub fn input(&self) -> &InputFile {
        &self.input
    }

    /// Error context naming the flattened file.
    pub fn ctx(&self) -> &FileCtx {
        &self.input.ctx
    }

    /// Length of the plain file: one past the last byte a record writes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no record holds any data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of data records.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// True when the stream ended with the end marker (offset = size = -1); false when the
    /// file just ends after a record (a stream cut short).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Fills `buf` with the plain file's bytes at `offset`; bytes no record writes read as
    /// zero. A range past the plain file's end is a corruption error naming `structure` and
    /// the offset in the plain file.
    pub fn read_into(&self, offset: u64, buf: &mut [u8], structure: &'static str) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                self.ctx().corrupt(
                    structure,
                    offset,
                    format!(
                        "{} bytes run past the end of the flattened stream's data ({} bytes; offset in the plain file)",
                        buf.len(),
                        self.len
                    ),
                )
            })?;
        let mut i = self.extents.partition_point(|e| e.end <= offset);
        let mut at = offset;
        while at < end {
            let Some(e) = self.extents.get(i).filter(|e| e.start < end) else {
                buf[(at - offset) as usize..].fill(0);
                break;
            };
            if e.start > at {
                buf[(at - offset) as usize..(e.start - offset) as usize].fill(0);
                at = e.start;
            }
            let to = e.end.min(end);
            self.input.read_into(
                e.file_offset + (at - e.start),
                &mut buf[(at - offset) as usize..(to - offset) as usize],
                structure,
            )?;
            at = to;
            i += 1;
        }
        Ok(())
    }
}

/// Extents by start, not overlapping; a later insert wins over what it overlaps.
#[derive(Default)]
struct ExtentMap(BTreeMap<u64, Extent>);

impl ExtentMap {
    fn insert(&mut self, new: Extent) {
        // An extent starting before `new` and reaching into it: keep its head, and its tail
        // when it reaches past `new`.
        if let Some((_, &before)) = self.0.range(..new.start).next_back() {
            if before.end > new.start {
                self.0.insert(
                    before.start,
                    Extent {
                        end: new.start,
                        ..before
                    },
                );
                if before.end > new.end {
                    self.0.insert(
                        new.end,
                        Extent {
                            start: new.end,
                            end: before.end,
                            file_offset: before.file_offset + (new.end - before.start),
                        },
                    );
                }
            }
        }
        // Extents starting inside `new`: drop them, keeping a tail that reaches past it.
        let inside: Vec<u64> = self.0.range(new.start..new.end).map(|(&k, _)| k).collect();
        for k in inside {
            if let Some(old) = self.0.remove(&k) {
                if old.end > new.end {
                    self.0.insert(
                        new.end,
                        Extent {
                            start: new.end,
                            end: old.end,
                            file_offset: old.file_offset + (new.end - old.start),
                        },
                    );
                }
            }
        }
        self.0.insert(new.start, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(start: u64, end: u64, file_offset: u64) -> Extent {
        Extent {
            start,
            end,
            file_offset,
        }
    }

    #[test]
    fn later_extents_win() {
        let mut m = ExtentMap::default();
        m.insert(ext(0, 100, 1000));
        m.insert(ext(20, 30, 5000));
        m.insert(ext(90, 120, 6000));
        m.insert(ext(0, 5, 7000));
        let v: Vec<Extent> = m.0.into_values().collect();
        assert_eq!(
            v,
            vec![
                ext(0, 5, 7000),
                ext(5, 20, 1005),
                ext(20, 30, 5000),
                ext(30, 90, 1030),
                ext(90, 120, 6000),
            ]
        );
    }

    #[test]
    fn covering_extent_replaces_several() {
        let mut m = ExtentMap::default();
        m.insert(ext(10, 20, 0));
        m.insert(ext(20, 30, 100));
        m.insert(ext(40, 50, 200));
        m.insert(ext(5, 45, 300));
        let v: Vec<Extent> = m.0.into_values().collect();
        assert_eq!(v, vec![ext(5, 45, 300), ext(45, 50, 205)]);
    }
}
