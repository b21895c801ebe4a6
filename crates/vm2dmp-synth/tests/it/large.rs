//! Large guests: streamed and small on disk (how fast they are written is a benchmark's
//! business, not a test's).

use std::time::Instant;

use crate::common::*;
use vm2dmp_synth::*;

fn guest_5gib() -> SynthVm {
    // 3 GiB below the MMIO gap, 2 GiB from 4 GiB.
    let mut pages = SparsePages::new();
    pages.write(0x1000, b"low page");
    pages.write((4 << 30) + 0x5000, b"above 4 GiB");
    pages.fill_pattern((6 << 18) - 1, 0xDEAD_BEEF_0000_0001); // last page of RAM
    SynthVm::with_ram_split(5120).with_pages(pages)
}

#[test]
fn five_gib_token_stream_guest_is_small() {
    let vm = guest_5gib();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.vmrs");
    let layout = write_vmrs(&vm, &path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 25 << 20, "{size} bytes");
    assert_eq!(layout.ram_blocks.len(), 5120);
    assert_eq!(layout.memory_map.len(), 2);
    assert_eq!(layout.memory_map[1].mbp_index_start, 3072 * 256);
    assert_eq!(layout.memory_map[1].range.gpa_page_start, 4096 * 256);

    let h = Hvs::parse(&std::fs::read(&path).unwrap()).unwrap();
    let mut s = Seen::default();
    let b = decode_block(&h.value("/savedstate/RamBlock3072"), &mut s).unwrap();
    assert_eq!(&b[0x5000..0x5000 + 11], b"above 4 GiB");
    let b = decode_block(&h.value("/savedstate/RamBlock5119"), &mut s).unwrap();
    assert_eq!(
        &b[0xFF000..0xFF008],
        &0xDEAD_BEEF_0000_0001u64.to_le_bytes()
    );
    let b = decode_block(&h.value("/savedstate/RamBlock0"), &mut s).unwrap();
    assert_eq!(&b[0x1000..0x1008], b"low page");
    assert!(h.object_tables.len() > 10);
}

#[test]
fn five_gib_raw_block_guest_is_sparse() {
    let mut vm = guest_5gib();
    vm.encoding = BlockEncoding::RawBlock;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.vmrs");
    let layout = write_vmrs(&vm, &path).unwrap();
    let m = std::fs::metadata(&path).unwrap();
    assert!(m.len() > 5 << 30);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert!(
            m.blocks() * 512 < 64 << 20,
            "{} bytes on disk",
            m.blocks() * 512
        );
    }
    let rb = &layout.ram_blocks[3072];
    assert!(rb.raw && !rb.hole);
    assert!(layout.ram_blocks[10].hole);
    let v = corrupt::read_bytes(&path, rb.value_offset + 0x5000, 11).unwrap();
    assert_eq!(v, b"above 4 GiB");
    // The key tables and object tables were written after the data and are valid.
    let k = layout.key("/savedstate/RamBlock3072");
    let e = corrupt::read_bytes(&path, k.entry_offset, k.entry_size as usize).unwrap();
    assert_eq!(e[0], 7);
    assert_eq!(e[1], 1);
    assert_eq!(
        corrupt::get_u64(&path, k.stored_offset + 4).unwrap(),
        rb.value_offset
    );
}

/// 16 GiB guest; run with `cargo test -p vm2dmp-synth --release -- --ignored`.
#[test]
#[ignore]
fn sixteen_gib_guest() {
    let vm = SynthVm::with_ram_split(16 * 1024).with_pages(MixedContent { seed: 9 });
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let layout = write_vmrs(&vm, dir.path().join("16g.vmrs")).unwrap();
    eprintln!("16 GiB: {} bytes in {:?}", layout.file_size, t.elapsed());
    assert_eq!(layout.ram_blocks.len(), 16 * 1024);
}
