//! Real QEMU dumps (`scripts/capture-qemu-dumps.sh`, run by CI into `target/qemu-dumps`): one
//! stopped OVMF guest (q35, 2 vCPUs, 1.5 GiB with 512 MiB above 4 GiB) as QEMU itself wrote it
//! in three formats: an ELF core, a kdump-compressed file (flattened, zlib) and a raw image of
//! three ranges (`pmemsave`), and, with makedumpfile, a plain and an LZO kdump file. The readers must agree page for page and register for register,
//! and each converts to a dump that verifies and that kdmp-parser reads.
//!
//! Without the dumps (a machine without QEMU) the tests say so and pass.

use std::path::PathBuf;

use rayon::prelude::*;
use vm2dmp::input::{Input, OpenOptions};
use vm2dmp::raw::{MemoryMap, RawImage, RawOptions};
use vm2dmp::source::{MAX_CHUNK_PAGES, PAGE_SIZE};
use vm2dmp::{convert, verify, Cancel, ConvertOptions, DumpFile, MemorySource, NoProgress};

/// The folder of the real dumps, or `None` (with a message) when they were not captured.
fn dumps() -> Option<PathBuf> {
    let dir = std::env::var_os("VM2DMP_QEMU_DUMPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/qemu-dumps")
        });
    if dir.join("ovmf.elf").is_file() && dir.join("ovmf.kdump-zlib").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no real QEMU dumps in {} (scripts/capture-qemu-dumps.sh target/qemu-dumps writes them)",
            dir.display()
        );
        None
    }
}

fn open(path: PathBuf) -> Input {
    Input::open(&path, &OpenOptions::default()).unwrap()
}

/// Every page of `a` equals the same page of `b`; returns the number of pages compared.
fn same_pages(a: &dyn MemorySource, b: &dyn MemorySource) -> u64 {
    (0..a.chunk_count())
        .into_par_iter()
        .map(|n| {
            let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
            a.decode_chunk(n, &mut buf).unwrap();
            let mut other = vec![0u8; PAGE_SIZE];
            let mut pages = 0;
            for s in a.chunk_spans(n) {
                for i in 0..s.pages {
                    let gpa = (s.gpa_page + i as u64) << 12;
                    b.read_phys(gpa, &mut other).unwrap();
                    let at = (s.page_in_chunk + i) * PAGE_SIZE;
                    assert!(
                        buf[at..at + PAGE_SIZE] == other[..],
                        "page at {gpa:#x} differs"
                    );
                    pages += 1;
                }
            }
            pages
        })
        .sum()
}

#[test]
fn qemu_elf_and_kdump_hold_the_same_guest() {
    let Some(dir) = dumps() else { return };
    let elf = open(dir.join("ovmf.elf"));
    let kdump = open(dir.join("ovmf.kdump-zlib"));
    assert!(elf.machine().kind.contains("ELF"), "{}", elf.machine().kind);
    assert!(
        kdump.machine().kind.contains("kdump"),
        "{}",
        kdump.machine().kind
    );
    // q35 with 1 GiB below 4 GiB: RAM from 0 with the legacy VGA/BIOS area split off, the
    // 16 MiB VGA frame buffer at 3 GiB (a RAM block of QEMU's), 512 MiB at 4 GiB.
    let ranges = elf.ram_ranges();
    assert_eq!(ranges.first().unwrap().gpa_start(), 0);
    assert_eq!(ranges.last().unwrap().gpa_start(), 0x1_0000_0000);
    assert_eq!(ranges.last().unwrap().gpa_end(), 0x1_2000_0000);
    assert!(ranges.iter().any(|r| r.gpa_end() == 0x4000_0000));
    assert_eq!(elf.ram_pages(), kdump.ram_pages());
    assert_eq!(elf.ram_ranges(), kdump.ram_ranges());
    assert_eq!(same_pages(&elf, &kdump), elf.ram_pages());

    // The same notes in both files: two processors, the boot one in long mode in firmware.
    let (a, b) = (elf.vcpus(), kdump.vcpus());
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
    let bsp = &a[0];
    assert!(bsp.cr0 & 0x8000_0001 == 0x8000_0001, "CR0 {:#x}", bsp.cr0);
    assert!(bsp.cr4 & 0x20 != 0, "CR4 {:#x}", bsp.cr4);
    assert_eq!(bsp.architecture(), vm2dmp::source::Architecture::X64);
    assert!(bsp.cs.attributes & (1 << 13) != 0, "CS.L");
    assert!(
        elf.range_of(bsp.cr3 >> 12).is_some(),
        "CR3 {:#x} in RAM",
        bsp.cr3
    );
    assert!(
        elf.machine().notes.iter().any(|n| n.contains("EFER")),
        "{:?}",
        elf.machine().notes
    );
}

#[test]
fn qemu_dumps_convert_to_dumps_that_verify() {
    let Some(dir) = dumps() else { return };
    let elf = open(dir.join("ovmf.elf"));
    let kdump = open(dir.join("ovmf.kdump-zlib"));
    let out = tempfile::tempdir().unwrap();
    for (name, src) in [("elf", &elf), ("kdump", &kdump)] {
        let path = out.path().join(format!("{name}.dmp"));
        let report = convert(
            src,
            &path,
            &ConvertOptions::default(),
            &NoProgress,
            &Cancel::new(),
        )
        .unwrap();
        assert_eq!(report.number_processors, 2);
        assert_eq!(report.guest_pages, elf.ram_pages());
        let dump = DumpFile::open(&path).unwrap();
        // Each dump against the other format's reader: the same guest either way.
        let other: &dyn MemorySource = if name == "elf" { &kdump } else { &elf };
        let v = verify(&dump, other, None, &NoProgress, &Cancel::new()).unwrap();
        assert!(v.ok(), "{name}: {v:?}");
        assert_eq!(v.pages_compared, elf.ram_pages());

        // kdmp-parser: the header's context is the boot processor's; sampled pages agree.
        let parser = kdmp_parser::parse::KernelDumpParser::new(&path).unwrap();
        assert_eq!(parser.context_record().rip, elf.vcpus()[0].rip);
        assert_eq!(parser.context_record().rsp, elf.vcpus()[0].rsp);
        assert_eq!(
            parser.headers().directory_table_base,
            elf.vcpus()[0].cr3 & !0xFFF
        );
        let reader = kdmp_parser::phys::Reader::new(&parser);
        let (mut got, mut want) = ([0u8; PAGE_SIZE], [0u8; PAGE_SIZE]);
        for r in elf.ram_ranges() {
            for pfn in (r.gpa_page_start..r.gpa_page_end()).step_by(61) {
                reader
                    .read_exact(kdmp_parser::gxa::Gpa::new(pfn << 12), &mut got)
                    .unwrap();
                elf.read_phys(pfn << 12, &mut want).unwrap();
                assert!(got == want, "{name}: page {pfn:#x}");
            }
        }
    }
}

#[test]
fn qemu_pmemsave_raw_image_matches_the_elf() {
    let Some(dir) = dumps() else { return };
    let raw_path = dir.join("ovmf.raw");
    if !raw_path.is_file() {
        eprintln!("skipped: no {}", raw_path.display());
        return;
    }
    let elf = open(dir.join("ovmf.elf"));
    let raw = RawImage::open(
        &raw_path,
        &RawOptions {
            map: Some(
                MemoryMap::parse("0x0-0xfffffff,0x30000000-0x3fffffff,0x100000000-0x11fffffff")
                    .unwrap(),
            ),
            ..RawOptions::default()
        },
    )
    .unwrap();
    assert_eq!(raw.ram_pages(), (256 + 256 + 512) * 256);
    // pmemsave reads what the CPU would: below 1 MiB the legacy VGA window and option ROMs
    // are device memory, not the RAM QEMU's dump holds there. From 1 MiB on they agree.
    let mut a = vec![0u8; PAGE_SIZE];
    let mut b = vec![0u8; PAGE_SIZE];
    let mut compared = 0u64;
    for r in raw.ram_ranges() {
        for pfn in r.gpa_page_start.max(0x100)..r.gpa_page_end() {
            raw.read_phys(pfn << 12, &mut a).unwrap();
            elf.read_phys(pfn << 12, &mut b).unwrap();
            assert!(a == b, "page {pfn:#x}");
            compared += 1;
        }
    }
    assert_eq!(compared, raw.ram_pages() - 0x100);
}

/// What Debian's makedumpfile writes of the same guest (`scripts/capture-qemu-dumps.sh` when
/// makedumpfile is installed, as in CI): QEMU's flattened file reassembled into a plain one,
/// and an LZO file made from the ELF core. Both read as the ELF core does.
#[test]
fn makedumpfile_plain_and_lzo_files_match_the_elf() {
    let Some(dir) = dumps() else { return };
    let files = [
        ("ovmf.kdump-plain", "(zlib)"),
        ("ovmf.kdump-lzo-makedumpfile", "(lzo)"),
    ];
    if !files.iter().all(|(f, _)| dir.join(f).is_file()) {
        eprintln!("skipped: no makedumpfile output in {}", dir.display());
        return;
    }
    let elf = open(dir.join("ovmf.elf"));
    for (name, kind) in files {
        let kd = open(dir.join(name));
        assert!(
            kd.machine().kind.ends_with(kind),
            "{name}: {}",
            kd.machine().kind
        );
        assert_eq!(kd.ram_ranges(), elf.ram_ranges(), "{name}");
        assert_eq!(kd.vcpus(), elf.vcpus(), "{name}");
        assert_eq!(same_pages(&kd, &elf), elf.ram_pages(), "{name}");
    }
}
