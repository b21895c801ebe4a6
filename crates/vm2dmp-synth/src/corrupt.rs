//! Small in-place patches of written files, for error-path tests.
//!
//! Offsets come from [`crate::SynthLayout`]. Patches never fix checksums on their own:
//! call one of the `fix_*` functions afterwards to make a change "valid but wrong"
//! (e.g. a bad value behind a correct CRC), or leave it to test the CRC check.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::common::crc32;

/// Read `len` bytes at `offset`; an error if the file ends first.
pub fn read_bytes(path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut b = vec![0u8; len];
    f.read_exact(&mut b)?;
    Ok(b)
}

/// Overwrite bytes at `offset` (writing past the end extends the file).
pub fn write_bytes(path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(bytes)
}

/// XOR the byte at `offset` with `mask`.
pub fn xor_byte(path: &Path, offset: u64, mask: u8) -> io::Result<()> {
    let b = read_bytes(path, offset, 1)?;
    write_bytes(path, offset, &[b[0] ^ mask])
}

/// Invert every bit of the byte at `offset`.
pub fn flip_byte(path: &Path, offset: u64) -> io::Result<()> {
    xor_byte(path, offset, 0xFF)
}

/// Write `v` at `offset`.
pub fn set_u8(path: &Path, offset: u64, v: u8) -> io::Result<()> {
    write_bytes(path, offset, &[v])
}

/// Write `v` little-endian at `offset`.
pub fn set_u16(path: &Path, offset: u64, v: u16) -> io::Result<()> {
    write_bytes(path, offset, &v.to_le_bytes())
}

/// Write `v` little-endian at `offset`.
pub fn set_u32(path: &Path, offset: u64, v: u32) -> io::Result<()> {
    write_bytes(path, offset, &v.to_le_bytes())
}

/// Write `v` little-endian at `offset`.
pub fn set_u64(path: &Path, offset: u64, v: u64) -> io::Result<()> {
    write_bytes(path, offset, &v.to_le_bytes())
}

/// The little-endian u32 at `offset`; an error if the file ends first.
pub fn get_u32(path: &Path, offset: u64) -> io::Result<u32> {
    Ok(u32::from_le_bytes(
        read_bytes(path, offset, 4)?.try_into().unwrap(),
    ))
}

/// The little-endian u64 at `offset`; an error if the file ends first.
pub fn get_u64(path: &Path, offset: u64) -> io::Result<u64> {
    Ok(u64::from_le_bytes(
        read_bytes(path, offset, 8)?.try_into().unwrap(),
    ))
}

/// Fill `len` bytes at `offset` with `byte`.
pub fn fill(path: &Path, offset: u64, len: u64, byte: u8) -> io::Result<()> {
    write_bytes(path, offset, &vec![byte; len as usize])
}

/// Cut (or extend with zeros) the file to `len` bytes.
pub fn truncate(path: &Path, len: u64) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.set_len(len)
}

/// Store the CRC-32 of `crc_len` bytes at `start` (with its own field at
/// `start + field` taken as zero) into that field.
pub fn fix_crc_at(path: &Path, start: u64, crc_len: usize, field: usize) -> io::Result<u32> {
    let mut b = read_bytes(path, start, crc_len)?;
    b[field..field + 4].fill(0);
    let c = crc32(&[&b]);
    set_u32(path, start + field as u64, c)?;
    Ok(c)
}

/// Recompute the checksum of HVS header copy `copy` (0 or 1).
pub fn fix_header_crc(path: &Path, copy: usize) -> io::Result<u32> {
    fix_crc_at(path, copy as u64 * 4096, 46, 4)
}

/// Recompute the checksum of the 18-byte object-table entry at `entry_offset`.
pub fn fix_object_entry_crc(path: &Path, entry_offset: u64) -> io::Result<u32> {
    fix_crc_at(path, entry_offset, 18, 1)
}

/// Recompute the checksum of the key-table header at `table_offset`.
pub fn fix_key_table_crc(path: &Path, table_offset: u64) -> io::Result<u32> {
    fix_crc_at(path, table_offset, 10, 6)
}

/// Bytes of a key entry's value that its checksum covers, from the stored entry: 12 for a
/// file-object pointer, the fixed size of int, uint, double, bool and node values, 4 plus
/// the length prefix for strings and arrays, 0 for other types.
///
/// Panics if `entry` is shorter than its 21-byte header, name and length prefix.
pub fn key_entry_value_len(entry: &[u8]) -> usize {
    let ty = entry[0];
    let flags = entry[1];
    let name = entry[20] as usize;
    if flags & 1 != 0 {
        return 12;
    }
    match ty {
        3..=5 => 8,
        8 => 4,
        9 => 12,
        6 | 7 => {
            let at = 21 + name;
            4 + u32::from_le_bytes(entry[at..at + 4].try_into().unwrap()) as usize
        }
        _ => 0,
    }
}

/// Recompute the checksum of the key entry at `entry_offset` (header + name + value).
pub fn fix_key_entry_crc(path: &Path, entry_offset: u64) -> io::Result<u32> {
    let head = read_bytes(path, entry_offset, 21)?;
    let size = u32::from_le_bytes(head[2..6].try_into().unwrap()) as usize;
    let mut e = read_bytes(path, entry_offset, size.max(21))?;
    let n = 21 + e[20] as usize + key_entry_value_len(&e);
    e[12..16].fill(0);
    let c = crc32(&[&e[..n.min(e.len())]]);
    set_u32(path, entry_offset + 12, c)?;
    Ok(c)
}

/// Recompute the checksum of the replay-log header at `log_offset`.
pub fn fix_replay_log_crc(path: &Path, log_offset: u64) -> io::Result<u32> {
    fix_crc_at(path, log_offset, 34, 4)
}

/// Recompute both checksums of the replay-log entry whose header is at `entry_offset`
/// (data checksum first, then the entry checksum).
pub fn fix_replay_entry_crcs(path: &Path, log_offset: u64, entry_offset: u64) -> io::Result<()> {
    let e = read_bytes(path, entry_offset, 28)?;
    let size = u32::from_le_bytes(e[8..12].try_into().unwrap()) as usize;
    let data_offset = u64::from_le_bytes(e[12..20].try_into().unwrap());
    let data = read_bytes(path, log_offset + data_offset, size)?;
    set_u32(path, entry_offset + 24, crc32(&[&data]))?;
    fix_crc_at(path, entry_offset, 28, 20)?;
    Ok(())
}
