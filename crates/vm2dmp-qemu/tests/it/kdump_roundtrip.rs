//! Synthetic kdump-compressed files read back: every compression, plain and flattened.

use vm2dmp_qemu::flat::is_flattened;
use vm2dmp_qemu::kdump::{is_kdump, KdumpFile};
use vm2dmp_source::{mask_has, Error, MemorySource, RamRange, MAX_CHUNK_PAGES, PAGE_SIZE};
use vm2dmp_synth::kdump_file::{pattern_page, KdumpCompression, KdumpSpec};

use crate::kdump_common::{build, open};

/// RAM below 1 MiB with a hole, a range crossing chunk sizes, and RAM above 4 GiB.
const RANGES: [(u64, u64); 3] = [(0, 160), (0x100, 600), (0x10_0000, 70)];

fn spec(compression: KdumpCompression, flattened: bool) -> KdumpSpec {
    KdumpSpec {
        ranges: RANGES.to_vec(),
        compression,
        flattened,
        flat_record_size: 5000,
        ..KdumpSpec::default()
    }
}

/// Every page equals what was written; zero-fill masks name only zero pages, and every
/// page behind the shared zero page.
fn check_pages(k: &KdumpFile, shared_zero: bool) {
    let mut buf = vec![0xEEu8; MAX_CHUNK_PAGES * PAGE_SIZE];
    let mut seen = 0u64;
    for n in 0..k.chunk_count() {
        let mask = k.decode_chunk(n, &mut buf).unwrap();
        let cheap = k.zero_pages(n).unwrap();
        let spans = k.chunk_spans(n);
        assert_eq!(spans.len(), 1);
        for s in spans {
            assert!(s.pages <= MAX_CHUNK_PAGES);
            let r = k.range_of(s.gpa_page).unwrap();
            assert!(
                s.gpa_page + s.pages as u64 <= r.gpa_page_end(),
                "chunk crosses a hole"
            );
            for i in 0..s.pages {
                let pfn = s.gpa_page + i as u64;
                let want = pattern_page(pfn);
                let got = &buf[(s.page_in_chunk + i) * PAGE_SIZE..][..PAGE_SIZE];
                assert_eq!(got, &want[..], "pfn {pfn:#x}");
                let zero = want.iter().all(|&b| b == 0);
                let at = s.page_in_chunk + i;
                if mask_has(&mask, at) || mask_has(&cheap, at) {
                    assert!(zero, "pfn {pfn:#x} masked as zero");
                }
                if zero && shared_zero {
                    assert!(mask_has(&cheap, at) && mask_has(&mask, at), "pfn {pfn:#x}");
                }
                seen += 1;
            }
        }
    }
    assert_eq!(seen, k.ram_pages());
}

#[test]
fn every_compression_plain_and_flattened() {
    for compression in KdumpCompression::ALL {
        for flattened in [false, true] {
            for shared_zero_page in [true, false] {
                let s = KdumpSpec {
                    shared_zero_page,
                    ..spec(compression, flattened)
                };
                let (k, bytes, _) = build(&s);
                let what = format!("{compression:?} flattened={flattened}");
                assert_eq!(is_flattened(&bytes), flattened, "{what}");
                assert_eq!(is_kdump(&bytes), !flattened, "{what}");
                assert_eq!(k.is_flattened(), flattened);
                let want: Vec<RamRange> = RANGES
                    .iter()
                    .map(|&(s, n)| RamRange {
                        gpa_page_start: s,
                        page_count: n,
                    })
                    .collect();
                assert_eq!(k.ram_ranges(), &want[..], "{what}");
                check_pages(&k, shared_zero_page);
                assert!(k.machine().kind.contains("kdump"), "{what}");
            }
        }
    }
}

#[test]
fn mixed_compressions_in_one_file() {
    let s = KdumpSpec {
        compression_of: Some(Box::new(|pfn| {
            KdumpCompression::ALL[(pfn % 7 % 5) as usize]
        })),
        ..spec(KdumpCompression::Zlib, true)
    };
    let (k, _, _) = build(&s);
    check_pages(&k, true);
}

#[test]
fn liblzo2_pages_inside_a_file() {
    let page: &[u8] = include_bytes!("../data/lzo/mixed.page");
    let packed: &[u8] = include_bytes!("../data/lzo/mixed.lzo1x_1");
    let s = KdumpSpec {
        ranges: vec![(16, 4)],
        page: Box::new(move |_| page.to_vec()),
        stored_of: Some(Box::new(move |_| Some((packed.to_vec(), 0x2)))),
        ..KdumpSpec::default()
    };
    let (k, _, _) = build(&s);
    let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
    k.decode_chunk(0, &mut buf).unwrap();
    for i in 0..4 {
        assert_eq!(&buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE], page);
    }
}

#[test]
fn read_phys_crosses_pages_and_stops_at_holes() {
    let (k, _, _) = build(&spec(KdumpCompression::Snappy, true));
    let mut b = vec![0u8; 3 * PAGE_SIZE];
    k.read_phys(0x1000 + 100, &mut b).unwrap();
    let mut want = Vec::new();
    for pfn in 1..5 {
        want.extend(pattern_page(pfn));
    }
    assert_eq!(&b[..], &want[100..100 + 3 * PAGE_SIZE]);
    // pfn 0xa0 .. 0x100 is a hole.
    let r = k.read_phys(0x9f000 + 10, &mut b);
    assert!(matches!(r, Err(Error::Hole { gpa: 0xa0000 })), "{r:?}");
    // Above 4 GiB.
    let mut one = vec![0u8; 8];
    k.read_phys(0x1_0000_3000, &mut one).unwrap();
    assert_eq!(one, pattern_page(0x10_0003)[..8]);
}

#[test]
fn raw_chunks_only_for_stored_contiguous_pages_of_a_plain_file() {
    let raw = KdumpSpec {
        shared_zero_page: false,
        ..spec(KdumpCompression::Raw, false)
    };
    let (k, bytes, layout) = build(&raw);
    assert!(k.chunk_count() > 0);
    for n in 0..k.chunk_count() {
        let c = k.raw_chunk(n).expect("every chunk is stored as it is");
        let first = k.chunk_spans(n)[0].gpa_page;
        let want = layout.pages.iter().find(|p| p.0 == first).unwrap().2;
        assert_eq!(c.offset, want);
        assert_eq!(
            &bytes[want as usize..want as usize + PAGE_SIZE],
            &pattern_page(first)[..]
        );
    }
    let (k, _, _) = build(&KdumpSpec {
        flattened: true,
        ..raw
    });
    assert!((0..k.chunk_count()).all(|n| k.raw_chunk(n).is_none()));
    let (k, _, _) = build(&spec(KdumpCompression::Zlib, false));
    assert!((0..k.chunk_count()).all(|n| k.raw_chunk(n).is_none()));
}

#[test]
fn flattened_later_records_win_and_a_missing_end_is_noted() {
    let s = KdumpSpec {
        flat_stale_header: true,
        flat_no_end: true,
        ..spec(KdumpCompression::Lzo, true)
    };
    let (k, _, _) = build(&s);
    check_pages(&k, true);
    assert!(k
        .machine()
        .notes
        .iter()
        .any(|n| n.contains("no end marker")));
}

#[test]
fn excluded_pages_are_holes_and_noted() {
    let s = KdumpSpec {
        ranges: vec![(0, 10), (12, 10)],
        excluded: vec![10, 11],
        ..KdumpSpec::default()
    };
    let (k, _, _) = build(&s);
    assert_eq!(k.ram_ranges().len(), 2);
    assert!(k
        .machine()
        .notes
        .iter()
        .any(|n| n.contains("2 pages were excluded")));
    let mut b = [0u8; 1];
    assert!(matches!(
        k.read_phys(0xa000, &mut b),
        Err(Error::Hole { .. })
    ));
}

#[test]
fn notes_block_is_read_from_the_sub_header() {
    // One VMCOREINFO note (name "VMCOREINFO", type 0), as a Linux guest's, 5000 bytes in all.
    let text = vec![b'x'; 5000 - 12 - 12];
    let mut notes = Vec::new();
    notes.extend(11u32.to_le_bytes());
    notes.extend((text.len() as u32).to_le_bytes());
    notes.extend(0u32.to_le_bytes());
    notes.extend(b"VMCOREINFO\0\0");
    notes.extend(&text);
    let s = KdumpSpec {
        notes,
        ..spec(KdumpCompression::Zlib, false)
    };
    let (k, _, layout) = build(&s);
    assert_eq!(k.header().note, (layout.notes.0, 5000));
    assert_eq!(k.header().sub_hdr_size, 2);
    check_pages(&k, true);
}

#[test]
fn empty_and_tiny_inputs_are_errors() {
    for len in [0usize, 1, 8, 31, 100] {
        let r = open(vec![0u8; len]);
        assert!(r.is_err(), "{len} bytes");
    }
}
