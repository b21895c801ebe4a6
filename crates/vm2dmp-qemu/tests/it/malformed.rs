//! Broken files: each defect gives an error naming the structure and its offset, and no
//! truncation or byte flip makes the reader panic.

use vm2dmp_qemu::elf::ElfCore;
use vm2dmp_source::{Error, MemorySource, Result, MAX_CHUNK_PAGES, PAGE_SIZE};

use crate::writer::{
    open, prstatus64, vbcore, Core, Layout, NoteRec, QemuCpu, Seg, VboxCpu, EM_X86_64,
};

/// A change made to a valid file.
type Edit<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;

fn corrupt(r: Result<ElfCore>) -> (&'static str, u64, String) {
    match r {
        Err(Error::Corrupt {
            structure,
            offset,
            detail,
            ..
        }) => (structure, offset, detail),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

fn unsupported(r: Result<ElfCore>) -> String {
    match r {
        Err(Error::Unsupported { detail, .. }) => detail,
        other => panic!("expected an unsupported error, got {other:?}"),
    }
}

/// A valid little core with QEMU notes for two processors and three segments.
fn sample(elf64: bool) -> Core {
    let mut core = Core::new(elf64, if elf64 { EM_X86_64 } else { 3 });
    core.segments = vec![
        Seg::pages(0, 2),
        Seg::partial(0x10000, 1, 3),
        Seg::pages(0x20000, 1),
    ];
    let mut cpu = QemuCpu {
        cr: [0x8000_0011, 0, 0, 0x1000, 0x20],
        kernel_gs_base: Some(7),
        ..QemuCpu::default()
    };
    cpu.segs[0].flags = 0x0020_9b00;
    core.notes = vec![
        prstatus64(1, [0; 27]),
        prstatus64(2, [0; 27]),
        cpu.note(),
        cpu.note(),
    ];
    core
}

fn build(core: &Core) -> (Vec<u8>, Layout) {
    core.build_with_layout()
}

fn put_u64(f: &mut [u8], at: u64, v: u64) {
    f[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(f: &mut [u8], at: u64, v: u32) {
    f[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u16(f: &mut [u8], at: u64, v: u16) {
    f[at as usize..at as usize + 2].copy_from_slice(&v.to_le_bytes());
}

/// Offset of field `field` (ELF64 offsets) of program header `i`.
fn phdr_field(l: &Layout, i: u64, field: u64) -> u64 {
    l.phoff + i * l.phentsize + field
}

#[test]
fn the_sample_is_valid() {
    for elf64 in [true, false] {
        let elf = open(sample(elf64).build()).unwrap();
        assert_eq!(elf.vcpus().len(), 2);
        assert_eq!(elf.ram_pages(), 6);
    }
}

#[test]
fn header_defects() {
    let (file, _) = build(&sample(true));
    // Truncated headers.
    assert_eq!(corrupt(open(file[..10].to_vec())).0, "ELF header");
    let (s, o, _) = corrupt(open(file[..40].to_vec()));
    assert_eq!((s, o), ("ELF header", 0));
    assert_eq!(corrupt(open(Vec::new())).0, "ELF header");
    // Not ELF.
    let mut f = file.clone();
    f[0] = b'X';
    let (s, o, d) = corrupt(open(f));
    assert_eq!((s, o), ("ELF header", 0));
    assert!(d.contains("magic"));
    // Class and data encoding.
    let mut f = file.clone();
    f[4] = 3;
    assert_eq!(corrupt(open(f)).1, 4);
    let mut f = file.clone();
    f[5] = 7;
    assert_eq!(corrupt(open(f)).1, 5);
    let mut f = file.clone();
    f[5] = 2;
    assert!(unsupported(open(f)).contains("big-endian"));
    // Not a core, not x86.
    let mut f = file.clone();
    f[16] = 2;
    assert!(unsupported(open(f)).contains("not a core file"));
    let mut f = file.clone();
    f[18] = 40;
    assert!(unsupported(open(f)).contains("x86"));
}

#[test]
fn program_header_table_defects() {
    let (file, l) = build(&sample(true));
    // The table past the end of the file.
    let mut f = file.clone();
    put_u64(&mut f, 32, file.len() as u64 - 10);
    let (s, o, _) = corrupt(open(f));
    assert_eq!((s, o), ("ELF program header table", file.len() as u64 - 10));
    // An offset that overflows.
    let mut f = file.clone();
    put_u64(&mut f, 32, u64::MAX - 3);
    assert_eq!(corrupt(open(f)).0, "ELF program header table");
    // Entries smaller than a program header.
    let mut f = file.clone();
    put_u16(&mut f, 54, 20);
    let (s, o, d) = corrupt(open(f));
    assert_eq!((s, o), ("ELF header", 0));
    assert!(d.contains("e_phentsize"));
    // Truncated inside the table.
    let cut = (l.phoff + l.phentsize + 5) as usize;
    assert_eq!(
        corrupt(open(file[..cut].to_vec())).0,
        "ELF program header table"
    );
    // No PT_LOAD at all.
    let mut core = sample(true);
    core.segments.clear();
    assert!(matches!(
        open(core.build()),
        Err(Error::NoMemoryImage { .. })
    ));
}

#[test]
fn huge_counts_are_refused_before_anything_is_allocated() {
    let mut core = sample(true);
    core.xnum = true;
    let (file, l) = build(&core);
    assert!(open(file.clone()).is_ok());
    // PN_XNUM with a count of 4 billion in section header 0.
    let mut f = file.clone();
    put_u32(&mut f, l.shoff + 44, u32::MAX);
    let (s, o, d) = corrupt(open(f));
    assert_eq!((s, o), ("ELF header", 0));
    assert!(d.contains("program headers"), "{d}");
    // A count the limit allows but the file does not hold.
    let mut f = file.clone();
    put_u32(&mut f, l.shoff + 44, 1 << 20);
    assert_eq!(corrupt(open(f)).0, "ELF program header table");
    // PN_XNUM without a section header.
    let mut f = file.clone();
    put_u64(&mut f, 40, 0);
    let (s, _, d) = corrupt(open(f));
    assert_eq!(s, "ELF header");
    assert!(d.contains("PN_XNUM"));
    // Section header 0 past the end of the file.
    let mut f = file.clone();
    put_u64(&mut f, 40, file.len() as u64 - 4);
    assert_eq!(corrupt(open(f)).0, "ELF section header 0");
}

#[test]
fn segment_defects() {
    let (file, l) = build(&sample(true));
    // Program header 0 is the PT_NOTE; 1..4 the PT_LOADs.
    let load = |i: u64| phdr_field(&l, 1 + i, 0);
    let cases: Vec<(&str, u64, Edit<'_>)> = vec![
        (
            "segment beyond EOF",
            load(2),
            Box::new(|f: &mut Vec<u8>| {
                let len = f.len() as u64;
                put_u64(f, phdr_field(&l, 3, 8), len - 100)
            }),
        ),
        (
            "p_offset + p_filesz overflows",
            load(0),
            Box::new(|f: &mut Vec<u8>| put_u64(f, phdr_field(&l, 1, 8), u64::MAX - 0x1000)),
        ),
        (
            "p_filesz beyond EOF",
            load(1),
            Box::new(|f: &mut Vec<u8>| {
                put_u64(f, phdr_field(&l, 2, 32), 1 << 40);
                put_u64(f, phdr_field(&l, 2, 40), 1 << 40);
            }),
        ),
        (
            "p_filesz > p_memsz",
            load(0),
            Box::new(|f: &mut Vec<u8>| put_u64(f, phdr_field(&l, 1, 40), 4096)),
        ),
        (
            "p_paddr + p_memsz overflows",
            load(1),
            Box::new(|f: &mut Vec<u8>| put_u64(f, phdr_field(&l, 2, 24), u64::MAX - 0xfff)),
        ),
        (
            "beyond 52-bit physical addresses",
            load(1),
            Box::new(|f: &mut Vec<u8>| put_u64(f, phdr_field(&l, 2, 40), 1 << 53)),
        ),
        (
            "notes beyond EOF",
            phdr_field(&l, 0, 0),
            Box::new(|f: &mut Vec<u8>| {
                let len = f.len() as u64;
                put_u64(f, phdr_field(&l, 0, 32), len)
            }),
        ),
    ];
    for (what, at, edit) in cases {
        let mut f = file.clone();
        edit(&mut f);
        let (s, o, d) = corrupt(open(f));
        assert!(
            s == "PT_LOAD program header" || s == "PT_NOTE program header",
            "{what}: {s}"
        );
        assert_eq!(o, at, "{what}: {d}");
    }
    // An unaligned physical address is a variant not read, said plainly.
    let mut f = file.clone();
    put_u64(&mut f, phdr_field(&l, 2, 24), 0x10800);
    let d = unsupported(open(f));
    assert!(
        d.contains("0x10800") && d.contains("not page-aligned"),
        "{d}"
    );
}

#[test]
fn note_defects() {
    let core = sample(true);
    let (file, l) = build(&core);
    let [pr0, pr1, q0, _] = l.note_offsets[..] else {
        panic!()
    };
    let cases: Vec<(&str, &str, u64, Edit<'_>)> = vec![
        (
            "namesz past the block",
            "ELF note",
            pr0,
            Box::new(move |f: &mut Vec<u8>| put_u32(f, pr0, 0x7fff_ffff)),
        ),
        (
            "descsz that overflows",
            "ELF note",
            q0,
            Box::new(move |f: &mut Vec<u8>| put_u32(f, q0 + 4, u32::MAX)),
        ),
        (
            "NT_PRSTATUS of an unknown size",
            "NT_PRSTATUS note",
            pr0,
            Box::new(move |f: &mut Vec<u8>| {
                // 336 -> 332: the note still parses, its size is wrong.
                put_u32(f, pr0 + 4, 332);
            }),
        ),
        (
            "QEMUCPUState larger than its note",
            "QEMU note",
            q0,
            Box::new(move |f: &mut Vec<u8>| put_u32(f, q0 + 12 + 8 + 4, 100_000)),
        ),
        (
            "QEMUCPUState too small",
            "QEMU note",
            q0,
            Box::new(move |f: &mut Vec<u8>| put_u32(f, q0 + 12 + 8 + 4, 100)),
        ),
    ];
    for (what, structure, at, edit) in cases {
        let mut f = file.clone();
        edit(&mut f);
        let (s, o, d) = corrupt(open(f));
        assert_eq!((s, o), (structure, at), "{what}: {d}");
    }
    // A block that ends inside the second note's header.
    let mut f = file.clone();
    put_u64(&mut f, phdr_field(&l, 0, 32), pr1 + 5 - l.notes_offset);
    let (s, o, _) = corrupt(open(f));
    assert_eq!((s, o), ("ELF note", pr1));
    // A QEMUCPUState of another version: registers from NT_PRSTATUS, said in a note.
    let mut f = file.clone();
    put_u32(&mut f, q0 + 12 + 8, 2);
    let elf = open(f).unwrap();
    assert!(!elf.vcpus()[0].has_control);
    assert!(elf.machine().notes.iter().any(|n| n.contains("version 2")));
}

#[test]
fn virtualbox_note_defects() {
    let mut core = Core::new(true, EM_X86_64);
    core.segments = vec![Seg::pages(0, 1)];
    core.notes = vec![vbcore(0x0001_0005, 1), VboxCpu::default().note()];
    let (file, l) = build(&core);
    let [desc, cpu] = l.note_offsets[..] else {
        panic!()
    };
    let mut f = file.clone();
    put_u32(&mut f, desc + 12 + 8, 0xdead_beef);
    let (s, o, d) = corrupt(open(f));
    assert_eq!((s, o), ("VBCORE note", desc));
    assert!(d.contains("magic"));
    let mut short = core.clone();
    short.notes[1] = NoteRec::new(b"VBCPU", 0xb01, vec![0; 300]);
    let (f, l2) = build(&short);
    let (s, o, _) = corrupt(open(f));
    assert_eq!((s, o), ("VBCPU note", l2.note_offsets[1]));
    let mut tiny = core.clone();
    tiny.notes[0] = NoteRec::new(b"VBCORE", 0xb00, vec![0; 8]);
    let (f, _) = build(&tiny);
    assert_eq!(corrupt(open(f)).0, "VBCORE note");
    let _ = cpu;
}

/// Opens `bytes` and, when that works, reads what the source offers; must never panic.
fn exercise(bytes: Vec<u8>) {
    let Ok(elf) = open(bytes) else { return };
    let mut buf = vec![0u8; MAX_CHUNK_PAGES * PAGE_SIZE];
    let n = elf.chunk_count();
    for c in (0..n.min(16)).chain(n.saturating_sub(4)..n) {
        let _ = elf.chunk_spans(c);
        let _ = elf.raw_chunk(c);
        let _ = elf.decode_chunk(c, &mut buf);
    }
    let mut page = [0u8; 64];
    for r in elf.ram_ranges().iter().take(8) {
        let _ = elf.read_phys(r.gpa_start(), &mut page);
        let _ = elf.read_phys(r.gpa_end().wrapping_sub(10), &mut page);
    }
    let _ = elf.machine();
    for c in elf.vcpus() {
        let _ = (c.mode_description(), c.architecture());
    }
}

#[test]
fn truncation_at_every_length_never_panics() {
    for core in [sample(true), sample(false)] {
        let file = core.build();
        for len in 0..file.len() {
            let r = open(file[..len].to_vec());
            // Truncating drops stored bytes: never a silent success.
            assert!(r.is_err(), "truncated to {len} of {} bytes", file.len());
            exercise(file[..len].to_vec());
        }
    }
    let mut vbox = Core::new(true, EM_X86_64);
    vbox.segments = vec![Seg::pages(0, 1)];
    vbox.notes = vec![vbcore(0x0001_0005, 1), VboxCpu::default().note()];
    let file = vbox.build();
    for len in (0..file.len()).step_by(7) {
        exercise(file[..len].to_vec());
    }
}

#[test]
fn flipped_bytes_never_panic() {
    for core in [sample(true), sample(false)] {
        let (file, l) = build(&core);
        // Every byte of the headers and notes, with several patterns.
        let meta = l.data_offsets[0] as usize;
        for at in 0..meta {
            for x in [0xFFu8, 0x80, 0x01, 0x10, 0x7F] {
                let mut f = file.clone();
                f[at] ^= x;
                exercise(f);
            }
        }
        // Several bytes at once, placed by a fixed pseudo-random sequence.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut f = file.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % meta as u64) as usize;
                f[at] = next() as u8;
            }
            exercise(f);
        }
    }
}
