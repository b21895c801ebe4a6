//! Damaged and hostile input: every case must return an error, never panic.

use crate::common::*;
use proptest::prelude::*;
use vm2dmp_kdump::{Arch, DumpError, DumpLayout, KernelDump};

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn full64() -> Vec<u8> {
    let runs = [run(1, 4), run(0x10, 2), run(0x100000, 3)];
    let layout = DumpLayout::full(Arch::X64, &runs).unwrap();
    build_dump(&layout, &x64_info(), &run_pfns(&runs))
}

fn bitmap64() -> Vec<u8> {
    let runs = [run(1, 4), run(0x10, 2), run(0x1000, 3)];
    let present = [1, 3, 0x10, 0x11, 0x1002];
    let layout = DumpLayout::bitmap(Arch::X64, &runs, bitmap_of(&runs, &present)).unwrap();
    build_dump(&layout, &x64_info(), &present)
}

fn full32() -> Vec<u8> {
    let runs = [run(1, 4), run(0x10, 2)];
    let layout = DumpLayout::full(Arch::X86 { pae: true }, &runs).unwrap();
    build_dump(&layout, &x86_info(true), &run_pfns(&runs))
}

fn bitmap32() -> Vec<u8> {
    let runs = [run(1, 4), run(0x10, 2)];
    let present = [2, 0x11];
    let layout =
        DumpLayout::bitmap(Arch::X86 { pae: false }, &runs, bitmap_of(&runs, &present)).unwrap();
    build_dump(&layout, &x86_info(false), &present)
}

#[test]
fn valid_samples_parse() {
    for b in [full64(), bitmap64(), full32(), bitmap32()] {
        KernelDump::parse(&b).unwrap();
    }
}

#[test]
fn truncated_headers() {
    let b = full64();
    for len in [0, 3, 4, 7] {
        assert!(matches!(
            KernelDump::parse(&b[..len]),
            Err(DumpError::Truncated {
                structure: "dump header",
                offset: 0,
                ..
            })
        ));
    }
    for len in [8, 0x100, 0x1FFF] {
        assert_eq!(
            KernelDump::parse(&b[..len]),
            Err(DumpError::Truncated {
                structure: "DUMP_HEADER64",
                offset: 0,
                needed: 0x2000,
                available: len as u64
            })
        );
    }
    let b = full32();
    assert!(matches!(
        KernelDump::parse(&b[..0xFFF]),
        Err(DumpError::Truncated {
            structure: "DUMP_HEADER32",
            needed: 0x1000,
            ..
        })
    ));
    // Header intact, summary header cut.
    let b = bitmap64();
    assert!(matches!(
        KernelDump::parse(&b[..0x2010]),
        Err(DumpError::Truncated {
            structure: "bitmap summary header",
            offset: 0x2000,
            ..
        })
    ));
    // Summary intact, bitmap cut.
    assert!(matches!(
        KernelDump::parse(&b[..0x2040]),
        Err(DumpError::Truncated {
            structure: "page bitmap",
            offset: 0x2038,
            ..
        })
    ));
}

#[test]
fn wrong_signatures() {
    let mut b = full64();
    b[0] = b'X';
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::BadSignature {
            structure: "dump header",
            offset: 0,
            ..
        })
    ));
    let mut b = full64();
    b[4..8].copy_from_slice(b"DU32");
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::BadSignature {
            structure: "dump header",
            offset: 4,
            ..
        })
    ));
    // A 64-bit header labelled 'DUMP' is read as a 32-bit header and rejected.
    let mut b = full64();
    b[4..8].copy_from_slice(b"DUMP");
    assert!(KernelDump::parse(&b).is_err());
    let mut b = bitmap64();
    b[0x2000..0x2004].copy_from_slice(b"XXXX");
    assert_eq!(
        KernelDump::parse(&b),
        Err(DumpError::BadSignature {
            structure: "bitmap summary header",
            offset: 0x2000,
            found: u32::from_le_bytes(*b"XXXX"),
            expected: "'FDMP' or 'SDMP'"
        })
    );
    let mut b = bitmap64();
    b[0x2000..0x2004].copy_from_slice(b"SDMP");
    KernelDump::parse(&b).unwrap();
    b[0x2004..0x2008].copy_from_slice(b"PMUD");
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::BadSignature { offset: 0x2004, .. })
    ));
    let mut b = bitmap32();
    b[0x1004] = 0;
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::BadSignature { offset: 0x1004, .. })
    ));
}

#[test]
fn dump_types_without_page_data() {
    for t in [2u32, 3, 4, 7, 8, 9, 0xA] {
        for (mut b, at) in [(full64(), 0xF98), (full32(), 0xF88)] {
            put32(&mut b, at, t);
            // The header is read; the memory is reported as not readable, never guessed.
            let d = KernelDump::parse(&b).unwrap();
            assert_eq!(d.dump_type(), t);
            assert!(!d.has_page_data());
            assert_eq!(d.present_page_count(), 0);
            assert_eq!(d.present_pfns().count(), 0);
            assert_eq!(d.page_file_offset(0x1002), None);
            let err = d.page(&b, 0x1002).unwrap_err();
            assert_eq!(err, DumpError::UnsupportedDumpType(t));
            assert!(
                err.to_string().starts_with(&format!("DumpType {t} (")),
                "{err}"
            );
            let mut buf = [0u8; 16];
            assert_eq!(
                d.read_phys(&b, 0x1002000, &mut buf).unwrap_err(),
                DumpError::UnsupportedDumpType(t)
            );
        }
    }
    // Values no documented dump type has: not a dump header.
    for t in [0u32, 0xB, 0x11, u32::MAX] {
        for (mut b, at) in [(full64(), 0xF98), (full32(), 0xF88)] {
            put32(&mut b, at, t);
            let err = KernelDump::parse(&b).unwrap_err();
            assert_eq!(err, DumpError::UnsupportedDumpType(t));
            assert!(
                err.to_string().contains("not a documented DumpType"),
                "{err}"
            );
        }
    }
    // Type 6 (kernel bitmap) is read like type 5.
    let mut b = bitmap64();
    put32(&mut b, 0xF98, 6);
    assert_eq!(KernelDump::parse(&b).unwrap().present_page_count(), 5);
}

#[test]
fn runs_past_file_end() {
    let b = full64();
    let err = KernelDump::parse(&b[..b.len() - 1]).unwrap_err();
    assert_eq!(
        err,
        DumpError::DataPastEnd {
            structure: "PHYSICAL_MEMORY_DESCRIPTOR64",
            offset: 0x88,
            end: b.len() as u64,
            file_size: b.len() as u64 - 1
        }
    );
    let mut b = full64();
    put64(&mut b, 0x98 + 8, 1 << 40); // first run's PageCount
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::DataPastEnd { .. })
    ));
    let b = full32();
    assert!(matches!(
        KernelDump::parse(&b[..0x1000 + 5 * 0x1000]),
        Err(DumpError::DataPastEnd {
            structure: "PHYSICAL_MEMORY_DESCRIPTOR32",
            offset: 0x64,
            ..
        })
    ));
}

#[test]
fn huge_and_overflowing_run_counts() {
    for n in [44u32, 0x4547_4150 /* 'PAGE' */, u32::MAX] {
        let mut b = full64();
        put32(&mut b, 0x88, n);
        assert_eq!(
            KernelDump::parse(&b),
            Err(DumpError::TooManyRuns {
                structure: "PHYSICAL_MEMORY_DESCRIPTOR64",
                offset: 0x88,
                count: u64::from(n),
                max: 43
            })
        );
    }
    let mut b = full32();
    put32(&mut b, 0x64, 87);
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::TooManyRuns { max: 86, .. })
    ));
    // BasePage + PageCount wraps.
    let mut b = full64();
    put64(&mut b, 0x98, u64::MAX - 1);
    assert_eq!(
        KernelDump::parse(&b),
        Err(DumpError::Overflow {
            structure: "PHYSICAL_MEMORY_DESCRIPTOR64",
            offset: 0x98,
            what: "run end address"
        })
    );
    // Runs covering all 2^52 PFNs: their byte size overflows 64 bits.
    let mut b = full64();
    put32(&mut b, 0x88, 2);
    put64(&mut b, 0x98, 0);
    put64(&mut b, 0xA0, 1 << 51);
    put64(&mut b, 0xA8, 1 << 51);
    put64(&mut b, 0xB0, 1 << 51);
    assert_eq!(
        KernelDump::parse(&b),
        Err(DumpError::Overflow {
            structure: "PHYSICAL_MEMORY_DESCRIPTOR64",
            offset: 0x88,
            what: "page data size"
        })
    );
    // Overlapping runs.
    let mut b = full64();
    put64(&mut b, 0xA8, 3); // second run base 0x10 -> 3, inside the first run
    assert_eq!(
        KernelDump::parse(&b),
        Err(DumpError::OverlappingRuns {
            structure: "PHYSICAL_MEMORY_DESCRIPTOR64",
            offset: 0xA8,
            pfn: 3
        })
    );
}

#[test]
fn bitmap_fields_out_of_range() {
    // FirstPage past the end.
    let mut b = bitmap64();
    let len = b.len() as u64;
    put64(&mut b, 0x2020, len);
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::DataPastEnd {
            structure: "bitmap summary header",
            offset: 0x2020,
            ..
        })
    ));
    put64(&mut b, 0x2020, u64::MAX - 0x1000);
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::Overflow { offset: 0x2020, .. })
    ));
    // Pages larger than the file can hold.
    let mut b = bitmap64();
    put64(&mut b, 0x2030, 1 << 20);
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::Truncated {
            structure: "page bitmap",
            ..
        })
    ));
    // Pages for RAM beyond 16 TiB: not read, whatever the file holds.
    put64(&mut b, 0x2030, (1 << 32) + 8);
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::Overflow { offset: 0x2030, .. })
    ));
    put64(&mut b, 0x2030, u64::MAX);
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::Overflow { offset: 0x2030, .. })
    ));
    // More set bits than pages in the file.
    let mut b = bitmap64();
    b[0x2038 + 4] = 0xFF;
    assert!(matches!(
        KernelDump::parse(&b),
        Err(DumpError::DataPastEnd { .. })
    ));
    // A wrong TotalPresentPages is reported, not trusted.
    let mut b = bitmap64();
    put64(&mut b, 0x2028, 999);
    let d = KernelDump::parse(&b).unwrap();
    assert_eq!(d.bitmap().unwrap().total_present_pages, 999);
    assert_eq!(d.bitmap().unwrap().present_count, 5);
    // The run list of a bitmap dump is not needed: garbage there reads as no runs.
    let mut b = bitmap64();
    put32(&mut b, 0x88, 0x4547_4150);
    let d = KernelDump::parse(&b).unwrap();
    assert!(d.runs().is_empty());
    assert_eq!(d.page(&b, 0x1002).unwrap(), &page_content(0x1002)[..]);
}

fn mutate(mut b: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let n = b.len();
    for &(pos, val) in edits {
        // Mostly in the headers, where the structure is.
        let pos = if pos % 4 == 0 {
            pos % n
        } else {
            pos % n.min(0x2400)
        };
        b[pos] = val;
    }
    let keep = n - cut % (n / 4).max(1);
    b.truncate(keep);
    b
}

fn exercise(b: &[u8]) {
    if let Ok(d) = KernelDump::parse(b) {
        let pfns: Vec<u64> = d.present_pfns().take(64).collect();
        for pfn in pfns {
            let _ = d.page(b, pfn);
            let mut buf = [0u8; 0x1800];
            let _ = d.read_phys(b, (pfn << 12) | 0x900, &mut buf);
        }
        let _ = d.page_file_offset(u64::MAX);
        let _ = d.info();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_dumps_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..24),
        cut in any::<usize>(),
    ) {
        let base = match which {
            0 => full64(),
            1 => bitmap64(),
            2 => full32(),
            _ => bitmap32(),
        };
        exercise(&mutate(base, &edits, cut));
    }

    #[test]
    fn random_field_values_never_panic(
        which in 0usize..4,
        fields in proptest::collection::vec((0usize..0x1040, any::<u64>()), 1..6),
    ) {
        let mut b = match which {
            0 => full64(),
            1 => bitmap64(),
            2 => full32(),
            _ => bitmap32(),
        };
        let summary = if which < 2 { 0x2000 } else { 0x1000 };
        for (slot, v) in fields {
            // Aim at the count/offset fields: run list and summary header.
            let off = match slot % 3 {
                0 => 0x60 + (slot % 0x2E0) / 4 * 4,
                1 => summary + (slot % 0x38) / 8 * 8,
                _ => slot / 4 * 4,
            };
            let off = off.min(b.len() - 8);
            put64(&mut b, off, v);
        }
        exercise(&b);
    }

    #[test]
    fn random_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..0x2100), sig in 0u8..3) {
        if b.len() >= 8 {
            match sig {
                0 => b[..8].copy_from_slice(b"PAGEDU64"),
                1 => b[..8].copy_from_slice(b"PAGEDUMP"),
                _ => {}
            }
        }
        exercise(&b);
    }
}

#[test]
fn bitmap_first_page_inside_header_or_bitmap() {
    for (mut d, header) in [(bitmap64(), 0x2000usize), (bitmap32(), 0x1000)] {
        // FirstPage pointing at the summary header itself.
        put64(&mut d, header + 0x20, header as u64);
        match KernelDump::parse(&d) {
            Err(DumpError::PagesOverlapHeader { first_page, .. }) => {
                assert_eq!(first_page, header as u64)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn prefix_parse_matches_whole_file() {
    for b in [full64(), bitmap64(), full32(), bitmap32()] {
        let head = &b[..(KernelDump::HEADER_PREFIX as usize).min(b.len())];
        let need = KernelDump::metadata_len(head, b.len() as u64) as usize;
        let whole = KernelDump::parse(&b).unwrap();
        assert!(whole.data_offset() as usize >= need);
        assert_eq!(
            KernelDump::parse_prefix(&b[..need], b.len() as u64).unwrap(),
            whole
        );
        // One byte short of what the header asks for: refused, never read past.
        assert!(KernelDump::parse_prefix(&b[..need - 1], b.len() as u64).is_err());
        // A file shorter than its page data: refused by size, whatever the prefix holds.
        assert!(matches!(
            KernelDump::parse_prefix(&b[..need], b.len() as u64 - 1),
            Err(DumpError::DataPastEnd { .. })
        ));
    }
}

/// A full dump whose runs are stored out of PFN order (0, 5, 2, 1: one page each). Page
/// lookups follow the run list; `stored_run` only reports pages as one stretch of the file
/// when they share a run, so a range whose first and last pages happen to lie the right
/// distance apart is not mistaken for a stretch.
#[test]
fn runs_stored_out_of_order() {
    let order = [0u64, 5, 2, 1];
    let sorted = [run(0, 3), run(5, 1)];
    let layout = DumpLayout::full(Arch::X64, &sorted).unwrap();
    let mut b = layout.header_bytes(&x64_info());
    put32(&mut b, 0x88, order.len() as u32);
    put64(&mut b, 0x90, order.len() as u64);
    for (i, &pfn) in order.iter().enumerate() {
        put64(&mut b, 0x98 + i * 16, pfn);
        put64(&mut b, 0xA0 + i * 16, 1);
    }
    for &pfn in &order {
        b.extend_from_slice(&page_content(pfn));
    }
    let d = KernelDump::parse(&b).unwrap();
    for pfn in [0, 1, 2, 5] {
        assert_eq!(
            d.page(&b, pfn).unwrap(),
            &page_content(pfn)[..],
            "pfn {pfn}"
        );
    }
    // PFN 0 at slot 0 and PFN 2 at slot 2: two pages apart, but PFN 1 is at slot 3.
    assert_eq!(d.stored_run(0, 3), None);
    assert_eq!(d.stored_run(0, 1), Some(0x2000));
    assert_eq!(d.stored_run(5, 1), Some(0x3000));
    assert_eq!(d.stored_run(5, 2), None);
    assert_eq!(d.stored_run(3, 1), None);
    // Bitmap dumps: a stretch is reported only when every page in it is present.
    let b = bitmap64();
    let d = KernelDump::parse(&b).unwrap();
    assert!(d.stored_run(0x10, 2).is_some());
    assert_eq!(d.stored_run(1, 3), None, "PFN 2 is absent");
    assert_eq!(d.stored_run(3, 0), None);
}
