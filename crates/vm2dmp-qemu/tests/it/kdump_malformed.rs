//! Broken kdump-compressed files: each gives Error::Corrupt naming the structure and offset
//! (or Unsupported), never a panic.

use vm2dmp_source::{Error, MemorySource, MAX_CHUNK_PAGES, PAGE_SIZE};
use vm2dmp_synth::kdump_file::{kdump_bytes, KdumpCompression, KdumpSpec};

use crate::kdump_common::{build, corrupt, decode_all, open};

fn small(compression: KdumpCompression, flattened: bool) -> KdumpSpec {
    KdumpSpec {
        ranges: vec![(0, 12), (20, 8), (0x10_0000, 5)],
        compression,
        flattened,
        flat_record_size: 1000,
        ..KdumpSpec::default()
    }
}

fn put(bytes: &mut [u8], at: u64, v: &[u8]) {
    bytes[at as usize..at as usize + v.len()].copy_from_slice(v);
}

#[test]
fn truncated_header() {
    let (bytes, _) = kdump_bytes(&small(KdumpCompression::Zlib, false));
    let (s, off, _) = corrupt(open(bytes[..300].to_vec()));
    assert_eq!((s, off), ("disk_dump_header", 0));
    let (s, off, _) = corrupt(open(bytes[..4150].to_vec()));
    assert_eq!((s, off), ("kdump_sub_header", 4096));
}

#[test]
fn bad_signature_block_size_and_machine() {
    let (bytes, _) = kdump_bytes(&small(KdumpCompression::Zlib, false));
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(corrupt(open(b)).0, "disk_dump_header");
    let mut b = bytes.clone();
    put(&mut b, 428, &8192u32.to_le_bytes());
    assert!(matches!(open(b), Err(Error::Unsupported { .. })));
    let mut b = bytes.clone();
    put(&mut b, 272, b"aarch64\0");
    assert!(matches!(open(b), Err(Error::Unsupported { .. })));
    let mut b = bytes;
    put(&mut b, 8, &6u32.to_be_bytes());
    assert!(matches!(open(b), Err(Error::Unsupported { .. })));
}

#[test]
fn bitmap_beyond_eof() {
    let (mut bytes, layout) = kdump_bytes(&small(KdumpCompression::Zlib, false));
    put(&mut bytes, 436, &100_000u32.to_le_bytes());
    let (s, off, _) = corrupt(open(bytes));
    assert_eq!((s, off), ("dump bitmap", layout.bitmap));
}

#[test]
fn huge_max_mapnr() {
    let (mut bytes, _) = kdump_bytes(&small(KdumpCompression::Zlib, false));
    put(&mut bytes, 4096 + 96, &u64::MAX.to_le_bytes());
    let (s, off, _) = corrupt(open(bytes));
    assert_eq!((s, off), ("kdump_sub_header", 4096 + 96));
}

#[test]
fn descriptors_beyond_eof() {
    let (bytes, layout) = kdump_bytes(&small(KdumpCompression::Zlib, false));
    let cut = layout.descriptors as usize + 30;
    let (s, off, _) = corrupt(open(bytes[..cut].to_vec()));
    assert_eq!((s, off), ("page descriptor table", layout.descriptors));
}

#[test]
fn descriptor_offset_beyond_eof() {
    for flattened in [false, true] {
        let spec = small(KdumpCompression::Zlib, false);
        let (mut bytes, layout) = kdump_bytes(&spec);
        // pfn 1 (pfn 0 is a zero page): its data offset far past the end.
        let desc = layout.pages[1].1;
        let past_end = bytes.len() as u64 + 10;
        put(&mut bytes, desc, &past_end.to_le_bytes());
        let bytes = if flattened { flatten(&bytes) } else { bytes };
        let k = open(bytes).unwrap();
        let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
        let (s, off, detail) = corrupt(k.decode_chunk(0, &mut buf));
        assert_eq!((s, off), ("page descriptor", desc), "{detail}");
        let (s, off, _) = corrupt(k.read_phys(0x1000, &mut [0u8; 4]));
        assert_eq!((s, off), ("page descriptor", desc));
    }
}

/// The plain bytes as one flattened record.
fn flatten(plain: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 4096];
    f[..12].copy_from_slice(b"makedumpfile");
    f[16..24].copy_from_slice(&1i64.to_be_bytes());
    f[24..32].copy_from_slice(&1i64.to_be_bytes());
    f.extend(0i64.to_be_bytes());
    f.extend((plain.len() as i64).to_be_bytes());
    f.extend(plain);
    f.extend((-1i64).to_be_bytes());
    f.extend((-1i64).to_be_bytes());
    f
}

#[test]
fn bombs_and_wrong_sizes_name_the_descriptor() {
    let zlib = |n: usize| KdumpCompression::Zlib.compress(&vec![0x41; n]);
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("zlib 8 KiB", zlib(8192), 0x1),
        ("zlib 1 MiB", zlib(1 << 20), 0x1),
        ("zlib short", zlib(100), 0x1),
        ("zlib garbage", vec![0x78, 0x9c, 0xff, 0xff], 0x1),
        (
            "lzo 8 KiB",
            KdumpCompression::Lzo.compress(&[7u8; 8192]),
            0x2,
        ),
        (
            "lzo short",
            KdumpCompression::Lzo.compress(&[7u8; 100]),
            0x2,
        ),
        (
            "snappy 8 KiB",
            KdumpCompression::Snappy.compress(&[7u8; 8192]),
            0x4,
        ),
        (
            "snappy short",
            KdumpCompression::Snappy.compress(&[7u8; 4000]),
            0x4,
        ),
        (
            "zstd 1 MiB",
            KdumpCompression::Zstd.compress(&vec![0u8; 1 << 20]),
            0x20,
        ),
        (
            "zstd short",
            KdumpCompression::Zstd.compress(&[1u8; 10]),
            0x20,
        ),
        (
            "zstd garbage",
            vec![0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff],
            0x20,
        ),
        ("two flags", zlib(4096), 0x3),
        ("unknown flag", zlib(4096), 0x40),
        ("raw short", vec![1u8; 100], 0x0),
        ("compressed too large", vec![1u8; 3 * 4096], 0x1),
    ];
    for (what, data, flags) in cases {
        let s = KdumpSpec {
            ranges: vec![(0, 4)],
            stored_of: Some(Box::new(move |pfn| {
                (pfn == 2).then(|| (data.clone(), flags))
            })),
            ..KdumpSpec::default()
        };
        let (k, _, layout) = build(&s);
        let desc = layout.pages[2].1;
        let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
        let (st, off, detail) = corrupt(k.decode_chunk(0, &mut buf));
        assert_eq!((st, off), ("page descriptor", desc), "{what}: {detail}");
    }
}

fn flat_with_record(offset: i64, size: i64, data_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 4096];
    f[..12].copy_from_slice(b"makedumpfile");
    f[16..24].copy_from_slice(&1i64.to_be_bytes());
    f[24..32].copy_from_slice(&1i64.to_be_bytes());
    f.extend(offset.to_be_bytes());
    f.extend(size.to_be_bytes());
    f.extend(vec![0u8; data_len]);
    f.extend((-1i64).to_be_bytes());
    f.extend((-1i64).to_be_bytes());
    f
}

#[test]
fn flattened_record_errors() {
    for (offset, size, data) in [
        (i64::MAX - 5, 100, 100),
        (-5, 100, 100),
        (0, -2, 0),
        (0, 1 << 40, 10),
    ] {
        let (s, off, detail) = corrupt(open(flat_with_record(offset, size, data)));
        assert_eq!((s, off), ("flattened record header", 4096), "{detail}");
    }
    // A record header cut short.
    let mut f = flat_with_record(0, 10, 10);
    f.truncate(4096 + 16 + 10 + 5);
    let (s, off, _) = corrupt(open(f));
    assert_eq!((s, off), ("flattened record header", 4096 + 26));
    // Flattened header shorter than 4096 bytes.
    let f = flat_with_record(0, 10, 10);
    assert_eq!(corrupt(open(f[..2000].to_vec())).0, "flattened header");
    // Records that hold no kdump header: the header read fails inside the plain file.
    let (s, off, _) = corrupt(open(flat_with_record(0, 100, 100)));
    assert_eq!((s, off), ("disk_dump_header", 0));
}

/// Every prefix and many single-byte flips of small valid files: errors, never panics.
#[test]
fn truncation_and_flips_never_panic() {
    for compression in [
        KdumpCompression::Zlib,
        KdumpCompression::Lzo,
        KdumpCompression::Snappy,
        KdumpCompression::Zstd,
        KdumpCompression::Raw,
    ] {
        for flattened in [false, true] {
            let (bytes, _) = kdump_bytes(&small(compression, flattened));
            let step = (bytes.len() / 400).max(1);
            for len in (0..bytes.len()).step_by(step) {
                if let Ok(k) = open(bytes[..len].to_vec()) {
                    let _ = decode_all(&k);
                }
            }
            for (i, at) in (0..bytes.len()).step_by(step.max(3) / 3 + 1).enumerate() {
                let mut b = bytes.clone();
                b[at] ^= [0x01, 0x80, 0xFF][i % 3];
                if let Ok(k) = open(b) {
                    let _ = decode_all(&k);
                    let mut one = [0u8; 64];
                    let _ = k.read_phys(0x1_0000_0000, &mut one);
                }
            }
        }
    }
}
