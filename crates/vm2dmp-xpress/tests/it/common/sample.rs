//! Extraction of the compressed pages of the real Hyper-V sample
//! (`testdata/hyperv-sample/test_file.bin`, legacy container).

use std::path::PathBuf;

/// Path of the sample, relative to this crate's manifest.
pub fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/hyperv-sample/test_file.bin")
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// One compressed page token of a `RamBlock/<n>/` value.
#[allow(dead_code)]
pub struct CompressedPage {
    /// Block number (from the value's name).
    pub block: u32,
    /// Page index inside the block.
    pub page: u32,
    /// The Plain LZ77 payload.
    pub data: Vec<u8>,
}

/// Reads the sample and returns every compressed page of every RAM block,
/// sorted by block and page.
pub fn compressed_pages() -> Vec<CompressedPage> {
    let path = sample_path();
    let file =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(u32_at(&file, 0), 0x0218_2003, "signature");
    assert_eq!(u32_at(&file, 4), 0x500, "version");
    let capacity = u32_at(&file, 12) as usize;
    let index = u64_at(&file, 16) as usize;
    let strings = u64_at(&file, 24) as usize;

    let mut pages = Vec::new();
    for slot in 0..capacity {
        let s = &file[index + slot * 24..index + slot * 24 + 24];
        if s.iter().all(|&b| b == 0) {
            continue;
        }
        let name_off = u32_at(s, 0) as usize;
        let name_size = u16_at(s, 4) as usize;
        let allocated = u32_at(s, 8);
        let size = u32_at(s, 12) as usize;
        let offset = u64_at(s, 16) as usize;
        let raw_name = &file[strings + name_off..strings + name_off + name_size];
        let name = std::str::from_utf8(raw_name)
            .unwrap()
            .trim_end_matches('\0');
        let Some(block) = name
            .strip_prefix("RamBlock/")
            .and_then(|r| r.strip_suffix('/'))
        else {
            continue;
        };
        let block: u32 = block.parse().unwrap();
        assert_ne!(allocated, 0, "{name} is stored inline");
        let value = &file[offset..offset + size];
        walk_block(block, value, &mut pages);
    }
    pages.sort_by_key(|p| (p.block, p.page));
    pages
}

fn walk_block(block: u32, v: &[u8], pages: &mut Vec<CompressedPage>) {
    let mut i = 0;
    let mut page = 0u32;
    loop {
        let t = u32_at(v, i);
        i += 4;
        match t {
            0xFFFF_FFFF => break,
            0xFFFF_FFFE => {
                i += 8;
                page += 1;
            }
            0xFFFF_FFFD => {
                let count = u32_at(v, i + 8);
                i += 12;
                page += count;
            }
            0xFFFF_FFFC => {
                let out_len = u32_at(v, i);
                let in_len = u32_at(v, i + 4) as usize;
                i += 8 + in_len;
                page += out_len / 4096;
            }
            4096 => {
                i += 4096;
                page += 1;
            }
            1..=4095 => {
                let len = t as usize;
                pages.push(CompressedPage {
                    block,
                    page,
                    data: v[i..i + len].to_vec(),
                });
                i += len;
                page += 1;
            }
            _ => panic!("block {block}: invalid token {t:#x} at {}", i - 4),
        }
    }
    assert_eq!(page, 256, "block {block} page count");
}
