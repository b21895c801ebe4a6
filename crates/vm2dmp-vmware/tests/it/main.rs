//! VMware checkpoints written by `vm2dmp_synth::vmware`, valid and broken, read back.

use std::path::{Path, PathBuf};

use vm2dmp_source::{Architecture, Error, MemorySource, RamRange, MAX_CHUNK_PAGES, PAGE_SIZE};
use vm2dmp_synth::vmware::{
    page_bytes, Checkpoint, Guest, MemoryPlacement, RegStyle, Region, Tag, TagData, Vcpu, MAGIC_V0,
};
use vm2dmp_vmware::{is_vmware_state, MemoryLocation, VmwareState, KIND_SNAPSHOT, KIND_SUSPENDED};

/// Writes `guest` as `<dir>/guest.<ext>` (+ `guest.vmem`) and returns the state path.
fn write(dir: &Path, guest: &Guest, ext: &str) -> PathBuf {
    let state = dir.join(format!("guest.{ext}"));
    guest
        .write(&state, Some(&dir.join("guest.vmem")))
        .expect("write");
    state
}

/// Every RAM page read through chunks, raw chunks and `read_phys` equals the page written.
fn check_every_page(s: &VmwareState) {
    let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
    let mut seen = 0u64;
    for n in 0..s.chunk_count() {
        let spans = s.chunk_spans(n);
        assert_eq!(spans.len(), 1);
        s.decode_chunk(n, &mut buf).expect("decode");
        let raw = s.raw_chunk(n).expect("raw chunk");
        for span in spans {
            assert!(span.pages <= MAX_CHUNK_PAGES);
            assert!(s.range_of(span.gpa_page).is_some());
            for p in 0..span.pages {
                let gpa_page = span.gpa_page + p as u64;
                let want = page_bytes(gpa_page);
                let at = (span.page_in_chunk + p) * PAGE_SIZE;
                assert_eq!(&buf[at..at + PAGE_SIZE], &want[..], "chunk {n} page {p}");
                let mut from_raw = vec![0u8; PAGE_SIZE];
                raw.file
                    .read_into(raw.offset + at as u64, &mut from_raw, "test")
                    .unwrap();
                assert_eq!(from_raw, want);
                let mut phys = vec![0u8; PAGE_SIZE];
                s.read_phys(gpa_page << 12, &mut phys).unwrap();
                assert_eq!(phys, want);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, s.ram_pages());
}

fn assert_regs(got: &vm2dmp_source::CpuState, index: u32, v: &Vcpu) {
    assert_eq!(got.index, index);
    let gp = [
        got.rax, got.rcx, got.rdx, got.rbx, got.rsp, got.rbp, got.rsi, got.rdi, got.r8, got.r9,
        got.r10, got.r11, got.r12, got.r13, got.r14, got.r15,
    ];
    assert_eq!(gp, v.gp, "vCPU {index} general registers");
    assert_eq!(got.rip, v.rip);
    assert_eq!(got.rflags, u64::from(v.rflags));
    assert_eq!(
        [got.cr0, got.cr2, got.cr3, got.cr4, got.cr8],
        [v.cr[0], v.cr[2], v.cr[3], v.cr[4], v.cr[8]]
    );
    assert_eq!(
        [got.dr0, got.dr1, got.dr2, got.dr3, got.dr6, got.dr7],
        [v.dr[0], v.dr[1], v.dr[2], v.dr[3], v.dr[6], v.dr[7]]
    );
    assert_eq!((got.gdtr.limit, got.gdtr.base), v.gdtr);
    assert_eq!((got.idtr.limit, got.idtr.base), v.idtr);
    let segs = [
        got.es, got.cs, got.ss, got.ds, got.fs, got.gs, got.ldtr, got.tr,
    ];
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.selector, v.selectors[i], "segment {i}");
        assert_eq!(s.base, v.bases[i], "segment {i} base");
        assert_eq!((s.limit, s.attributes), (0, 0));
    }
    assert_eq!(got.cpl, 0);
    assert_eq!(got.architecture(), Architecture::X64);
    assert_eq!(got.mode_description(), "long mode, 4-level paging");
    assert!(got.has_gp && got.has_control && got.has_segments);
    assert_eq!(got.msrs, None);
}

#[test]
fn ranges_pages_and_registers_with_a_vmem() {
    let dir = tempfile::tempdir().unwrap();
    let guest = Guest::small(4);
    let path = write(dir.path(), &guest, "vmss");
    let s = VmwareState::open(&path).unwrap();
    assert_eq!(
        s.ram_ranges(),
        &[
            RamRange {
                gpa_page_start: 0,
                page_count: 512
            },
            RamRange {
                gpa_page_start: 0x10_0000,
                page_count: 300
            }
        ]
    );
    assert_eq!(s.chunk_count(), 4);
    assert_eq!(s.memory_location(), MemoryLocation::Vmem);
    assert_eq!(s.files(), vec![path.clone(), dir.path().join("guest.vmem")]);
    check_every_page(&s);
    assert_eq!(s.vcpus().len(), 4);
    for (i, v) in guest.vcpus.iter().enumerate() {
        assert_regs(&s.vcpus()[i], i as u32, v);
    }
    let m = s.machine();
    assert_eq!(m.kind, KIND_SUSPENDED);
    assert_eq!(m.boot_processor, Some(0));
    assert!(m.notes.iter().any(|n| n.contains("EFER")), "{:?}", m.notes);
    assert!(is_vmware_state(&std::fs::read(&path).unwrap()[..4]));
    assert!(!is_vmware_state(b"MZ\0\0"));
}

#[test]
fn holes_are_not_ram() {
    let dir = tempfile::tempdir().unwrap();
    let s = VmwareState::open(write(dir.path(), &Guest::small(1), "vmss")).unwrap();
    let mut b = [0u8; 16];
    for gpa in [
        0x20_0000u64,
        0xC000_0000,
        0xFFFF_F000,
        0x1_0000_0000 + 300 * 4096,
    ] {
        match s.read_phys(gpa, &mut b) {
            Err(Error::Hole { gpa: g }) => assert_eq!(g, gpa),
            other => panic!("{gpa:#x}: {other:?}"),
        }
    }
    // A read running off the end of the first region stops at the hole.
    let mut two = vec![0u8; 8192];
    match s.read_phys(0x1F_F800, &mut two) {
        Err(Error::Hole { gpa }) => assert_eq!(gpa, 0x20_0000),
        other => panic!("{other:?}"),
    }
    // Crossing pages inside a region works.
    s.read_phys(0x1_0000_0FF8, &mut b).unwrap();
    assert_eq!(&b[..8], &page_bytes(0x10_0000)[0xFF8..]);
    assert_eq!(&b[8..], &page_bytes(0x10_0001)[..8]);
}

#[test]
fn register_blocks_and_snapshot_with_explicit_vmem() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = Guest::small(2);
    guest.reg_style = RegStyle::Blocks;
    let state = dir.path().join("snap.vmsn");
    let vmem = dir.path().join("elsewhere.vmem");
    guest.write(&state, Some(&vmem)).unwrap();
    assert!(matches!(
        VmwareState::open(&state),
        Err(Error::MissingBin { .. })
    ));
    let s = VmwareState::open_with(&state, Some(&vmem)).unwrap();
    for (i, v) in guest.vcpus.iter().enumerate() {
        assert_regs(&s.vcpus()[i], i as u32, v);
    }
    let m = s.machine();
    assert_eq!(m.kind, KIND_SNAPSHOT);
    assert!(
        m.notes.iter().any(|n| n.contains("gpregs")),
        "{:?}",
        m.notes
    );
    check_every_page(&s);
}

#[test]
fn memory_inside_the_state_file_and_32_bit_sizes() {
    for magic in [vm2dmp_synth::vmware::MAGIC, MAGIC_V0] {
        let dir = tempfile::tempdir().unwrap();
        let mut guest = Guest::small(2);
        guest.magic = magic;
        guest.placement = MemoryPlacement::InState;
        guest.reg_style = RegStyle::Blocks;
        let path = dir.path().join("esx.vmss");
        let layout = guest.write(&path, None).unwrap();
        let s = VmwareState::open(&path).unwrap();
        let mem = layout.tag("memory", "Memory", &[0, 0]);
        assert_eq!(mem.data_offset % 4096, 0);
        assert_eq!(
            s.memory_location(),
            MemoryLocation::InState {
                offset: mem.data_offset
            }
        );
        assert_eq!(s.files(), vec![path.clone()]);
        assert_eq!(s.magic(), magic);
        assert_eq!(s.ram_pages(), 812);
        check_every_page(&s);
        for (i, v) in guest.vcpus.iter().enumerate() {
            assert_regs(&s.vcpus()[i], i as u32, v);
        }
    }
}

#[test]
fn no_regions_means_the_whole_backing_from_address_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut guest = Guest::small(1);
    guest.regions.clear();
    guest.plain_pages = 300;
    let s = VmwareState::open(write(dir.path(), &guest, "vmss")).unwrap();
    assert_eq!(
        s.ram_ranges(),
        &[RamRange {
            gpa_page_start: 0,
            page_count: 300
        }]
    );
    assert_eq!(s.chunk_count(), 2);
    check_every_page(&s);
}

#[test]
fn a_missing_vmem_names_the_state_file_and_the_name_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lonely.vmss");
    Guest::small(1).write(&path, None).unwrap();
    let e = VmwareState::open(&path).unwrap_err();
    match &e {
        Error::MissingBin { vsv, tried } => {
            assert_eq!(vsv, &path);
            assert_eq!(tried, "lonely.vmem");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("lonely.vmss"));
    // The .vmem is found whatever the case of its extension.
    std::fs::write(dir.path().join("lonely.VMEM"), Guest::small(1).backing()).unwrap();
    VmwareState::open(&path).unwrap();
}

/// Asserts `r` is [`Error::Corrupt`] about `structure` at `offset`.
fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, Error>, structure: &str, offset: u64) {
    match r {
        Err(Error::Corrupt {
            structure: s,
            offset: o,
            ..
        }) => assert_eq!((s, o), (structure, offset)),
        other => panic!("expected {structure} at {offset:#x}, got {other:?}"),
    }
}

fn name() -> &'static Path {
    Path::new("t.vmss")
}

/// A small guest for byte-level tests: 16 pages at 0, 8 at 4 GiB, 2 vCPUs.
fn tiny() -> Guest {
    let mut g = Guest::small(2);
    g.regions = vec![
        Region {
            gpa_page: 0,
            vmem_page: 0,
            pages: 16,
        },
        Region {
            gpa_page: 0x10_0000,
            vmem_page: 16,
            pages: 8,
        },
    ];
    g
}

fn with_tag(cp: &mut Checkpoint, group: &str, name: &str, indices: &[u32], data: TagData) {
    let g = cp.groups.iter_mut().find(|g| g.name == group).unwrap();
    let t = g
        .tags
        .iter_mut()
        .find(|t| t.name == name && t.indices == indices)
        .unwrap();
    t.data = data;
}

#[test]
fn malformed_files_name_structure_and_offset() {
    let g = tiny();
    let vmem = g.backing();
    let (good, layout) = g.checkpoint().to_bytes();
    let open = |b: Vec<u8>| VmwareState::from_bytes(name(), b, Some(vmem.clone()));
    open(good.clone()).unwrap();

    assert_corrupt(open(good[..8].to_vec()), "checkpoint header", 0);
    let mut bad = good.clone();
    bad[0] = 0x12;
    assert_corrupt(open(bad), "checkpoint header", 0);
    // Absurd group count.
    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_corrupt(open(bad), "checkpoint header", 8);
    // Group table beyond the end of the file.
    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&4000u32.to_le_bytes());
    assert_corrupt(open(bad), "group table", 12);
    // A group's tags beyond the end of the file.
    let mut bad = good.clone();
    let e = layout.group_entries[1] as usize;
    bad[e + 64..e + 72].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_corrupt(open(bad), "group table entry", e as u64);
    // A tag running past the end of the file: cut inside the cpu group.
    let rip = layout.tag("cpu", "rip", &[1]);
    assert_corrupt(
        open(good[..rip.data_offset as usize + 3].to_vec()),
        "tag",
        rip.offset,
    );
    // Long data whose size runs past the end.
    let mut cp = g.checkpoint();
    cp.groups[2]
        .tags
        .push(Tag::long("blob", &[0], vec![1, 2, 3], 0));
    let (b2, l2) = cp.to_bytes();
    let blob = l2.tag("cpu", "blob", &[0]);
    let mut bad = b2;
    let size_at = blob.data_offset as usize - 2 - 16;
    bad[size_at..size_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_corrupt(open(bad), "tag", blob.offset);
    // A region beyond the .vmem.
    let mut cp = g.checkpoint();
    with_tag(
        &mut cp,
        "memory",
        "regionSize",
        &[1],
        TagData::Short(9u32.to_le_bytes().to_vec()),
    );
    let (b, l) = cp.to_bytes();
    assert_corrupt(
        open(b),
        "region tag",
        l.tag("memory", "regionPageNum", &[1]).offset,
    );
    // The .vmem shorter than the regions.
    assert_corrupt(
        VmwareState::from_bytes(name(), good.clone(), Some(vmem[..20 * 4096].to_vec())),
        "region tag",
        layout.tag("memory", "regionPageNum", &[1]).offset,
    );
    // Absurd counts.
    let mut cp = g.checkpoint();
    with_tag(
        &mut cp,
        "memory",
        "regionsCount",
        &[],
        TagData::Short(0x8000_0000u32.to_le_bytes().to_vec()),
    );
    let (b, l) = cp.to_bytes();
    assert_corrupt(
        open(b),
        "regionsCount tag",
        l.tag("memory", "regionsCount", &[]).offset,
    );
    let mut cp = g.checkpoint();
    with_tag(
        &mut cp,
        "cpu",
        "cpu:numVCPUs",
        &[],
        TagData::Short(u32::MAX.to_le_bytes().to_vec()),
    );
    let (b, l) = cp.to_bytes();
    assert_corrupt(
        open(b),
        "cpu:numVCPUs tag",
        l.tag("cpu", "cpu:numVCPUs", &[]).offset,
    );
    // A region announced but not described.
    let mut cp = g.checkpoint();
    cp.groups[1]
        .tags
        .retain(|t| !(t.name == "regionPPN" && t.indices == [1]));
    let (b, l) = cp.to_bytes();
    assert_corrupt(
        open(b),
        "regionsCount tag",
        l.tag("memory", "regionsCount", &[]).offset,
    );
    // Overlapping regions.
    let mut cp = g.checkpoint();
    with_tag(
        &mut cp,
        "memory",
        "regionPPN",
        &[1],
        TagData::Short(8u32.to_le_bytes().to_vec()),
    );
    let (b, _) = cp.to_bytes();
    assert!(matches!(open(b), Err(Error::Corrupt { .. })));
    // Compressed memory inside the state file.
    let mut g2 = tiny();
    g2.placement = MemoryPlacement::InState;
    let mut cp = g2.checkpoint();
    if let Some(TagData::Long { compressed, .. }) = cp.groups[1]
        .tags
        .iter_mut()
        .find(|t| t.name == "Memory")
        .map(|t| &mut t.data)
    {
        *compressed = true;
    }
    let (b, _) = cp.to_bytes();
    assert!(matches!(
        VmwareState::from_bytes(name(), b, None),
        Err(Error::Unsupported { .. })
    ));
}

/// Opens `state` (and `vmem`) and, when that works, reads everything it says it has.
fn exercise(state: Vec<u8>, vmem: Option<Vec<u8>>) {
    if let Ok(s) = VmwareState::from_bytes(name(), state, vmem) {
        let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
        for n in 0..s.chunk_count() {
            let _ = s.decode_chunk(n, &mut buf);
            let _ = s.chunk_spans(n);
        }
        for r in s.ram_ranges() {
            let _ = s.read_phys(r.gpa_start(), &mut buf[..64]);
        }
        let _ = s.machine();
        let _ = s.boot_vcpu();
    }
}

#[test]
fn truncation_at_every_length_and_flipped_bytes_never_panic() {
    let g = tiny();
    let vmem = g.backing();
    let (good, _) = g.checkpoint().to_bytes();
    for len in 0..good.len() {
        exercise(good[..len].to_vec(), Some(vmem.clone()));
    }
    for len in (0..vmem.len()).step_by(997) {
        exercise(good.clone(), Some(vmem[..len].to_vec()));
    }
    let mut g2 = tiny();
    g2.placement = MemoryPlacement::InState;
    g2.reg_style = RegStyle::Blocks;
    let (in_state, l2) = g2.checkpoint().to_bytes();
    let mem_at = l2.tag("memory", "Memory", &[0, 0]).data_offset as usize;
    for len in (0..in_state.len()).filter(|l| *l < mem_at + 64 || l % 509 == 0) {
        exercise(in_state[..len].to_vec(), None);
    }
    // Flip every byte before the memory data to a few values.
    for (bytes, vmem, end) in [(&good, Some(&vmem), good.len()), (&in_state, None, mem_at)] {
        for i in 0..end {
            for v in [0x00u8, 0xFF, bytes[i] ^ 0x40, bytes[i].wrapping_add(1)] {
                let mut b = bytes.clone();
                b[i] = v;
                exercise(b, vmem.cloned());
            }
        }
    }
}

#[test]
fn vcpus_are_counted_from_register_tags_and_32_bit_views_are_used_when_alone() {
    let g = tiny();
    let mut cp = g.checkpoint();
    cp.groups[2]
        .tags
        .retain(|t| t.name != "cpu:numVCPUs" && t.name != "CR64" && t.name != "rip");
    let (b, _) = cp.to_bytes();
    let s = VmwareState::from_bytes(name(), b, Some(g.backing())).unwrap();
    assert_eq!(s.vcpus().len(), 2);
    for (i, (got, v)) in s.vcpus().iter().zip(&g.vcpus).enumerate() {
        assert_eq!(got.index, i as u32);
        assert_eq!(got.cr3, v.cr[3] & 0xFFFF_FFFF);
        assert_eq!(got.cr0, v.cr[0]);
        assert_eq!(got.rip, v.rip & 0xFFFF_FFFF, "eip stands in for rip");
        assert_eq!(got.rax, v.gp[0]);
    }
    let notes = s.machine().notes;
    assert!(
        notes.iter().any(|n| n.contains("cpu:numVCPUs")),
        "{notes:?}"
    );
}
