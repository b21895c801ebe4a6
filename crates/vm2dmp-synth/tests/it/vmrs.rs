//! Structural tests of the `.VMRS` writer, checked with an independent walker.

use std::collections::BTreeMap;

use crate::common::*;
use vm2dmp_synth::*;

fn write(vm: &SynthVm) -> (tempfile::TempDir, std::path::PathBuf, SynthLayout) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.vmrs");
    let layout = write_vmrs(vm, &path).unwrap();
    (dir, path, layout)
}

fn parse(path: &std::path::Path) -> Result<Hvs, String> {
    Hvs::parse(&std::fs::read(path).unwrap())
}

#[test]
fn sample_shape_parses_and_matches_layout() {
    let vm = SynthVm::sample_shape();
    let (_d, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    assert_eq!(h.active_copy, 0);
    assert_eq!(h.sequence, 7);
    assert_eq!(h.alignment, 4096);
    assert_eq!(h.pending_replayed, 0);
    assert!(h.stale_entries >= 2);
    assert_eq!(h.int("/savedstate/VmVersion"), 0x900);
    assert_eq!(h.int("/configuration/properties/version"), 0x900);
    assert_eq!(h.string("/savedstate/type"), "Normal");
    assert_eq!(
        h.string("/savedstate/VmwpVersion"),
        "10.0.18301.1044 (WinBuild.160101.0800)"
    );
    assert_eq!(h.int("/savedstate/savedVM/topology/low_mmio_gap_mb"), 128);
    assert_eq!(h.int("/savedstate/savedVM/topology/high_mmio_gap_mb"), 512);
    let mm = h.value("/savedstate/RamMemoryBlock0");
    assert_eq!(mm.len(), 48);
    assert_eq!(u32::from_le_bytes(mm[0..4].try_into().unwrap()), 3);
    assert_eq!(u64::from_le_bytes(mm[8..16].try_into().unwrap()), 64_512);
    assert_eq!(u64::from_le_bytes(mm[16..24].try_into().unwrap()), 0);
    assert_eq!(u64::from_le_bytes(mm[24..32].try_into().unwrap()), 0);
    assert!(h.key("/savedstate/RamMemoryBlock1").is_err());
    for n in 0..252 {
        assert!(h.key(&format!("/savedstate/RamBlock{n}")).is_ok());
    }
    assert!(h.key("/savedstate/RamBlock252").is_err());
    // Every key of the layout is where the walker found it, and the values agree.
    let file = std::fs::read(&path).unwrap();
    for k in &h.keys {
        if k.path.contains("devicetype") {
            continue; // repeated names carry a suffix in the layout
        }
        let l = layout.key(&k.path);
        assert_eq!(l.entry_offset, k.file_offset, "{}", k.path);
        assert_eq!(l.value_type, k.ty);
        assert_eq!(l.flags, k.flags);
        assert_eq!(l.insertion_sequence, k.insertion);
        assert_eq!(l.table_index, k.table_index);
        assert_eq!(l.table_offset, k.table_offset);
        let v = &file[l.value_offset as usize..(l.value_offset + l.value_size) as usize];
        assert_eq!(v, &k.value[..], "{}", k.path);
    }
    assert_eq!(h.keys.len(), layout.keys.len());
    // Object tables and key tables agree with the layout.
    assert_eq!(
        h.object_tables,
        layout
            .object_tables
            .iter()
            .map(|t| (t.offset, t.size))
            .collect::<Vec<_>>()
    );
    let kt: Vec<(u16, u64)> = layout
        .key_tables
        .iter()
        .map(|t| (t.index, t.offset))
        .collect();
    assert_eq!(
        kt,
        h.key_tables
            .iter()
            .map(|(&i, &(o, _))| (i, o))
            .collect::<Vec<_>>()
    );
    assert_eq!(layout.file_size, file.len() as u64);
    // partition_state
    let p = parse_partition(&h.value("/savedstate/savedVM/partition_state")).unwrap();
    assert_eq!(p.vp_order, vec![0, 1, 2, 3]);
    assert_eq!(p.vp_bitmap, 0xF);
    assert_eq!(p.vp_count_item, Some(4));
    assert_eq!(p.vendor, 1);
    assert_eq!(&p.prolog_tag, &[0x50, 0x54, 0x75, 0x64]);
    assert_eq!(p.header_size, 0x1040);
    for vp in &vm.vps {
        assert_regs(&p.regs[&(vp.index, 0)], &vp.vtl0);
    }
    assert_eq!(p.total_size, layout.partition.total_size);
    assert_eq!(
        h.value("/savedstate/savedVM/partition_state").len() as u64,
        p.total_size + 32
    );
}

#[test]
fn sample_shape_key_set_matches_the_real_sample() {
    let real = Hvs::parse(&std::fs::read(sample_path("test_file.VMRS")).unwrap())
        .expect("the walker reads the real sample");
    assert_eq!(real.keys.len(), 475);
    assert_eq!(real.free_entries, 3);
    let (_d, path, _layout) = write(&SynthVm::sample_shape());
    let ours = parse(&path).unwrap();

    let by_path = |h: &Hvs| -> BTreeMap<String, Vec<(u8, u8)>> {
        let mut m: BTreeMap<String, Vec<(u8, u8)>> = BTreeMap::new();
        for k in &h.keys {
            m.entry(k.path.clone()).or_default().push((k.ty, k.flags));
        }
        m
    };
    let rm = by_path(&real);
    let om = by_path(&ours);
    // Every key we write exists in the real file with the same type and flags.
    for (p, kinds) in &om {
        let r = rm
            .get(p)
            .unwrap_or_else(|| panic!("{p} is not in the real sample"));
        for k in kinds {
            assert!(r.contains(k), "{p}: ours {k:?}, real {r:?}");
        }
    }
    // Every key of the real file outside device state exists in ours.
    for p in rm.keys() {
        if p.starts_with("/savedstate/configuration/") || p.starts_with("/configuration/") {
            continue;
        }
        assert!(om.contains_key(p), "{p} missing from the synthetic file");
    }
    // Same insertion order under /savedstate, same value sizes for the fixed keys.
    for p in [
        "/savedstate/VmwpVersion",
        "/savedstate/type",
        "/savedstate/VmVersion",
        "/savedstate/RamMemoryBlock0",
        "/savedstate/configuration",
        "/savedstate/savedVM",
        "/savedstate/savedVM/topology",
        "/savedstate/savedVM/partition_state",
        "/savedstate/savedVM/guest_crash_msrs",
        "/savedstate/savedVM/processor/features/cache/line_flush_size",
    ] {
        let (r, o) = (real.key(p).unwrap(), ours.key(p).unwrap());
        assert_eq!(r.insertion, o.insertion, "{p}");
        if r.flags & 1 == 0 && r.ty != 9 {
            assert_eq!(r.value.len(), o.value.len(), "{p}");
        }
    }
    assert_eq!(
        real.value("/savedstate/RamMemoryBlock0"),
        ours.value("/savedstate/RamMemoryBlock0")
    );
    // Slack conventions: /savedstate leaves carry at least 12 bytes, /configuration none.
    for h in [&real, &ours] {
        let min = |prefix: &str, node: bool| {
            h.keys
                .iter()
                .filter(|k| k.path.starts_with(prefix) && (k.ty == 9) == node)
                .map(|k| k.slack)
                .min()
                .unwrap()
        };
        assert_eq!(min("/savedstate/", false), 12);
        assert_eq!(min("/savedstate/", true), 0);
        assert_eq!(min("/configuration/", false), 0);
    }
    // Same chunk sequence in partition_state (219 chunks for 4 VPs).
    let rp = parse_partition(&real.value("/savedstate/savedVM/partition_state")).unwrap();
    let op = parse_partition(&ours.value("/savedstate/savedVM/partition_state")).unwrap();
    assert_eq!(rp.chunk_count, 219);
    assert_eq!(rp.ids, op.ids);
    assert_eq!(rp.header_size, op.header_size);
    assert_eq!(rp.prolog_tag, op.prolog_tag);
    assert_eq!(rp.vp_bitmap, op.vp_bitmap);
    // Real sample VP 0 segment/table chunks have the same shape as ours.
    assert_eq!(
        rp.regs[&(0, 0)].segments.len(),
        op.regs[&(0, 0)].segments.len()
    );
    assert_eq!(rp.regs[&(0, 0)].control[0], 0x10);
    assert_eq!(op.regs[&(0, 0)].control[0], 0x10);
    assert_eq!(rp.regs[&(1, 0)].control[0], op.regs[&(1, 0)].control[0]);
    // The all-zero RAM blocks are byte-identical to the real ones.
    assert_eq!(
        real.value("/savedstate/RamBlock200"),
        ours.value("/savedstate/RamBlock200")
    );
    // Replay log geometry as in the sample.
    assert_eq!(real.replay_log_size, ours.replay_log_size);
}

#[test]
fn the_walker_decodes_the_real_sample_ram() {
    let real = Hvs::parse(&std::fs::read(sample_path("test_file.VMRS")).unwrap()).unwrap();
    let mut seen = Seen::default();
    let b0 = decode_block(&real.value("/savedstate/RamBlock0"), &mut seen).unwrap();
    // Known answer: three u32 at GPA 0xC0FFE.
    let w = |o: usize| u32::from_le_bytes(b0[o..o + 4].try_into().unwrap());
    assert_eq!(
        [w(0xC0FFE), w(0xC1002), w(0xC1006)],
        [75826887, 1235222542, 3439375364]
    );
    for n in 1..252 {
        decode_block(&real.value(&format!("/savedstate/RamBlock{n}")), &mut seen).unwrap();
    }
    assert_eq!(seen.compressed, 185);
    assert_eq!(seen.raw, 6);
    assert_eq!(seen.fill_one, 64_278 + 43);
}

fn policies() -> Vec<BlockEncoding> {
    use PagePolicy::*;
    vec![
        BlockEncoding::Tokens(HyperV),
        BlockEncoding::Tokens(Auto),
        BlockEncoding::Tokens(Mixed),
        BlockEncoding::Tokens(Raw),
        BlockEncoding::Tokens(Compressed),
        BlockEncoding::Tokens(FillOne),
        BlockEncoding::Tokens(FillRun),
        BlockEncoding::Tokens(MultiPage {
            pages: 16,
            compress: true,
        }),
        BlockEncoding::Tokens(MultiPage {
            pages: 3,
            compress: false,
        }),
        BlockEncoding::RawBlock,
    ]
}

fn check_blocks(vm: &SynthVm, h: &Hvs, layout: &SynthLayout) -> Seen {
    let mut seen = Seen::default();
    assert_eq!(layout.ram_blocks.len() as u64, vm.block_count());
    for (n, rb) in layout.ram_blocks.iter().enumerate() {
        assert_eq!(rb.block, n as u64);
        let v = h.value(&format!("/savedstate/RamBlock{n}"));
        assert_eq!(v.len() as u64, rb.value_size);
        let mut s = Seen::default();
        let got = decode_block(&v, &mut s).unwrap();
        assert!(got == expected_block(vm, n as u64), "block {n} differs");
        let c = &rb.counts;
        assert_eq!(
            (
                s.fill_one,
                s.fill_run,
                s.raw,
                s.compressed,
                s.multi_compressed,
                s.multi_stored,
                s.raw_block
            ),
            (
                c.fill_one,
                c.fill_run,
                c.raw_page,
                c.compressed_page,
                c.multi_compressed,
                c.multi_stored,
                c.raw_blocks
            ),
            "block {n}"
        );
        seen.fill_one += s.fill_one;
        seen.fill_run += s.fill_run;
        seen.raw += s.raw;
        seen.compressed += s.compressed;
        seen.multi_compressed += s.multi_compressed;
        seen.multi_stored += s.multi_stored;
        seen.raw_block += s.raw_block;
    }
    seen
}

fn content_vm(enc: BlockEncoding) -> SynthVm {
    // Two ranges with odd page counts: the second starts on a fresh block.
    let mut vm = SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 3 * 256 + 5,
        },
        SynthRange {
            gpa_page_start: 0x1000,
            page_count: 256 + 17,
        },
    ])
    .with_pages(MixedContent { seed: 7 })
    .with_encoding(enc);
    vm.record_tokens = true;
    vm
}

#[test]
fn every_policy_decodes_to_the_source_pages() {
    for enc in policies() {
        let vm = content_vm(enc);
        let (_d, path, layout) = write(&vm);
        let h = parse(&path).unwrap();
        let s = check_blocks(&vm, &h, &layout);
        use PagePolicy::*;
        match enc {
            BlockEncoding::RawBlock => assert_eq!(s.raw_block, 6),
            BlockEncoding::Tokens(Raw) => {
                // All raw but the few pages needed to stay below 1 MiB per block.
                assert!(s.raw >= 6 * 250, "{s:?}");
                assert!(s.fill_one + s.compressed <= 6 * 6, "{s:?}");
                assert_eq!(s.fill_run + s.multi_compressed + s.multi_stored, 0);
            }
            BlockEncoding::Tokens(Compressed) => {
                assert!(s.compressed > 1000, "{s:?}");
                assert_eq!(s.fill_one + s.fill_run + s.multi_compressed, 0);
            }
            BlockEncoding::Tokens(FillOne) => {
                assert!(s.fill_one > 0 && s.raw > 0);
                assert_eq!(s.compressed + s.fill_run + s.multi_compressed, 0);
            }
            BlockEncoding::Tokens(FillRun) => {
                assert!(s.fill_run > 0 && s.raw > 0);
                assert_eq!(s.compressed + s.fill_one + s.multi_compressed, 0);
            }
            BlockEncoding::Tokens(MultiPage { compress: true, .. }) => {
                assert!(s.multi_compressed > 0);
                assert_eq!(s.fill_one + s.fill_run + s.raw + s.compressed, 0);
            }
            BlockEncoding::Tokens(MultiPage {
                compress: false, ..
            }) => {
                assert!(s.multi_stored >= 6 * 80, "{s:?}");
                assert_eq!(s.multi_compressed + s.fill_run, 0);
            }
            BlockEncoding::Tokens(Mixed) => {
                assert!(
                    s.fill_one > 0
                        && s.fill_run > 0
                        && s.raw > 0
                        && s.compressed > 0
                        && s.multi_compressed > 0
                        && s.multi_stored > 0,
                    "{s:?}"
                );
            }
            BlockEncoding::Tokens(HyperV) => {
                assert!(s.fill_one > 0 && s.compressed > 0);
                assert_eq!(s.fill_run + s.multi_compressed + s.multi_stored, 0);
            }
            BlockEncoding::Tokens(Auto) => {
                assert!(s.fill_run > 0);
            }
        }
        // Token locations recorded in the layout point at real tokens.
        let file = std::fs::read(&path).unwrap();
        for rb in &layout.ram_blocks {
            for t in &rb.tokens {
                let at = (rb.value_offset + t.offset as u64) as usize;
                let tag = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
                match t.kind {
                    TokenKind::End => assert_eq!(tag, 0xFFFF_FFFF),
                    TokenKind::FillOne => assert_eq!(tag, 0xFFFF_FFFE),
                    TokenKind::FillRun => assert_eq!(tag, 0xFFFF_FFFD),
                    TokenKind::MultiCompressed | TokenKind::MultiStored => {
                        assert_eq!(tag, 0xFFFF_FFFC)
                    }
                    TokenKind::RawPage => assert_eq!(tag, 4096),
                    TokenKind::CompressedPage => assert_eq!(tag + 4, t.len),
                }
            }
        }
    }
}

#[test]
fn both_compressors_decode() {
    for z in [Compressor::Xpress, Compressor::Greedy] {
        for p in [PagePolicy::Mixed, PagePolicy::Auto, PagePolicy::Compressed] {
            let mut vm = content_vm(BlockEncoding::Tokens(p));
            vm.compressor = z;
            let (_d, path, layout) = write(&vm);
            let h = parse(&path).unwrap();
            let s = check_blocks(&vm, &h, &layout);
            assert!(s.compressed + s.multi_compressed > 0);
        }
    }
}

#[test]
fn auto_is_never_larger_than_the_hyperv_policy() {
    let size = |enc| {
        let vm = content_vm(enc);
        let (_d, _p, layout) = write(&vm);
        layout.ram_blocks.iter().map(|b| b.value_size).sum::<u64>()
    };
    let auto = size(BlockEncoding::Tokens(PagePolicy::Auto));
    let hv = size(BlockEncoding::Tokens(PagePolicy::HyperV));
    let raw = size(BlockEncoding::Tokens(PagePolicy::Raw));
    assert!(auto <= hv && hv < raw, "{auto} {hv} {raw}");
}

#[test]
fn per_block_encoding_overrides() {
    let mut vm = content_vm(BlockEncoding::Tokens(PagePolicy::HyperV));
    vm.block_encoding.insert(1, BlockEncoding::RawBlock);
    vm.block_encoding
        .insert(4, BlockEncoding::Tokens(PagePolicy::Raw));
    let (_d, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    check_blocks(&vm, &h, &layout);
    assert!(layout.ram_blocks[1].raw);
    assert_eq!(layout.ram_blocks[1].value_size, 1 << 20);
    assert!(layout.ram_blocks[4].counts.raw_page >= 250);
    assert!(!layout.ram_blocks[0].raw);
}

#[test]
fn memory_map_for_split_ranges() {
    let vm = content_vm(BlockEncoding::default());
    let (_d, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    let m = |d: usize, o: usize| {
        let v = h.value(&format!("/savedstate/RamMemoryBlock{d}"));
        u64::from_le_bytes(v[o..o + 8].try_into().unwrap())
    };
    assert_eq!((m(0, 8), m(0, 16), m(0, 24)), (3 * 256 + 5, 0, 0));
    assert_eq!((m(1, 8), m(1, 16), m(1, 24)), (256 + 17, 4 * 256, 0x1000));
    assert!(h.key("/savedstate/RamMemoryBlock2").is_err());
    assert_eq!(layout.memory_map[1].first_block, 4);
    assert_eq!(layout.ram_blocks.len(), 6);
}

#[test]
fn block_order_is_reflected_in_insertion_sequence() {
    for order in [
        BlockOrder::Sequential,
        BlockOrder::Interleaved,
        BlockOrder::Reversed,
    ] {
        let mut vm = SynthVm::with_ram_mib(12);
        vm.block_order = order;
        let (_d, path, _l) = write(&vm);
        let h = parse(&path).unwrap();
        let mut by_ins: Vec<(u32, u64)> = h
            .keys
            .iter()
            .filter_map(|k| {
                k.path
                    .strip_prefix("/savedstate/RamBlock")
                    .map(|n| (k.insertion, n.parse().unwrap()))
            })
            .collect();
        by_ins.sort();
        let got: Vec<u64> = by_ins.into_iter().map(|x| x.1).collect();
        assert_eq!(got, order.order(12));
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..12).collect::<Vec<_>>());
        if order == BlockOrder::Interleaved {
            assert_ne!(got, (0..12).collect::<Vec<_>>());
        }
    }
}

#[test]
fn chained_object_tables_and_many_key_tables() {
    let mut vm = SynthVm::with_ram_mib(1000);
    vm.vmrs.object_table_size = 0x2000;
    let (_d, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    assert!(
        layout.object_tables.len() >= 3,
        "{}",
        layout.object_tables.len()
    );
    assert_eq!(h.object_tables.len(), layout.object_tables.len());
    assert_eq!(layout.object_tables[0].entry_count, 227);
    assert_eq!(layout.object_tables[1].entry_count, 454);
    assert!(h.key_tables.len() > 10);
    assert_eq!(h.objects.len(), layout.objects.len());
    assert_eq!(h.key("/savedstate/RamBlock999").unwrap().value.len(), 3076);
    // Every key table is filled exactly to its end (the walker checks this).
    assert_eq!(h.free_entries, 1);
}

#[test]
fn larger_alignment() {
    let mut vm = content_vm(BlockEncoding::Tokens(PagePolicy::Mixed));
    vm.vmrs.alignment = 0x10000;
    let (_d, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    assert_eq!(h.alignment, 0x10000);
    check_blocks(&vm, &h, &layout);
    assert!(layout.key_tables.iter().all(|t| t.size == 0x10000));
}

#[test]
fn small_blocks_are_inline_unless_forced_to_file_objects() {
    let mut vm = SynthVm::with_ram_mib(3).with_encoding(BlockEncoding::Tokens(PagePolicy::Auto));
    let (_d, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    let k = h.key("/savedstate/RamBlock1").unwrap();
    assert_eq!(k.flags & 1, 0);
    assert_eq!(k.value.len(), 20); // one fill-run token + end
    assert!(!layout.ram_blocks[1].in_file_object);
    check_blocks(&vm, &h, &layout);
    vm.vmrs.ram_blocks_always_in_file_objects = true;
    let (_d2, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    assert_eq!(h.key("/savedstate/RamBlock1").unwrap().flags & 1, 1);
    assert!(layout.ram_blocks[1].in_file_object);
    check_blocks(&vm, &h, &layout);
}

#[test]
fn header_copies() {
    // Copy 1 newer.
    let mut vm = SynthVm::with_ram_mib(2);
    vm.vmrs.headers = [HeaderCopy::with_sequence(3), HeaderCopy::with_sequence(4)];
    let (_d, path, _l) = write(&vm);
    let h = parse(&path).unwrap();
    assert_eq!((h.active_copy, h.sequence), (1, 4));

    // The newer copy is corrupt: the older one is used.
    vm.vmrs.headers[1].bad_checksum = true;
    let (_d, path, _l) = write(&vm);
    assert_eq!(parse(&path).unwrap().active_copy, 0);

    // Both corrupt.
    vm.vmrs.headers[0].bad_signature = true;
    let (_d, path, _l) = write(&vm);
    assert!(parse(&path).unwrap_err().contains("both"));

    // The older copy points at a garbage replay log; the newer one is right.
    let mut vm = SynthVm::with_ram_mib(2);
    vm.vmrs.headers[1].replay_log_offset = Some(12288);
    let (_d, path, _l) = write(&vm);
    assert_eq!(parse(&path).unwrap().active_copy, 0);
    vm.vmrs.headers = [HeaderCopy::with_sequence(1), HeaderCopy::with_sequence(2)];
    vm.vmrs.headers[1].replay_log_offset = Some(12288);
    let (_d, path, _l) = write(&vm);
    assert!(parse(&path).unwrap_err().contains("replay log"));

    // Unsupported format version with a valid checksum.
    let mut vm = SynthVm::with_ram_mib(2);
    vm.vmrs.headers[0].format_version = 0x300;
    vm.vmrs.headers[1].format_version = 0x300;
    let (_d, path, _l) = write(&vm);
    assert!(parse(&path).unwrap_err().contains("format"));
}

#[test]
fn pending_replay_entries_must_be_applied() {
    let mut vm = content_vm(BlockEncoding::Tokens(PagePolicy::Mixed));
    vm.vmrs.pending_replay = vec![
        ReplayTarget::KeyTable(1),
        ReplayTarget::KeyValue("/savedstate/savedVM/partition_state".into()),
        ReplayTarget::KeyValue("/savedstate/RamBlock2".into()),
        ReplayTarget::ObjectTable(0),
    ];
    let (_d, path, layout) = write(&vm);
    let log = layout.replay_log.as_ref().unwrap();
    assert_eq!(log.pending.len(), 4);
    // With replay, everything is intact.
    let h = parse(&path).unwrap();
    assert_eq!(h.pending_replayed, 4);
    check_blocks(&vm, &h, &layout);
    let p = parse_partition(&h.value("/savedstate/savedVM/partition_state")).unwrap();
    assert_eq!(p.vp_order, vec![0]);
    // The body itself holds the fill byte at the destinations.
    let kt = layout.key_table(1);
    let raw = corrupt::read_bytes(&path, kt.offset, 16).unwrap();
    assert_eq!(raw, vec![0xDB; 16]);
    // A reader that ignores the log sees a broken file.
    corrupt::set_u32(&path, log.offset + 8, 0).unwrap();
    corrupt::fix_replay_log_crc(&path, log.offset).unwrap();
    assert!(parse(&path).is_err());
}

#[test]
fn pending_entry_with_bad_data_checksum() {
    let mut vm = SynthVm::with_ram_mib(2);
    vm.vmrs.pending_replay = vec![ReplayTarget::KeyEntry("/savedstate/VmVersion".into())];
    let (_d, path, layout) = write(&vm);
    assert_eq!(parse(&path).unwrap().int("/savedstate/VmVersion"), 0x900);
    let log = layout.replay_log.clone().unwrap();
    let e = log.pending[0];
    corrupt::xor_byte(&path, e.data_offset + 22, 0x20).unwrap();
    assert!(parse(&path).unwrap_err().contains("data crc"));
    corrupt::fix_replay_entry_crcs(&path, log.offset, e.header_offset).unwrap();
    assert!(parse(&path).unwrap_err().contains("key entry crc"));
}

#[test]
fn stale_replay_entries() {
    for stale in [
        StaleReplay::None,
        StaleReplay::Matching,
        StaleReplay::Outdated,
    ] {
        let mut vm = SynthVm::with_ram_mib(4);
        vm.vmrs.stale_replay = stale;
        let (_d, path, layout) = write(&vm);
        let h = parse(&path).unwrap();
        let log = layout.replay_log.as_ref().unwrap();
        assert_eq!(h.stale_entries, log.stale.len());
        assert_eq!(h.replay_log_size, 0xD000);
        if stale == StaleReplay::None {
            assert!(log.stale.is_empty());
            continue;
        }
        // Replaying the stale entries too (wrong) is harmless only when they match.
        corrupt::set_u32(&path, log.offset + 8, log.stale.len() as u32).unwrap();
        corrupt::fix_replay_log_crc(&path, log.offset).unwrap();
        let r = parse(&path);
        match stale {
            StaleReplay::Matching => assert!(r.is_ok()),
            _ => assert!(r.is_err()),
        }
    }
}

#[test]
fn stale_key_table_copy_is_ignored_by_sequence() {
    let mut vm = SynthVm::with_ram_mib(2);
    vm.vmrs.stale_key_table_copy = true;
    let (_d, path, layout) = write(&vm);
    let h = parse(&path).unwrap();
    assert_eq!(h.int("/savedstate/VmVersion"), 0x900);
    let copies: Vec<_> = layout.key_tables.iter().filter(|t| t.index == 1).collect();
    assert_eq!(copies.len(), 2);
    assert!(copies[1].stale_copy && copies[1].sequence < copies[0].sequence);
    assert_eq!(h.key_tables[&1].0, copies[0].offset);
}

#[test]
fn corruption_helpers_round_trip() {
    let vm = SynthVm::with_ram_mib(2);
    let (_d, path, layout) = write(&vm);
    let orig = std::fs::read(&path).unwrap();
    let reset = || std::fs::write(&path, &orig).unwrap();

    // Key entry: change the value, CRC fails; fix it and the new value reads back.
    let k = layout.key("/savedstate/VmVersion").clone();
    corrupt::set_u64(&path, k.value_offset, 0x500).unwrap();
    assert!(parse(&path).unwrap_err().contains("key entry crc"));
    corrupt::fix_key_entry_crc(&path, k.entry_offset).unwrap();
    assert_eq!(parse(&path).unwrap().int("/savedstate/VmVersion"), 0x500);
    reset();

    // Key table header.
    let t = layout.key_tables[0];
    corrupt::set_u16(&path, t.offset + 4, 9).unwrap();
    assert!(parse(&path).unwrap_err().contains("key table header crc"));
    corrupt::fix_key_table_crc(&path, t.offset).unwrap();
    parse(&path).unwrap();
    reset();

    // Object entry: move a file object past the end of the file.
    let o = layout
        .objects
        .iter()
        .find(|o| o.kind == 3)
        .copied()
        .unwrap();
    corrupt::set_u64(&path, o.entry_offset + 5, layout.file_size).unwrap();
    assert!(parse(&path).unwrap_err().contains("object entry crc"));
    corrupt::fix_object_entry_crc(&path, o.entry_offset).unwrap();
    assert!(parse(&path).unwrap_err().contains("misplaced"));
    reset();

    // Link entry made into an empty slot: the chain ends early (single table here, so
    // turn the end-of-chain slot into a loop instead).
    let t0 = layout.object_tables[0];
    corrupt::set_u8(&path, t0.link_entry_offset, 1).unwrap();
    corrupt::set_u64(&path, t0.link_entry_offset + 5, 8192).unwrap();
    corrupt::set_u32(&path, t0.link_entry_offset + 13, 4096).unwrap();
    corrupt::fix_object_entry_crc(&path, t0.link_entry_offset).unwrap();
    assert!(parse(&path).unwrap_err().contains("loop"));
    reset();

    // Header field with a fixed checksum.
    corrupt::set_u32(&path, 10, 0x301).unwrap();
    corrupt::set_u16(&path, 4096 + 8, 0).unwrap();
    corrupt::fix_header_crc(&path, 0).unwrap();
    assert!(parse(&path).unwrap_err().contains("format"));
    reset();

    // Truncation.
    corrupt::truncate(&path, layout.file_size - 4096).unwrap();
    assert!(parse(&path).is_err());
    reset();
    parse(&path).unwrap();
}

#[test]
fn extra_and_omitted_keys() {
    let mut vm = SynthVm::with_ram_mib(2);
    vm.vmrs.extra_keys = vec![
        ("/savedstate/custom/double".into(), KeyValue::Double(1.5)),
        (
            "/savedstate/custom/big".into(),
            KeyValue::String("x".repeat(3000)),
        ),
        ("/configuration/custom/flag".into(), KeyValue::Bool(true)),
    ];
    vm.vmrs.omit_keys = vec![
        "/savedstate/savedVM/partition_state".into(),
        "/savedstate/RamBlock1".into(),
    ];
    let (_d, path, _l) = write(&vm);
    let h = parse(&path).unwrap();
    assert_eq!(h.key("/savedstate/custom/double").unwrap().ty, 5);
    let big = h.key("/savedstate/custom/big").unwrap();
    assert_eq!((big.ty, big.flags), (6, 1));
    assert_eq!(utf16_string(&big.value), "x".repeat(3000));
    assert_eq!(h.value("/configuration/custom/flag"), vec![1, 0, 0, 0]);
    assert!(h.key("/savedstate/savedVM/partition_state").is_err());
    assert!(h.key("/savedstate/RamBlock1").is_err());
    assert!(h.key("/savedstate/RamBlock0").is_ok());
}

#[test]
fn repeated_sibling_nodes() {
    let (_d, path, layout) = write(&SynthVm::with_ram_mib(1));
    let h = parse(&path).unwrap();
    let n = h
        .keys
        .iter()
        .filter(|k| k.path == "/configuration/global_settings/metrics/devicetype")
        .count();
    assert_eq!(n, 2);
    assert!(h
        .key("/configuration/global_settings/metrics/devicetype/guid")
        .unwrap_err()
        .contains("ambiguous"));
    assert!(layout
        .keys
        .contains_key("/configuration/global_settings/metrics/devicetype#2/guid"));
}
