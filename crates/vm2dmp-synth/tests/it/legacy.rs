//! Structural tests of the legacy `.vsv` + `.bin` writer.

use crate::common::*;
use vm2dmp_synth::*;

struct Pair {
    _dir: tempfile::TempDir,
    vsv: std::path::PathBuf,
    bin: std::path::PathBuf,
    layout: SynthLayout,
}

fn write(vm: &SynthVm) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let vsv = dir.path().join("t.vsv");
    let bin = dir.path().join("t.bin");
    let layout = write_vsv_bin(vm, &vsv, &bin).unwrap();
    Pair {
        _dir: dir,
        vsv,
        bin,
        layout,
    }
}

fn parse(p: &std::path::Path) -> Legacy {
    Legacy::parse(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn sample_shape_pair() {
    let vm = SynthVm::sample_shape();
    let p = write(&vm);
    let bin = parse(&p.bin);
    let vsv = parse(&p.vsv);
    assert_eq!(bin.capacity, 1024);
    assert_eq!(bin.slots.len(), 252);
    let raw = std::fs::read(&p.bin).unwrap();
    for n in 0..252u64 {
        let (ty, v) = &bin.map[&format!("RamBlock/{n}/")];
        assert_eq!(*ty, 1);
        let mut s = Seen::default();
        assert!(decode_block(v, &mut s).unwrap() == expected_block(&vm, n));
        let k = p.layout.key(&format!("RamBlock/{n}/"));
        assert_eq!(k.file, FileRole::Bin);
        let (off, alloc) = k.object.unwrap();
        assert_eq!(off % 4096, 0);
        assert_eq!(alloc, k.value_size.div_ceil(4096) * 4096);
        assert_eq!(&raw[off as usize..(off + k.value_size) as usize], &v[..]);
    }
    // The first value starts at 0x1000; values are contiguous in slot order.
    let mut offs: Vec<(u64, u64)> = bin
        .slots
        .iter()
        .map(|(n, _, _)| p.layout.key(n).object.unwrap())
        .collect();
    assert_eq!(offs[0].0, 0x1000);
    offs.sort();
    for w in offs.windows(2) {
        assert_eq!(w[0].0 + w[0].1, w[1].0);
    }
    let bl = p.layout.bin.unwrap();
    assert_eq!(bl.index_offset, offs.last().map(|o| o.0 + o.1).unwrap());
    assert_eq!(bl.strings_offset, bl.index_offset + 1024 * 24);
    assert_eq!(bl.size, bl.strings_offset + 0x4000);
    assert_eq!(raw.len() as u64, bl.size);

    // .vsv
    assert_eq!(
        utf16_string(vsv.value("/savedstate/VmwpVersion")),
        "10.0.18301.1044 (WinBuild.160101.0800)"
    );
    assert_eq!(vsv.map["/savedstate/VmwpVersion"].0, 5);
    let mm = vsv.value("RamMemoryBlock/0/");
    assert_eq!(mm.len(), 48);
    assert_eq!(u64::from_le_bytes(mm[8..16].try_into().unwrap()), 64_512);
    assert_eq!(vsv.int("/savedVM/topology/low_mmio_gap_mb"), 128);
    assert_eq!(vsv.int("/savedVM/topology/high_mmio_gap_mb"), 512);
    let part = parse_partition(vsv.value("/savedVM/partition_state")).unwrap();
    assert_eq!(part.vp_order, vec![0, 1, 2, 3]);
    for vp in &vm.vps {
        assert_regs(&part.regs[&(vp.index, 0)], &vp.vtl0);
    }
    // Internal data table.
    let (b, e, u) = p.layout.vsv.unwrap().data_table.unwrap();
    assert_eq!(vsv.int("InternalDataTableBegins") as u64, b);
    assert_eq!(vsv.int("InternalDataTableEnds") as u64, e);
    assert_eq!(vsv.int("InternalDataTableUsedBytes") as u64, u);
    assert_eq!(e % 4096, 0);
    assert_eq!(p.layout.vsv.unwrap().index_offset, e);
    let mut inside = 0;
    for (name, _, _) in &vsv.slots {
        let k = p.layout.key(name);
        if let Some((off, alloc)) = k.object {
            if off >= b && off < e {
                inside += alloc;
                assert!(off + alloc <= b + u);
            } else {
                assert!(off + alloc <= b && off % 4096 == 0, "{name}");
            }
        } else {
            assert!(k.value_size <= 8);
        }
    }
    assert_eq!(inside, u);
}

#[test]
fn key_sets_match_the_real_sample_pair() {
    let rb = parse(&sample_path("test_file.bin"));
    let rv = parse(&sample_path("test_file.vsv"));
    assert_eq!(rb.slots.len(), 252);
    assert_eq!(rv.slots.len(), 117);
    let p = write(&SynthVm::sample_shape());
    let ob = parse(&p.bin);
    let ov = parse(&p.vsv);
    let names = |l: &Legacy| {
        l.map
            .iter()
            .map(|(n, (t, _))| (n.clone(), *t))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(names(&rb), names(&ob));
    let (r, o) = (names(&rv), names(&ov));
    for (n, t) in &o {
        assert_eq!(r.get(n), Some(t), "{n}");
    }
    for n in r.keys() {
        if !n.starts_with("/configuration/") {
            assert!(o.contains_key(n), "{n} missing");
        }
    }
    // Inline vs allocated: same decision for the shared keys.
    for n in o.keys() {
        assert_eq!(rv.value(n).len() <= 8, ov.value(n).len() <= 8, "{n}");
    }
    assert_eq!(rv.value("RamMemoryBlock/0/"), ov.value("RamMemoryBlock/0/"));
    // Chunk sequence of the .vsv partition_state (201 chunks for 4 VPs).
    let a = parse_partition(rv.value("/savedVM/partition_state")).unwrap();
    let b = parse_partition(ov.value("/savedVM/partition_state")).unwrap();
    assert_eq!(a.chunk_count, 201);
    assert_eq!(a.ids, b.ids);
    // The real zero blocks are identical to ours.
    assert_eq!(rb.value("RamBlock/100/"), ob.value("RamBlock/100/"));
    // The real index is at the end of the data, strings after it.
    assert_eq!(rb.strings_offset, rb.index_offset + 1024 * 24);
}

#[test]
fn index_grows_for_large_guests_and_raw_blocks_are_holes() {
    let mut vm = SynthVm::with_ram_split(1500);
    vm.encoding = BlockEncoding::RawBlock;
    let mut pages = SparsePages::new();
    pages.write(0x1234_5678, b"not a hole");
    vm = vm.with_pages(pages);
    let p = write(&vm);
    let bin = parse(&p.bin);
    assert_eq!(bin.capacity, 2048);
    assert_eq!(bin.slots.len(), 1500);
    let bl = p.layout.bin.unwrap();
    assert!(bl.strings_allocated > 0x4000);
    let block = 0x1234_5678u64 >> 20;
    let v = bin.value(&format!("RamBlock/{block}/"));
    assert_eq!(v.len(), 1 << 20);
    assert_eq!(&v[0x4_5678..0x4_5678 + 10], b"not a hole");
    assert!(p.layout.ram_blocks[block as usize].raw && !p.layout.ram_blocks[block as usize].hole);
    assert!(p.layout.ram_blocks[0].hole);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&p.bin).unwrap();
        assert!(m.len() > 1500 << 20);
        assert!(
            m.blocks() * 512 < 64 << 20,
            "{} bytes allocated",
            m.blocks() * 512
        );
    }
}

#[test]
fn explicit_capacity_and_omitted_keys() {
    let mut vm = SynthVm::with_ram_mib(8);
    vm.legacy.bin_index_capacity = Some(16);
    vm.legacy.vsv_index_capacity = Some(4096);
    vm.legacy.omit_bin_keys = vec!["RamBlock/3/".into()];
    vm.legacy.omit_vsv_keys = vec!["/savedVM/partition_state".into()];
    vm.legacy.extra_vsv_keys = vec![("/savedVM/extra".into(), KeyValue::Uint(7))];
    vm.legacy.vram_bytes = 0;
    let p = write(&vm);
    let bin = parse(&p.bin);
    let vsv = parse(&p.vsv);
    assert_eq!(bin.capacity, 16);
    assert_eq!(vsv.capacity, 4096);
    assert!(!bin.map.contains_key("RamBlock/3/"));
    assert_eq!(bin.slots.len(), 7);
    assert!(!vsv.map.contains_key("/savedVM/partition_state"));
    assert_eq!(vsv.int("/savedVM/extra"), 7);
}

#[test]
fn mixed_encoding_and_split_ranges_decode() {
    let vm = SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 2 * 256 + 1,
        },
        SynthRange {
            gpa_page_start: 0x10_0000,
            page_count: 300,
        },
    ])
    .with_pages(MixedContent { seed: 3 })
    .with_encoding(BlockEncoding::Tokens(PagePolicy::Mixed));
    let p = write(&vm);
    let bin = parse(&p.bin);
    let vsv = parse(&p.vsv);
    assert_eq!(bin.slots.len(), 5);
    for n in 0..5 {
        let mut s = Seen::default();
        let got = decode_block(bin.value(&format!("RamBlock/{n}/")), &mut s).unwrap();
        assert!(got == expected_block(&vm, n));
    }
    let m1 = vsv.value("RamMemoryBlock/1/");
    assert_eq!(u64::from_le_bytes(m1[16..24].try_into().unwrap()), 3 * 256);
    assert_eq!(
        u64::from_le_bytes(m1[24..32].try_into().unwrap()),
        0x10_0000
    );
}

#[test]
fn corrupting_a_slot() {
    let p = write(&SynthVm::with_ram_mib(2));
    let k = p.layout.key("/savedVM/partition_state").clone();
    // Value size beyond its allocation.
    corrupt::set_u32(&p.vsv, k.entry_offset + 12, k.object.unwrap().1 as u32 + 1).unwrap();
    assert!(Legacy::parse(&std::fs::read(&p.vsv).unwrap()).is_err());
    // Truncating the string table.
    let l = p.layout.bin.unwrap();
    corrupt::truncate(&p.bin, l.strings_offset + 10).unwrap();
    assert!(Legacy::parse(&std::fs::read(&p.bin).unwrap()).is_err());
}
