//! Guest memory of ELF cores: RAM ranges, chunks, raw chunks, every page, holes.

use vm2dmp_qemu::elf::{is_elf, ElfClass, ElfCore};
use vm2dmp_source::{mask_has, Error, MemorySource, RamRange, MAX_CHUNK_PAGES, PAGE_SIZE};

use crate::writer::{open, page_pattern, Core, Seg, EM_386, EM_X86_64};

const GIB: u64 = 1 << 30;

/// What guest page `pfn` holds according to the segments, `None` outside RAM: the first
/// segment storing the page gives it; else it is zero if a segment spans it past its stored
/// bytes; a segment storing nothing is not RAM.
fn model(segs: &[Seg], pfn: u64) -> Option<Vec<u8>> {
    let stored = segs.iter().find_map(|s| {
        let first = s.paddr / 4096;
        let pages = (s.data.len() as u64).div_ceil(4096);
        (pfn >= first && pfn < first + pages).then(|| {
            let rel = ((pfn - first) * 4096) as usize;
            let mut page = vec![0u8; PAGE_SIZE];
            let n = (s.data.len() - rel).min(PAGE_SIZE);
            page[..n].copy_from_slice(&s.data[rel..rel + n]);
            page
        })
    });
    stored.or_else(|| {
        segs.iter()
            .any(|s| {
                let first = s.paddr / 4096;
                !s.data.is_empty() && pfn >= first && pfn < first + s.memsz.div_ceil(4096)
            })
            .then(|| vec![0u8; PAGE_SIZE])
    })
}

/// Checks every chunk, span, raw chunk and RAM page of `core` against the segments it was
/// built from.
fn check_memory(core: &ElfCore, file: &[u8], segs: &[Seg]) {
    let mut seen = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
    for n in 0..core.chunk_count() {
        let spans = core.chunk_spans(n);
        assert_eq!(spans.len(), 1, "chunk {n}");
        let span = spans[0];
        assert_eq!(span.page_in_chunk, 0);
        assert!(
            span.pages >= 1 && span.pages <= MAX_CHUNK_PAGES,
            "chunk {n}"
        );
        // A chunk lies within one segment.
        let last = span.gpa_page + span.pages as u64 - 1;
        assert!(
            segs.iter().any(|s| {
                let first = s.paddr / 4096;
                span.gpa_page >= first && last < first + s.memsz.div_ceil(4096)
            }),
            "chunk {n} spans two segments"
        );
        let zero = core.decode_chunk(n, &mut buf).unwrap();
        let raw = core.raw_chunk(n);
        for i in 0..span.pages {
            let pfn = span.gpa_page + i as u64;
            assert!(seen.insert(pfn), "page {pfn:#x} in two chunks");
            let want = model(segs, pfn).expect("a chunk page outside every segment");
            let got = &buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            assert_eq!(got, want.as_slice(), "page {pfn:#x} of chunk {n}");
            if mask_has(&zero, i) {
                assert!(want.iter().all(|&b| b == 0), "page {pfn:#x} said zero");
            }
            if let Some(raw) = raw {
                let at = raw.offset as usize + i * PAGE_SIZE;
                assert_eq!(
                    &file[at..at + PAGE_SIZE],
                    want.as_slice(),
                    "raw page {pfn:#x}"
                );
            }
        }
        for i in span.pages..MAX_CHUNK_PAGES {
            assert!(!mask_has(&zero, i), "mask bit past the chunk's pages");
        }
    }
    assert_eq!(core.chunk_spans(core.chunk_count()), []);
    assert!(core.raw_chunk(core.chunk_count()).is_none());
    assert!(core.decode_chunk(core.chunk_count(), &mut buf).is_err());
    // Spans cover the RAM ranges exactly, and every RAM page reads as the model says.
    let ram: Vec<u64> = core
        .ram_ranges()
        .iter()
        .flat_map(|r| r.gpa_page_start..r.gpa_page_end())
        .collect();
    assert_eq!(ram, seen.into_iter().collect::<Vec<_>>());
    let mut page = vec![0u8; PAGE_SIZE];
    for &pfn in &ram {
        core.read_phys(pfn << 12, &mut page).unwrap();
        assert_eq!(
            Some(page.clone()),
            model(segs, pfn),
            "read_phys page {pfn:#x}"
        );
    }
}

fn ranges(list: &[(u64, u64)]) -> Vec<RamRange> {
    list.iter()
        .map(|&(gpa, pages)| RamRange {
            gpa_page_start: gpa >> 12,
            page_count: pages,
        })
        .collect()
}

/// Segments with holes, touching segments, chunk-crossing sizes, RAM above 4 GiB kept sparse,
/// stored bytes short of the span and a segment ending inside a page.
fn layout_64() -> Vec<Seg> {
    let mut ragged = Seg::partial(8 * GIB, 2, 3);
    ragged.data.truncate(4096 + 100);
    ragged.memsz = 2 * 4096 + 10;
    vec![
        Seg::pages(0, 160),
        Seg::pages(0xc0000, 4),
        Seg::pages(0xc4000, 8),
        Seg::pages(0x100000, 600),
        Seg::partial(4 * GIB, 2, 5),
        ragged,
    ]
}

#[test]
fn elf64_ranges_chunks_and_every_page() {
    let mut core = Core::new(true, EM_X86_64);
    core.segments = layout_64();
    let file = core.build();
    assert!(is_elf(&file));
    let elf = open(file.clone()).unwrap();
    assert_eq!(elf.class(), ElfClass::Elf64);
    assert_eq!(elf.e_machine(), 62);
    assert_eq!(elf.load_segments().len(), 6);
    assert_eq!(
        elf.ram_ranges(),
        ranges(&[
            (0, 160),
            (0xc0000, 12),
            (0x100000, 600),
            (4 * GIB, 5),
            (8 * GIB, 3)
        ])
    );
    // 1 + 1 + 1 + 3 (256 + 256 + 88) + 2 + 2: chunks do not cross segments, and a segment's
    // stored pages and its zero tail are separate chunks.
    assert_eq!(elf.chunk_count(), 10);
    check_memory(&elf, &file, &core.segments);

    // Stored chunks are raw; zero tails and a page stored in part are not.
    assert_eq!(
        elf.raw_chunk(0).map(|r| r.offset),
        Some(elf.load_segments()[0].offset)
    );
    assert!(elf.raw_chunk(3).is_some());
    assert_eq!(
        elf.raw_chunk(6).map(|r| r.offset),
        Some(elf.load_segments()[4].offset)
    );
    assert_eq!(elf.chunk_spans(7)[0].gpa_page, ((4 * GIB) >> 12) + 2);
    assert!(elf.raw_chunk(7).is_none());
    assert!(
        elf.raw_chunk(8).is_none(),
        "its second page is stored in part"
    );
    let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
    assert_eq!(elf.decode_chunk(6, &mut buf).unwrap(), [0; 4]);
    assert_eq!(
        elf.decode_chunk(7, &mut buf).unwrap()[0],
        0b111,
        "the zero tail"
    );
    assert_eq!(elf.decode_chunk(8, &mut buf).unwrap()[0], 0);

    let m = elf.machine();
    assert_eq!(m.kind, "QEMU ELF core");
    assert_eq!(m.boot_processor, Some(0));
    assert!(m.notes.iter().any(|n| n.contains("p_filesz < p_memsz")));
    assert!(m.notes.iter().any(|n| n.contains("end inside a page")));
    assert_eq!(elf.files(), [std::path::PathBuf::from("core.elf")]);
}

#[test]
fn read_phys_crosses_pages_and_segments_and_stops_at_holes() {
    let mut core = Core::new(true, EM_X86_64);
    core.segments = layout_64();
    let elf = open(core.build()).unwrap();

    // Across the touching segments at 0xc4000.
    let mut b = vec![0u8; 32];
    elf.read_phys(0xc3ff0, &mut b).unwrap();
    assert_eq!(&b[..16], &page_pattern(0xc3)[4080..]);
    assert_eq!(&b[16..], &page_pattern(0xc4)[..16]);
    // Across a chunk boundary inside one segment, many pages.
    let mut big = vec![0u8; 3 * PAGE_SIZE];
    elf.read_phys(0x100000 + 255 * 4096 + 8, &mut big).unwrap();
    assert_eq!(&big[..PAGE_SIZE - 8], &page_pattern(0x100 + 255)[8..]);
    assert_eq!(
        &big[PAGE_SIZE - 8..2 * PAGE_SIZE - 8],
        page_pattern(0x100 + 256).as_slice()
    );
    // From stored bytes into the zero tail.
    let mut tail = vec![0xAAu8; 2 * PAGE_SIZE];
    elf.read_phys(4 * GIB + 4096, &mut tail).unwrap();
    assert_eq!(
        &tail[..PAGE_SIZE],
        page_pattern(((4 * GIB) >> 12) + 1).as_slice()
    );
    assert!(tail[PAGE_SIZE..].iter().all(|&x| x == 0));

    for (gpa, len, hole) in [
        (0xcbff0u64, 32usize, 0xcc000u64),
        (0x9ffff, 2, 0xa0000),
        (0xa0000, 1, 0xa0000),
        (0x100000 + 600 * 4096 - 1, 2, 0x100000 + 600 * 4096),
        (4 * GIB + 5 * 4096, 1, 4 * GIB + 5 * 4096),
        (u64::MAX, 1, u64::MAX),
        (u64::MAX - 1, 4, u64::MAX - 1),
    ] {
        let mut b = vec![0u8; len];
        match elf.read_phys(gpa, &mut b) {
            Err(Error::Hole { gpa }) => assert_eq!(gpa, hole, "read at {gpa:#x}"),
            other => panic!("read at {gpa:#x}: {other:?}"),
        }
    }
    elf.read_phys(0x1234, &mut []).unwrap();
}

#[test]
fn elf32_core_of_a_32_bit_guest() {
    let mut core = Core::new(false, EM_386);
    core.segments = vec![
        Seg::pages(0, 160),
        Seg::pages(0x100000, 300),
        Seg::partial(0xfff0_0000, 1, 4),
    ];
    let file = core.build();
    assert!(is_elf(&file));
    let elf = open(file.clone()).unwrap();
    assert_eq!(elf.class(), ElfClass::Elf32);
    assert_eq!(elf.e_machine(), 3);
    assert_eq!(
        elf.ram_ranges(),
        ranges(&[(0, 160), (0x100000, 300), (0xfff0_0000, 4)])
    );
    check_memory(&elf, &file, &core.segments);
}

#[test]
fn overlapping_segments_of_a_paging_dump_first_wins() {
    // As `dump-guest-memory -p` writes them: one segment per virtual mapping, so the same
    // physical pages may appear twice (here with different bytes, to see which is used).
    let mut second = Seg::pages(0x3000, 4);
    second.data.iter_mut().for_each(|b| *b = 0xEE);
    second.vaddr = 0xffff_8000_0000_3000;
    let mut first = Seg::pages(0x1000, 4);
    first.vaddr = 0xffff_8000_0000_1000;
    let segs = vec![
        first,
        second,
        Seg::pages(0x2000, 1),
        Seg::pages(0x10000, 2),
        Seg::pages(0x0, 20),
    ];
    let mut core = Core::new(true, EM_X86_64);
    core.segments = segs.clone();
    let file = core.build();
    let elf = open(file.clone()).unwrap();
    assert_eq!(elf.ram_ranges(), ranges(&[(0, 20)]));
    check_memory(&elf, &file, &segs);
    let mut page = vec![0u8; PAGE_SIZE];
    elf.read_phys(0x4000, &mut page).unwrap();
    assert_eq!(page, page_pattern(4), "the first segment's copy of page 4");
    elf.read_phys(0x5000, &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 0xEE), "page 5 only in the second");
    let m = elf.machine();
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("3 PT_LOAD segments overlap")),
        "{:?}",
        m.notes
    );
}

#[test]
fn paging_dump_mappings_stored_bytes_before_zero_tails() {
    // QEMU clamps a mapping's stored bytes to the RAM block it starts in: the rest of the
    // mapping is zero-filled unless another segment stores it. A mapping it does not store at
    // all (MMIO, outside the filter) has p_offset -1 and p_filesz 0 and is not RAM.
    let mut mmio = Seg::partial(0xfd00_0000, 0, 16);
    mmio.vaddr = 0xffff_c000_0000_0000;
    let segs = vec![
        Seg::partial(0, 1, 4),
        Seg::pages(0x2000, 2),
        mmio,
        Seg::partial(0x10000, 1, 2),
    ];
    let mut core = Core::new(true, EM_X86_64);
    core.segments = segs.clone();
    let (mut file, layout) = core.build_with_layout();
    // p_offset of the MMIO mapping (program header 3) as QEMU writes it.
    let at = (layout.phoff + 3 * layout.phentsize + 8) as usize;
    file[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let elf = open(file.clone()).unwrap();
    assert_eq!(elf.ram_ranges(), ranges(&[(0, 4), (0x10000, 2)]));
    check_memory(&elf, &file, &segs);
    let mut page = vec![0u8; PAGE_SIZE];
    elf.read_phys(0x2000, &mut page).unwrap();
    assert_eq!(
        page,
        page_pattern(2),
        "stored by the second segment, not zero"
    );
    elf.read_phys(0x1000, &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    assert!(matches!(
        elf.read_phys(0xfd00_0000, &mut page),
        Err(Error::Hole { gpa: 0xfd00_0000 })
    ));
    let notes = elf.machine().notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("1 PT_LOAD segments store no bytes")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("1 PT_LOAD segments overlap")),
        "{notes:?}"
    );
}

#[test]
fn pn_xnum_takes_the_count_from_section_header_0() {
    for elf64 in [true, false] {
        let mut core = Core::new(elf64, if elf64 { EM_X86_64 } else { EM_386 });
        core.segments = vec![Seg::pages(0, 3), Seg::pages(0x10000, 2)];
        core.xnum = true;
        let file = core.build();
        let elf = open(file.clone()).unwrap();
        assert_eq!(elf.load_segments().len(), 2);
        check_memory(&elf, &file, &core.segments);
    }
}

#[test]
fn is_elf_recognises_x86_cores_only() {
    let file = {
        let mut core = Core::new(true, EM_X86_64);
        core.segments = vec![Seg::pages(0, 1)];
        core.build()
    };
    assert!(is_elf(&file[..20]));
    assert!(!is_elf(&file[..19]));
    assert!(!is_elf(b""));
    let mut exec = file.clone();
    exec[16] = 2; // ET_EXEC
    assert!(!is_elf(&exec));
    let mut arm = file.clone();
    arm[18] = 183; // EM_AARCH64
    assert!(!is_elf(&arm));
    let mut big = file.clone();
    big[5] = 2;
    assert!(!is_elf(&big));
    assert!(!is_elf(b"QEVM\0\0\0\x03 and more bytes to reach twenty"));
}

#[test]
fn opens_a_file_on_disk() {
    let mut core = Core::new(true, EM_X86_64);
    core.segments = vec![Seg::pages(0, 300), Seg::partial(0x200000, 1, 2)];
    let bytes = core.build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.elf");
    std::fs::write(&path, &bytes).unwrap();
    let elf = ElfCore::open(&path).unwrap();
    check_memory(&elf, &bytes, &core.segments);
    assert_eq!(elf.files(), std::slice::from_ref(&path));
    assert_eq!(elf.input().len(), bytes.len() as u64);
}
