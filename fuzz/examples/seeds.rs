//! Builds the seed corpora in `fuzz/seeds/<target>/` from the real sample in
//! `testdata/hyperv-sample/` and from small synthetic saved states and dumps.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (or `fuzz/seeds.sh`).
//! Deterministic: running it twice gives the same files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use vm2dmp_formats::le;
use vm2dmp_formats::legacy::{Header, Slot};
use vm2dmp_formats::memory::token;
use vm2dmp_kdump::{Arch, DumpHeaderInfo, DumpLayout, MemoryRun, PageBitmap};
use vm2dmp_synth::{
    BlockEncoding, PagePolicy, PartitionStyle, ReplayTarget, SparsePages, StaleReplay, SynthRange,
    SynthVm, SynthVp,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Values of a legacy-container file, by name.
fn legacy_values(file: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let h = Header::parse(file).expect("legacy header");
    let index = &file[h.index_offset as usize..][..h.index_capacity as usize * Slot::SIZE];
    let strings = &file[h.strings_offset as usize..][..h.strings_used as usize];
    let mut out = BTreeMap::new();
    for sb in index.chunks_exact(Slot::SIZE) {
        let s = Slot::parse(sb).expect("slot");
        if s.is_unused() {
            continue;
        }
        let name = &strings[s.name_offset as usize..][..s.name_size as usize - 1];
        let value = if s.is_inline() {
            sb[16..16 + s.size as usize].to_vec()
        } else {
            file[s.offset_or_inline as usize..][..s.size as usize].to_vec()
        };
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}

/// Payloads of the compressed-page tokens of a token stream.
fn compressed_pages(block: &[u8]) -> Vec<Vec<u8>> {
    let mut pages = Vec::new();
    let mut pos = 0;
    while let Some(t) = le::u32(block, pos) {
        pos += 4;
        match t {
            token::END => break,
            token::FILL_PAGE => pos += 8,
            token::FILL_PAGES => pos += 12,
            token::SIZED => {
                let n = le::u32(block, pos + 4).unwrap_or(0) as usize;
                pos += 8 + n;
            }
            n @ 1..=token::RAW_PAGE => {
                let n = n as usize;
                if n < 4096 {
                    pages.push(block[pos..pos + n].to_vec());
                }
                pos += n;
            }
            _ => break,
        }
    }
    pages
}

struct Seeds {
    root: PathBuf,
    total: u64,
}

impl Seeds {
    /// Checks that a saved-state seed opens, and that the checksum fixer leaves a valid file
    /// unchanged.
    fn check_opens(&self, target: &str, name: &str, bytes: &[u8]) {
        let r = if target == "vmrs_open" {
            let mut fixed = bytes.to_vec();
            vm2dmp_fuzz_harness::fix_hvs_checksums(&mut fixed);
            assert!(
                fixed == bytes,
                "{name}: the checksum fixer changed a valid file"
            );
            vm2dmp::SavedState::from_bytes(Path::new(name), bytes.to_vec(), None)
        } else {
            let split = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
            let (v, b) = bytes[4..].split_at(split);
            vm2dmp::SavedState::from_bytes(Path::new(name), v.to_vec(), Some(b.to_vec()))
        };
        if let Err(e) = r {
            panic!("{target}/{name} does not open: {e}");
        }
    }

    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir)?;
        if target == "vmrs_open" || target == "vsv_bin_open" {
            self.check_opens(target, name, bytes);
        }
        fs::write(dir.join(name), bytes)?;
        self.total += bytes.len() as u64;
        println!("{target}/{name}: {} bytes", bytes.len());
        Ok(())
    }
}

/// Mostly zero pages with a few of every kind: compressible text, patterns, a little noise.
fn sparse_pages(seed: u64) -> SparsePages {
    let mut p = SparsePages::new();
    let mut text = Vec::new();
    while text.len() < 4096 {
        text.extend_from_slice(b"nt!KiSystemStartup PAGE_SIZE 0123456789abcdef MmPfnDatabase ");
    }
    let mut noise = [0u8; 4096];
    let mut x = seed | 1;
    for b in noise.iter_mut().take(512) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (i, page) in [1u64, 7, 0x40, 0x41, 0xC0].into_iter().enumerate() {
        match (i as u64 + seed) % 3 {
            0 => p.write(page << 12, &text[..4096]),
            1 => p.fill_pattern(page, 0xCCCC_CCCC_CCCC_CCCC + seed),
            _ => p.set_page(page, noise),
        };
    }
    p.fill_pattern(0x42, u64::MAX);
    p.write(0xC0FFE, b"\x87\x0a\x85\x04");
    p
}

fn small_vm(mib: u64, policy: PagePolicy, seed: u64) -> SynthVm {
    let mut vm = SynthVm::with_ram_mib(mib)
        .with_pages(sparse_pages(seed))
        .with_encoding(BlockEncoding::Tokens(policy));
    vm.vmrs.device_keys = false;
    vm.legacy.device_keys = false;
    vm.legacy.vram_bytes = 0;
    vm.legacy.bin_index_capacity = Some(16);
    vm.legacy.vsv_index_capacity = Some(64);
    vm
}

/// A page-table seed: mode byte, CR3, virtual address, then guest memory with the tables.
fn page_table_seed(mode: u8, va: u64, tables: &[(u64, u64, u64, usize)]) -> Vec<u8> {
    // (table address, index, entry, entry size)
    let mut mem = vec![0u8; 8 * 4096];
    for &(table, index, entry, size) in tables {
        let at = (table + index * size as u64) as usize;
        mem[at..at + size].copy_from_slice(&entry.to_le_bytes()[..size]);
    }
    mem[5 * 4096..5 * 4096 + 16].copy_from_slice(b"KUSER_SHARED_DAT");
    let mut s = vec![mode];
    s.extend_from_slice(&0x1000u64.to_le_bytes());
    s.extend_from_slice(&va.to_le_bytes());
    s.extend_from_slice(&mem);
    s
}

/// Input of the `convert` target: layout 0 (x64, one processor), CR3, IDTR base, GS, kernel GS and FS bases,
/// then guest memory with page tables, a minimal kernel image and an IDT.
fn kernel_seed() -> Vec<u8> {
    const KERNEL: u64 = 0xFFFF_F800_0000_0000;
    let mut m = vec![0u8; 0xE000];
    let mut put = |at: usize, b: &[u8]| m[at..at + b.len()].copy_from_slice(b);
    let e = |v: u64| v.to_le_bytes();
    // Page tables: PML4 0x1000, kernel space through 0x2000/0x3000/0x4000, KUSER_SHARED_DATA
    // through 0x5000/0x6000/0x7000 to page 0x8000.
    put(0x1000 + 0x1F0 * 8, &e(0x2003));
    put(0x1000 + 0x1EF * 8, &e(0x5003));
    put(0x2000, &e(0x3003));
    put(0x3000, &e(0x4003));
    put(0x5000, &e(0x6003));
    put(0x6000, &e(0x7003));
    put(0x7000, &e(0x8003));
    for (i, page) in [0x9000u64, 0xA000, 0xB000, 0xC000].iter().enumerate() {
        put(0x4000 + i * 8, &e(page | 3)); // image: KERNEL .. KERNEL + 0x4000
    }
    put(0x4000 + 16 * 8, &e(0xD003)); // IDT at KERNEL + 0x10000
                                      // PE headers at 0x9000.
    let h = 0x9000;
    put(h, b"MZ");
    put(h + 0x3C, &0x80u32.to_le_bytes());
    put(h + 0x80, b"PE\0\0");
    let fh = h + 0x84;
    put(fh, &0x8664u16.to_le_bytes());
    put(fh + 2, &2u16.to_le_bytes());
    put(fh + 16, &0xF0u16.to_le_bytes());
    let opt = fh + 20;
    put(opt, &0x20Bu16.to_le_bytes());
    put(opt + 56, &0x4000u32.to_le_bytes());
    put(opt + 108, &16u32.to_le_bytes());
    put(opt + 112, &0x3000u32.to_le_bytes());
    put(opt + 116, &0x100u32.to_le_bytes());
    let sec = opt + 0xF0;
    for (i, (name, rva, ch)) in [
        (b".text\0\0\0", 0x1000u32, 0x6000_0020u32),
        (b".data\0\0\0", 0x2000, 0xC000_0040),
    ]
    .iter()
    .enumerate()
    {
        let s = sec + i * 40;
        put(s, *name);
        put(s + 8, &0x1000u32.to_le_bytes());
        put(s + 12, &rva.to_le_bytes());
        put(s + 16, &0x1000u32.to_le_bytes());
        put(s + 36, &ch.to_le_bytes());
    }
    // .data: NtBuildNumber (19041, free build).
    put(0xA000 + 0x1000, &0xF000_4A61u32.to_le_bytes());
    // Export directory at RVA 0x3000 (0xC000).
    let x = 0xC000;
    put(x + 12, &0x3080u32.to_le_bytes());
    put(x + 20, &1u32.to_le_bytes());
    put(x + 24, &1u32.to_le_bytes());
    put(x + 28, &0x30C0u32.to_le_bytes());
    put(x + 32, &0x30D0u32.to_le_bytes());
    put(x + 36, &0x30E0u32.to_le_bytes());
    put(x + 0x80, b"ntoskrnl.exe\0");
    put(x + 0xC0, &0x2000u32.to_le_bytes());
    put(x + 0xD0, &0x30F0u32.to_le_bytes());
    put(x + 0xF0, b"NtBuildNumber\0");
    // IDT at 0xD000: 48 present interrupt gates into .text.
    for v in 0..48u64 {
        let target = KERNEL + 0x1000 + v * 16;
        let mut g = [0u8; 16];
        g[0..2].copy_from_slice(&(target as u16).to_le_bytes());
        g[2..4].copy_from_slice(&0x10u16.to_le_bytes());
        g[5] = 0x8E;
        g[6..8].copy_from_slice(&((target >> 16) as u16).to_le_bytes());
        g[8..12].copy_from_slice(&((target >> 32) as u32).to_le_bytes());
        put(0xD000 + v as usize * 16, &g);
    }
    let mut s = vec![0u8];
    for r in [0x1000u64, KERNEL + 0x10000, 0, 0, 0] {
        s.extend_from_slice(&r.to_le_bytes());
    }
    s.extend_from_slice(&m);
    s
}

fn main() -> Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = fuzz.join("../testdata/hyperv-sample");
    let work = fuzz.join("target/seed-work");
    fs::create_dir_all(&work)?;
    let root = fuzz.join("seeds");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    let mut seeds = Seeds { root, total: 0 };

    // Real sample: RAM blocks of the .bin, partition_state of the .vsv, compressed pages.
    let bin = legacy_values(&fs::read(sample.join("test_file.bin"))?);
    let vsv = legacy_values(&fs::read(sample.join("test_file.vsv"))?);
    let mut blocks: Vec<(usize, &Vec<u8>)> = (0..)
        .map_while(|n| bin.get(&format!("RamBlock/{n}/")).map(|b| (n, b)))
        .collect();
    let zero_block = blocks
        .iter()
        .find(|(_, b)| b.len() == 3076)
        .map(|&(n, _)| n);
    blocks.retain(|(n, b)| b.len() != 3076 || Some(*n) == zero_block);
    let mut pages = Vec::new();
    blocks.sort_by_key(|(_, b)| b.len());
    for (i, (n, b)) in blocks.iter().enumerate() {
        if i < 2 {
            seeds.put("ram_block", &format!("sample-block-{n}"), b)?;
        }
        pages.extend(compressed_pages(b));
    }
    seeds.put(
        "partition_state",
        "sample-vsv",
        &vsv["/savedVM/partition_state"],
    )?;
    pages.sort_by_key(Vec::len);
    let step = (pages.len() / 8).max(1);
    for (i, p) in pages.iter().step_by(step).take(8).enumerate() {
        let mut s = vec![0u8];
        s.extend_from_slice(&4096u16.to_le_bytes());
        s.extend_from_slice(p);
        seeds.put("xpress", &format!("sample-page-{i}"), &s)?;
    }
    let mut text = vec![1u8];
    text.extend_from_slice(b"nt!KiSystemStartup PAGE_SIZE 0123456789abcdef nt!KiSystemStartup");
    text.extend(std::iter::repeat_n(0xCCu8, 300));
    seeds.put("xpress", "round-trip", &text)?;

    // Synthetic saved states.
    let variants: Vec<(&str, SynthVm)> = vec![
        ("hyperv", small_vm(1, PagePolicy::HyperV, 1)),
        ("fill-runs", small_vm(2, PagePolicy::FillRun, 2)),
        ("multipage", {
            let mut vm = small_vm(
                1,
                PagePolicy::MultiPage {
                    pages: 16,
                    compress: true,
                },
                3,
            );
            vm.vps = vec![
                SynthVp::x86_pae(0, 0x3000, 0x8000_1000, 0x8000_2000),
                SynthVp::x86_pae(1, 0x3000, 0x8000_1000, 0x8000_3000),
            ];
            vm.partition.style = PartitionStyle::Bare;
            vm.vmrs.stale_replay = StaleReplay::None;
            vm.vmrs.freed_object = false;
            vm
        }),
        ("two-ranges", {
            let mut vm = SynthVm::new(vec![
                SynthRange {
                    gpa_page_start: 0,
                    page_count: 160,
                },
                SynthRange {
                    gpa_page_start: 0x400,
                    page_count: 256,
                },
            ])
            .with_pages(sparse_pages(4))
            .with_encoding(BlockEncoding::Tokens(PagePolicy::Auto));
            vm.vmrs.device_keys = false;
            vm.legacy.device_keys = false;
            vm.legacy.vram_bytes = 0;
            vm.legacy.bin_index_capacity = Some(16);
            vm.legacy.vsv_index_capacity = Some(64);
            let vp = SynthVp::x64_long_mode(0, 0x1AA000, 0xFFFF_F800_0000_1000, 0x7000);
            vm.vps = vec![vp.with_vtl1(vp.vtl0)];
            vm
        }),
    ];
    for (name, vm) in &variants {
        let path = work.join(format!("{name}.vmrs"));
        let layout = vm2dmp_synth::write_vmrs(vm, &path)?;
        let bytes = fs::read(&path)?;
        if matches!(*name, "hyperv" | "multipage") {
            seeds.put("vmrs_open", name, &bytes)?;
        }
        if matches!(*name, "hyperv" | "two-ranges") {
            let vsv_path = work.join(format!("{name}.vsv"));
            let bin_path = work.join(format!("{name}.bin"));
            vm2dmp_synth::write_vsv_bin(vm, &vsv_path, &bin_path)?;
            let (v, b) = (fs::read(&vsv_path)?, fs::read(&bin_path)?);
            let mut pair = (v.len() as u32).to_le_bytes().to_vec();
            pair.extend_from_slice(&v);
            pair.extend_from_slice(&b);
            seeds.put("vsv_bin_open", name, &pair)?;
        }
        if matches!(*name, "multipage" | "two-ranges") {
            let (ps, _) = vm2dmp_synth::partition_state(vm, false);
            seeds.put("partition_state", name, &ps)?;
        }
        if matches!(*name, "fill-runs" | "multipage") {
            for loc in layout.ram_blocks.iter().take(1) {
                let v = &bytes[loc.value_offset as usize..][..loc.value_size as usize];
                seeds.put("ram_block", &format!("{name}-block-{}", loc.block), v)?;
            }
        }
    }
    // A dirty file: two pending replay entries to apply in memory.
    let mut dirty = small_vm(1, PagePolicy::HyperV, 5);
    dirty.vmrs.pending_replay = vec![
        ReplayTarget::KeyEntry("/savedstate/RamMemoryBlock0".into()),
        ReplayTarget::KeyTable(1),
    ];
    let path = work.join("dirty.vmrs");
    vm2dmp_synth::write_vmrs(&dirty, &path)?;
    seeds.put("vmrs_open", "dirty", &fs::read(&path)?)?;

    // Kernel dumps: full and bitmap, 64- and 32-bit, a few pages each.
    let runs = [MemoryRun::new(0, 3), MemoryRun::new(0x10, 2)];
    for (name, arch, bitmap) in [
        ("x64-full", Arch::X64, false),
        ("x86pae-bitmap", Arch::X86 { pae: true }, true),
    ] {
        let layout = if bitmap {
            let present = PageBitmap::new(0x20);
            for r in &runs {
                present.set_range(r.base_page, r.page_count);
            }
            present.clear(1);
            DumpLayout::bitmap(arch, &runs, present)?
        } else {
            DumpLayout::full(arch, &runs)?
        };
        let info = DumpHeaderInfo {
            directory_table_base: 0x1AD000,
            number_processors: 2,
            comment: format!("fuzz seed {name}"),
            ..DumpHeaderInfo::default()
        };
        let mut file = layout.header_bytes(&info);
        file.resize(layout.file_size() as usize, 0);
        for span in layout.present_spans() {
            let at = span.file_offset as usize;
            file[at..at + 8].copy_from_slice(&span.first_pfn.to_le_bytes());
        }
        seeds.put("kdump_parse", name, &file)?;
    }
    // A PDB of the shape the kernel tests use: four sections, a few public symbols.
    let pdb = vm2dmp_synth::pdb::pdb_bytes(
        *b"\x38\x44\xdb\xb9\x20\x17\x49\x67\xbe\x7a\xa4\xa2\xc2\x04\x30\xfa",
        1,
        &[
            (b".text", 0x1000, 0x3000),
            (b".data", 0x4000, 0x4000),
            (b".rsrc", 0x8000, 0x1000),
        ],
        &[
            ("KdDebuggerDataBlock", 0x4100),
            ("PsLoadedModuleList", 0x4200),
            ("KiProcessorBlock", 0x4300),
            ("KdCopyDataBlock", 0x1200),
        ],
    );
    assert_eq!(
        vm2dmp::guest::fuzzing::parse_pdb(&pdb),
        Some(4),
        "seed PDB must parse"
    );
    seeds.put("pdb_symbols", "four-symbols", &pdb)?;
    // Headers Windows wrote (testdata/windows-dumps): their first 8 KiB.
    for (name, file) in [
        ("windows-arm64-triage", "win10_arm64_mem.dmp"),
        ("windows-arm32-triage", "RPi3_ARM_mini.cab.dmp"),
    ] {
        let bytes = std::fs::read(Path::new("../testdata/windows-dumps").join(file))?;
        seeds.put("kdump_parse", name, &bytes[..bytes.len().min(0x2000)])?;
    }

    // Page tables: 32-bit, PAE and 4-level, each mapping KUSER_SHARED_DATA to page 5 and
    // with the self-map Windows uses.
    const P: u64 = 0x3; // present, writable
    let sud32 = 0xFFDF_0000u64;
    seeds.put(
        "page_tables",
        "bit32",
        &page_table_seed(
            0,
            sud32,
            &[
                (0x1000, sud32 >> 22, 0x2000 | P, 4),
                (0x1000, 0x300, 0x1000 | P, 4),
                (0x2000, (sud32 >> 12) & 0x3FF, 0x5000 | P, 4),
                (0x1000, 0x200, 0x0040_0000 | P | 0x80, 4), // a 4 MiB page
            ],
        ),
    )?;
    seeds.put(
        "page_tables",
        "pae",
        &page_table_seed(
            1,
            sud32,
            &[
                (0x1000, 0, 0x2000 | 1, 8),
                (0x1000, 1, 0x3000 | 1, 8),
                (0x1000, 2, 0x4000 | 1, 8),
                (0x1000, 3, 0x6000 | 1, 8),
                (0x6000, (sud32 >> 21) & 0x1FF, 0x7000 | P, 8),
                (0x7000, (sud32 >> 12) & 0x1FF, 0x5000 | P, 8),
                (0x4000, 0, 0x2000 | P, 8),
                (0x4000, 1, 0x3000 | P, 8),
                (0x4000, 2, 0x4000 | P, 8),
                (0x4000, 3, 0x6000 | P, 8),
            ],
        ),
    )?;
    let sud64 = 0xFFFF_F780_0000_0000u64;
    seeds.put(
        "page_tables",
        "long4",
        &page_table_seed(
            2,
            sud64,
            &[
                (0x1000, (sud64 >> 39) & 0x1FF, 0x2000 | P, 8),
                (0x1000, 0x1ED, 0x1000 | P, 8),
                (0x2000, (sud64 >> 30) & 0x1FF, 0x3000 | P, 8),
                (0x3000, (sud64 >> 21) & 0x1FF, 0x4000 | P, 8),
                (0x4000, (sud64 >> 12) & 0x1FF, 0x5000 | P, 8),
                (0x3000, 1, 0x20_0000 | P | 0x80, 8), // a 2 MiB page
                (0x2000, 1, 0x4000_0000 | P | 0x80, 8), // a 1 GiB page
                (0x4000, 1, 0x6000 | 0x800, 8),       // a transition PTE
            ],
        ),
    )?;
    seeds.put(
        "page_tables",
        "long5",
        &page_table_seed(
            3,
            0xFF00_0000_0000_1000,
            &[
                (0x1000, 0x1FE, 0x2000 | P, 8),
                (0x2000, 0, 0x3000 | P, 8),
                (0x3000, 0, 0x4000 | P, 8),
                (0x4000, 0, 0x6000 | P, 8),
                (0x6000, 1, 0x5000 | P, 8),
            ],
        ),
    )?;

    // The conversion of tiny guests: an x64 address space whose IDT points into a small PE
    // image that exports itself as ntoskrnl.exe, with an NtBuildNumber export (one processor;
    // four processors and a reported bug check), and the same memory in the other layouts
    // and paging modes (split by a hole, half of it above 4 GiB, PAE, 32-bit).
    let seed = kernel_seed();
    for (layout, name) in [
        (0x00, "x64-ntoskrnl"),
        (0x70, "x64-ntoskrnl-4cpus-bugcheck-bitmap"),
        (0x84, "x64-hole-skip-zero"),
        (0xD8, "x64-above-4g-4cpus-full"),
        (0x02, "pae"),
        (0x03, "x86-32bit"),
    ] {
        let mut input = seed.clone();
        input[0] = layout;
        let guest = vm2dmp_fuzz_harness::tiny_guest(&input).expect("a tiny guest");
        if layout & 0x0F == 0 {
            // One range, x64: the kernel is where the page tables say.
            let k = vm2dmp::guest::find_kernel(&guest, None);
            assert!(
                k.image.is_some(),
                "the kernel seed must be found: {:?}",
                k.notes
            );
            assert_eq!(k.build.value, Some(19041), "{:?}", k.build);
        }
        seeds.put("convert", name, &input)?;
    }

    other_formats(&mut seeds, fuzz)?;

    println!("total {} bytes", seeds.total);
    assert!(seeds.total < 3 << 19, "seeds must stay below 1.5 MiB");
    Ok(())
}

/// An ELF64 core as QEMU writes one: a PT_NOTE segment with `notes`, then one PT_LOAD per
/// `(guest-physical address, bytes)`.
fn elf_core(notes: &[u8], loads: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let phnum = 1 + loads.len();
    let mut data_at = 64 + 56 * phnum as u64;
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // little-endian
    out[6] = 1; // EV_CURRENT
    out[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut phdr = |kind: u32, paddr: u64, len: u64, at: u64| {
        let mut p = vec![0u8; 56];
        p[..4].copy_from_slice(&kind.to_le_bytes());
        p[8..16].copy_from_slice(&at.to_le_bytes());
        p[24..32].copy_from_slice(&paddr.to_le_bytes());
        p[32..40].copy_from_slice(&len.to_le_bytes());
        p[40..48].copy_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&p);
    };
    phdr(4, 0, notes.len() as u64, data_at);
    data_at += notes.len() as u64;
    for (paddr, bytes) in loads {
        phdr(1, *paddr, bytes.len() as u64, data_at);
        data_at += bytes.len() as u64;
    }
    out.extend_from_slice(notes);
    for (_, bytes) in loads {
        out.extend_from_slice(bytes);
    }
    out
}

/// Seeds of the other hypervisors' formats: ELF cores and kdump-compressed files with the
/// processor notes of a real QEMU guest (`testdata/qemu-notes`), VMware checkpoints, raw
/// images, and single compressed pages.
fn other_formats(seeds: &mut Seeds, fuzz: &Path) -> Result<()> {
    use vm2dmp_synth::kdump_file::{kdump_bytes, KdumpCompression, KdumpSpec};
    let notes = fs::read(fuzz.join("../testdata/qemu-notes/ovmf-q35-2cpu.notes"))?;
    let page = |seed: u64| -> Vec<u8> {
        (0..4096u64)
            .map(|i| if i % 64 < 8 { (i * seed % 251) as u8 } else { 0 })
            .collect()
    };
    let low: Vec<u8> = (0..4).flat_map(|p| page(p + 3)).collect();
    let high: Vec<u8> = (0..2).flat_map(|p| page(p + 11)).collect();
    seeds.put(
        "elf_core_open",
        "qemu-notes-two-ranges",
        &elf_core(&notes, &[(0, low.clone()), (0x8000_0000, high.clone())]),
    )?;
    seeds.put(
        "elf_core_open",
        "no-notes",
        &elf_core(&[], &[(0x2000, low.clone())]),
    )?;

    for (name, compression, flattened) in [
        ("zlib-flattened", KdumpCompression::Zlib, true),
        ("lzo", KdumpCompression::Lzo, false),
        ("snappy", KdumpCompression::Snappy, false),
        ("zstd-flattened", KdumpCompression::Zstd, true),
    ] {
        let spec = KdumpSpec {
            ranges: vec![(0, 6), (0x1000, 2)],
            compression,
            flattened,
            notes: notes.clone(),
            ..KdumpSpec::default()
        };
        seeds.put("diskdump_open", name, &kdump_bytes(&spec).0)?;
    }
    for (method, compression) in [
        (0u8, KdumpCompression::Zlib),
        (1, KdumpCompression::Lzo),
        (2, KdumpCompression::Snappy),
        (3, KdumpCompression::Zstd),
    ] {
        let mut s = vec![method];
        s.extend_from_slice(&compression.compress(&page(5)));
        seeds.put("diskdump_page", &format!("{compression:?}").to_lowercase(), &s)?;
    }

    let mut guest = vm2dmp_synth::vmware::Guest::small(2);
    guest.regions[0].pages = 4;
    guest.regions[1].vmem_page = 4;
    guest.regions[1].pages = 2;
    // Below 4 GiB, where the target converts guests.
    guest.regions[1].gpa_page = 0x8_0000;
    let (state, _) = guest.checkpoint().to_bytes();
    let mut pair = (state.len() as u32).to_le_bytes().to_vec();
    pair.extend_from_slice(&state);
    pair.extend_from_slice(&guest.backing());
    seeds.put("vmware_open", "two-regions", &pair)?;

    let mut raw = b"0x0-0x2fff,0x80000000-0x80000fff\n".to_vec();
    raw.extend_from_slice(&low);
    seeds.put("raw_open", "two-ranges", &raw)?;
    Ok(())
}
