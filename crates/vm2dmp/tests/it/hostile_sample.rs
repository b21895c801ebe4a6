//! Damaged copies of the real sample: every one must give a clear error naming the file, the
//! structure and the offset, never a panic. Dirty (pending replay log) copies must read as the
//! replayed state.

use std::path::{Path, PathBuf};

use vm2dmp::{hyperv::OpenOptions, Error, SavedState};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}

/// A writable copy of a sample file in `dir`, patched by `f`.
fn patched(dir: &Path, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut data = std::fs::read(sample(name)).unwrap();
    f(&mut data);
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn put_u32(d: &mut [u8], off: usize, v: u32) {
    d[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(d: &mut [u8], off: usize, v: u64) {
    d[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Recomputes a CRC-32 field the way HVS structures define it.
fn fix_crc(d: &mut [u8], start: usize, len: usize, crc_at: usize) {
    put_u32(d, start + crc_at, 0);
    let c = crc32fast::hash(&d[start..start + len]);
    put_u32(d, start + crc_at, c);
}

/// Opens and expects a corruption error at `offset` in `structure`.
fn expect_corrupt(path: &Path, structure: &str, offset: Option<u64>) -> String {
    let e = SavedState::open(path).unwrap_err();
    let msg = e.to_string();
    assert!(e.is_input_error(), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "names the file: {msg}"
    );
    assert!(msg.contains(structure), "names {structure}: {msg}");
    if let Some(o) = offset {
        assert!(
            msg.contains(&format!("{o:#x}")),
            "names offset {o:#x}: {msg}"
        );
    }
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

const VMRS: &str = "test_file.VMRS";
const LOG: usize = 0xA2A000;

#[test]
fn truncated_and_wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = patched(dir.path(), VMRS, |d| d.truncate(5000));
    expect_corrupt(&p, "HVS file header", Some(0));
    let p = patched(dir.path(), VMRS, |d| d.truncate(2));
    expect_corrupt(&p, "file signature", Some(0));
    let p = patched(dir.path(), VMRS, |d| d[0] = 0x15);
    // Signature of copy 0 wrong: copy 1 (sequence 6) is still valid and is used.
    assert_eq!(SavedState::open(&p).unwrap().vcpus().len(), 4);
    let p = patched(dir.path(), VMRS, |d| {
        d[0] = 0;
        d[4096] = 0;
    });
    expect_corrupt(&p, "file signature", Some(0));
    let p = patched(dir.path(), "test_file.vsv", |d| d.truncate(100));
    expect_corrupt(&p, "legacy container header", Some(0));
    // Truncating the VMRS in the middle of its objects.
    let p = patched(dir.path(), VMRS, |d| d.truncate(0x9E0000));
    SavedState::open(&p).unwrap_err();
}

#[test]
fn header_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let p = patched(dir.path(), VMRS, |d| {
        d[10] ^= 1;
        d[4096 + 10] ^= 1;
    });
    let msg = expect_corrupt(&p, "HVS file header", Some(0));
    assert!(
        msg.contains("copy 0: checksum mismatch") && msg.contains("copy 1: checksum mismatch"),
        "{msg}"
    );
    // Copy 0 damaged: copy 1 is used.
    let p = patched(dir.path(), VMRS, |d| d[20] ^= 1);
    SavedState::open(&p).unwrap();
    // A valid header with another format version.
    let p = patched(dir.path(), VMRS, |d| {
        put_u32(d, 10, 0x300);
        fix_crc(d, 0, 46, 4);
    });
    let e = SavedState::open(&p).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    // Alignment that is not a power of two.
    let p = patched(dir.path(), VMRS, |d| {
        put_u32(d, 22, 5000);
        fix_crc(d, 0, 46, 4);
    });
    expect_corrupt(&p, "HVS file header", Some(22));
}

#[test]
fn object_and_key_tables() {
    let dir = tempfile::tempdir().unwrap();
    // Entry 0 of the first object table: checksum mismatch.
    let p = patched(dir.path(), VMRS, |d| d[0x2000 + 8 + 6] ^= 1);
    expect_corrupt(&p, "object table entry", Some(0x2008));
    // An object that points past the end of the file (checksum fixed).
    let p = patched(dir.path(), VMRS, |d| {
        put_u64(d, 0x2008 + 5, 0xFFFF_FFFF_FFFF_F000);
        fix_crc(d, 0x2008, 18, 1);
    });
    expect_corrupt(&p, "object table entry", Some(0x2008));
    // The link to the second table made to point back at the first: a loop.
    let p = patched(dir.path(), VMRS, |d| {
        let link = 0x2000 + 8 + 226 * 18;
        assert_eq!(d[link], 1);
        put_u64(d, link + 5, 0x2000);
        put_u32(d, link + 13, 0x1000);
        fix_crc(d, link, 18, 1);
    });
    expect_corrupt(&p, "object table", Some(0x2000));
    // Entry count that does not fit the table.
    let p = patched(dir.path(), VMRS, |d| put_u32(d, 0x2004, 0xFFFF_FFFF));
    expect_corrupt(&p, "object table", Some(0x2000));
    // Bad object-table signature.
    let p = patched(dir.path(), VMRS, |d| d[0x2000] = 0);
    expect_corrupt(&p, "object table", Some(0x2000));
    // A key entry's checksum.
    let p = patched(dir.path(), VMRS, |d| d[0x3000 + 0x39 + 25] ^= 0x20);
    expect_corrupt(&p, "key table entry", Some(0x3039));
    // A key table header checksum.
    let p = patched(dir.path(), VMRS, |d| d[0x3004] ^= 1);
    expect_corrupt(&p, "key table header", Some(0x3000));
    // An entry size running past the table (checksum recomputed over header + name + value).
    let p = patched(dir.path(), VMRS, |d| {
        put_u32(d, 0x3000 + 0x39 + 2, 0x10_0000)
    });
    expect_corrupt(&p, "key table entry", Some(0x3039));
    // A parent reference into nowhere.
    let p = patched(dir.path(), VMRS, |d| {
        let e = 0x3000 + 0x39;
        put_u32(d, e + 8, 0x777);
        put_u32(d, e + 12, 0);
        // Header, the 11-byte name "properties\0" and the 12-byte node value.
        let c = crc32fast::hash(&d[e..e + 21 + 11 + 12]);
        put_u32(d, e + 12, c);
    });
    expect_corrupt(&p, "key table entry", None);
    // A node that is its own parent: a cycle in the key tree.
    let p = patched(dir.path(), VMRS, |d| {
        let e = 0x3000 + 0x39; // "properties", a node whose parent is "configuration"
        assert_eq!(d[e], 9);
        put_u32(d, e + 8, 0x39);
        put_u32(d, e + 12, 0);
        let c = crc32fast::hash(&d[e..e + 21 + 11 + 12]);
        put_u32(d, e + 12, c);
    });
    let msg = expect_corrupt(&p, "key table entry", Some(0x3039));
    assert!(msg.contains("cycle"), "{msg}");
}

/// Finds the stored bytes of `RamBlock/<n>/` in the legacy .bin: (offset, size).
fn bin_block(d: &[u8], n: usize) -> (usize, usize) {
    let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap()) as usize;
    let (cap, index, strings) = (u32_at(12), u64_at(16), u64_at(24));
    let want = format!("RamBlock/{n}/\0");
    for i in 0..cap {
        let s = index + i * 24;
        let (no, ns) = (u32_at(s), u16::from_le_bytes([d[s + 4], d[s + 5]]) as usize);
        if &d[strings + no..strings + no + ns] == want.as_bytes() {
            return (u64_at(s + 16), u32_at(s + 12));
        }
    }
    panic!("no {want}");
}

#[test]
fn ram_block_token_streams() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(sample("test_file.bin")).unwrap();
    // Block 0 holds the sample's compressed pages: find the first compressed token.
    let (off, size) = bin_block(&data, 0);
    let mut pos = 0;
    let mut compressed = None;
    while pos < size {
        let t = u32::from_le_bytes(data[off + pos..off + pos + 4].try_into().unwrap());
        match t {
            0xFFFF_FFFF => break,
            0xFFFF_FFFE => pos += 12,
            4096 => pos += 4 + 4096,
            1..=4095 => {
                compressed.get_or_insert(pos);
                pos += 4 + t as usize;
            }
            _ => panic!("unexpected token"),
        }
    }
    let first = compressed.unwrap();
    std::fs::copy(sample("test_file.vsv"), dir.path().join("test_file.vsv")).unwrap();
    // A compressed page whose length field claims more bytes: decodes wrong or runs on.
    let p = patched(dir.path(), "test_file.bin", |d| {
        put_u32(d, off + first, 4095);
    });
    let state = SavedState::open(dir.path().join("test_file.vsv")).unwrap();
    assert_eq!(state.files()[1], p);
    let mut block = vec![0u8; vm2dmp::hyperv::BLOCK_SIZE];
    let e = state.decode_block(0, &mut block).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("RAM block token stream") && msg.contains("test_file.bin"),
        "{msg}"
    );
    // An invalid token value.
    patched(dir.path(), "test_file.bin", |d| put_u32(d, off + first, 0));
    let state = SavedState::open(dir.path().join("test_file.vsv")).unwrap();
    let e = state.decode_block(0, &mut block).unwrap_err();
    assert!(
        e.to_string().contains(&format!("{:#x}", off + first)),
        "{e}"
    );
    let mut twelve = [0u8; 12];
    assert!(state.read_phys(0xC0FFE, &mut twelve).is_err());
    assert!(state.encoding_stats().is_err());
    // The end token removed: the stream runs on into the next value.
    let (off1, size1) = bin_block(&data, 1);
    patched(dir.path(), "test_file.bin", |d| {
        put_u32(d, off1 + size1 - 4, 0xFFFF_FFFE)
    });
    let state = SavedState::open(dir.path().join("test_file.vsv")).unwrap();
    assert!(state.decode_block(1, &mut block).is_err());
}

#[test]
fn legacy_container_fields() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(sample("test_file.bin"), dir.path().join("test_file.bin")).unwrap();
    // Index offset far past the end.
    let p = patched(dir.path(), "test_file.vsv", |d| {
        put_u64(d, 16, u64::MAX - 10)
    });
    expect_corrupt(&p, "legacy container header", Some(0));
    // Index capacity that overflows the file.
    let p = patched(dir.path(), "test_file.vsv", |d| put_u32(d, 12, u32::MAX));
    expect_corrupt(&p, "legacy container header", Some(0));
    // Wrong version.
    let p = patched(dir.path(), "test_file.vsv", |d| put_u32(d, 4, 0x600));
    assert!(matches!(
        SavedState::open(&p).unwrap_err(),
        Error::Unsupported { .. }
    ));
    // A slot whose value lies outside the file.
    let p = patched(dir.path(), "test_file.vsv", |d| {
        let index = 0x8A2000;
        let slot = (0..1024)
            .map(|i| index + i * 24)
            .find(|&s| u32::from_le_bytes(d[s + 8..s + 12].try_into().unwrap()) != 0)
            .unwrap();
        put_u64(d, slot + 16, 0x7FFF_FFFF_FFFF);
    });
    expect_corrupt(&p, "legacy index slot", None);
}

/// Makes the sample's stale replay-log entries pending again: `pending` entries, log header CRC
/// fixed.
fn set_pending(d: &mut [u8], pending: u32) {
    put_u32(d, LOG + 8, pending);
    fix_crc(d, LOG, 34, 4);
}

#[test]
fn dirty_file_is_replayed_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Entry 0 of the log restores the key table at 0x3000. Damage the table in the file body
    // and mark the entries pending: the file reads correctly only through the replay.
    let p = patched(dir.path(), VMRS, |d| {
        d[0x3000 + 0x100] ^= 0xFF;
        set_pending(d, 11);
    });
    let before = std::fs::read(&p).unwrap();
    let state = SavedState::open(&p).unwrap();
    let r = state.replay_log();
    assert_eq!((r.pending_entries, r.replayed), (11, true));
    let mut buf = [0u8; 12];
    state.read_phys(0xC0FFE, &mut buf).unwrap();
    assert_eq!(&buf[..4], &75826887u32.to_le_bytes());
    // The input file is never modified.
    assert_eq!(std::fs::read(&p).unwrap(), before);
    // Without replay the damaged body shows.
    let e = SavedState::open_with(
        &p,
        &OpenOptions {
            no_replay: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("key table"), "{e}");
    // A pending entry whose data checksum is wrong is an error, not silently skipped.
    let p = patched(dir.path(), VMRS, |d| {
        set_pending(d, 1);
        d[LOG + 0x1000 + 5] ^= 1;
    });
    expect_corrupt(&p, "replay log data", Some((LOG + 0x1000) as u64));
    // More pending entries than the header area holds.
    let p = patched(dir.path(), VMRS, |d| set_pending(d, 1000));
    expect_corrupt(&p, "replay log header", Some(LOG as u64));
}

/// Copies are seen with the unused tail of the replay log cut off (real `.vmrs` / `.vmcx`
/// files trimmed to their last object): such a file opens, and says so, as long as the log
/// header and any pending entry are inside it. A pending entry whose data was cut off is an
/// error.
#[test]
fn replay_log_region_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(sample(VMRS)).unwrap();
    // Cut inside the log's data area: the header area (0x1000 bytes) stays.
    let p = dir.path().join("trimmed.vmrs");
    std::fs::write(&p, &full[..LOG + 0x1000 + 0x24]).unwrap();
    let state = SavedState::open(&p).unwrap();
    let r = state.replay_log();
    assert_eq!((r.pending_entries, r.region_past_end), (0, true));
    let mut buf = [0u8; 12];
    state.read_phys(0xC0FFE, &mut buf).unwrap();
    assert_eq!(&buf[..4], &75826887u32.to_le_bytes());
    assert!(
        !SavedState::open(sample(VMRS))
            .unwrap()
            .replay_log()
            .region_past_end
    );
    // The same cut with entries pending: their data is gone.
    let mut d = full[..LOG + 0x1000 + 0x24].to_vec();
    set_pending(&mut d, 11);
    std::fs::write(&p, &d).unwrap();
    let e = SavedState::open(&p).unwrap_err().to_string();
    assert!(e.contains("replay log data"), "{e}");
    // Cut inside the log header itself: an error naming the log.
    std::fs::write(&p, &full[..LOG + 20]).unwrap();
    let e = SavedState::open(&p).unwrap_err().to_string();
    assert!(e.contains("replay log"), "{e}");
}
