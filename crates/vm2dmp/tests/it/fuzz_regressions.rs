//! Replays the fuzz seeds (`fuzz/seeds/<target>/`) and every input a fuzz target ever failed on
//! (`testdata/fuzz-regressions/<target>/`) through the same entry points as the targets in
//! `fuzz/fuzz_targets/`, on the stable toolchain: none may panic, and whatever converts must
//! verify. See `testdata/fuzz-regressions/README.md` for how inputs are added.

use std::path::{Path, PathBuf};

use vm2dmp::kdump::KernelDump;
use vm2dmp::{
    convert, hyperv::BLOCK_SIZE, verify, Cancel, ConvertOptions, DumpFile, DumpFormat, NoProgress,
    SavedState,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every input of `target`: seeds and regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    for dir in ["fuzz/seeds", "testdata/fuzz-regressions"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                v.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    v.sort();
    v
}

/// What `vmrs_open` and `vsv_bin_open` do with a state that opens; the number of dumps
/// written.
fn exercise(state: &SavedState, dir: &Path) -> usize {
    let _ = state.summary();
    let _ = state.encoding_stats();
    let mut buf = [0u8; 64];
    for r in state.memory_ranges().iter().take(4) {
        for gpa in [r.gpa_start(), r.gpa_end().saturating_sub(32), r.gpa_end()] {
            let _ = state.read_phys(gpa, &mut buf);
        }
    }
    let mut block = vec![0u8; BLOCK_SIZE];
    for n in 0..state.ram_block_count().min(64) {
        let _ = state.decode_block(n, &mut block);
    }
    if state.ram_pages() > 1024 {
        return 0;
    }
    let mut written = 0;
    let out = dir.join("fuzz.dmp");
    for (format, skip_zero) in [(DumpFormat::Auto, false), (DumpFormat::Bitmap, true)] {
        let opts = ConvertOptions {
            format,
            skip_zero,
            force: true,
            ..ConvertOptions::default()
        };
        let _ = std::fs::remove_file(&out);
        if convert(state, &out, &opts, &NoProgress, &Cancel::new()).is_err() {
            let left: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
            assert!(left.is_empty(), "a failed conversion left {left:?}");
            continue;
        }
        let dump = DumpFile::open(&out).unwrap();
        let report = verify(&dump, state, None, &NoProgress, &Cancel::new()).unwrap();
        assert!(report.ok(), "{report:?}");
        written += 1;
    }
    written
}

#[test]
fn vmrs_open() {
    let dir = tempfile::tempdir().unwrap();
    let all = inputs("vmrs_open");
    assert!(!all.is_empty(), "no seeds: run fuzz/seeds.sh");
    let mut written = 0;
    for (p, data) in all {
        if let Ok(state) = SavedState::from_bytes(&p, data, None) {
            written += exercise(&state, dir.path());
        }
    }
    // The seeds are valid saved states (fuzz/examples/seeds.rs checks that they open).
    assert!(written >= 4, "{written} dumps written from the seeds");
}

#[test]
fn vsv_bin_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = 0;
    for (p, data) in inputs("vsv_bin_open") {
        let Some((len, rest)) = data.split_first_chunk::<4>() else {
            continue;
        };
        let split = (u32::from_le_bytes(*len) as usize).min(rest.len());
        let (vsv, bin) = rest.split_at(split);
        if let Ok(state) = SavedState::from_bytes(&p, vsv.to_vec(), Some(bin.to_vec())) {
            written += exercise(&state, dir.path());
        }
    }
    assert!(written >= 2, "{written} dumps written from the seeds");
}

#[test]
fn ram_block() {
    for (_, data) in inputs("ram_block") {
        let _ = vm2dmp::hyperv::fuzzing::decode_ram_block(&data);
    }
}

#[test]
fn partition_state() {
    for (_, data) in inputs("partition_state") {
        let _ = vm2dmp::hyperv::fuzzing::parse_partition_state(&data);
    }
}

#[test]
fn kdump_parse() {
    for (p, data) in inputs("kdump_parse") {
        let head = &data[..data.len().min(KernelDump::HEADER_PREFIX as usize)];
        let need =
            KernelDump::metadata_len(head, data.len() as u64).min(data.len() as u64) as usize;
        assert_eq!(
            KernelDump::parse_prefix(&data[..need], data.len() as u64).ok(),
            KernelDump::parse(&data).ok(),
            "{}",
            p.display()
        );
        let Ok(dump) = KernelDump::parse(&data) else {
            continue;
        };
        let count = dump.present_page_count();
        let listed: Vec<u64> = dump.present_pfns().take(1000).collect();
        if count < 1000 {
            assert_eq!(listed.len() as u64, count, "{}", p.display());
        }
        for pfn in listed.into_iter().take(16) {
            assert!(dump.page(&data, pfn).is_ok(), "{}", p.display());
        }
    }
}

/// The PDB seed parses and names its symbols. The regression input makes the `pdb` crate
/// overflow (a panic in this build, which has overflow checks): the library catches it,
/// marks it as handled while it unwinds (so a program's panic hook stays quiet) and refuses
/// the PDB.
#[test]
fn pdb_symbols() {
    let all = inputs("pdb_symbols");
    assert!(all.len() >= 2);
    let handled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let previous = std::panic::take_hook();
    {
        let handled = std::sync::Arc::clone(&handled);
        std::panic::set_hook(Box::new(move |info| {
            if vm2dmp::guest::panic_is_handled() {
                handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            } else {
                eprintln!("{info}");
            }
        }));
    }
    let mut regressions = 0;
    for (p, data) in all {
        let want = if p.to_string_lossy().contains("fuzz-regressions") {
            regressions += 1;
            None
        } else {
            Some(4)
        };
        assert_eq!(
            vm2dmp::guest::fuzzing::parse_pdb(&data),
            want,
            "{}",
            p.display()
        );
    }
    std::panic::set_hook(previous);
    assert!(!vm2dmp::guest::panic_is_handled());
    // Builds without overflow checks (release) wrap where these panic: no panic to count.
    let want = if cfg!(debug_assertions) {
        regressions
    } else {
        0
    };
    assert_eq!(
        handled.load(std::sync::atomic::Ordering::SeqCst),
        want,
        "each regression input panicked inside the pdb crate and was handled"
    );
}

#[test]
fn xpress() {
    for (_, data) in inputs("xpress") {
        let Some((&mode, rest)) = data.split_first() else {
            continue;
        };
        if mode & 1 == 0 {
            let Some((len, src)) = rest.split_first_chunk::<2>() else {
                continue;
            };
            let mut out = vec![0u8; usize::from(u16::from_le_bytes(*len))];
            let _ = vm2dmp_xpress::decompress_into(src, &mut out);
        } else {
            let mut stream = Vec::new();
            vm2dmp_xpress::compress(rest, &mut stream);
            let mut back = vec![0u8; rest.len()];
            vm2dmp_xpress::decompress_into(&stream, &mut back).unwrap();
            assert_eq!(back, rest);
        }
    }
}

#[test]
fn page_tables() {
    use vm2dmp::{
        guest::translate::check_dtb, guest::translate::read_virt, guest::translate::translate,
        guest::translate::Dtb, guest::translate::Paging, guest::translate::PhysMem,
    };
    struct Image<'a>(&'a [u8]);
    impl PhysMem for Image<'_> {
        fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
            let Some(src) = usize::try_from(gpa)
                .ok()
                .and_then(|s| self.0.get(s..s.checked_add(buf.len())?))
            else {
                return false;
            };
            buf.copy_from_slice(src);
            true
        }
        fn is_ram(&self, gpa: u64) -> bool {
            gpa < self.0.len() as u64
        }
    }
    let mut valid = 0;
    for (_, data) in inputs("page_tables") {
        if data.len() < 17 {
            continue;
        }
        let paging =
            [Paging::Bit32, Paging::Pae, Paging::Long4, Paging::Long5][usize::from(data[0] & 3)];
        let dtb = Dtb::new(paging, u64::from_le_bytes(data[1..9].try_into().unwrap()));
        let va = u64::from_le_bytes(data[9..17].try_into().unwrap());
        let mem = Image(&data[17..]);
        let _ = translate(&mem, dtb, va);
        let mut buf = [0u8; 64];
        let _ = read_virt(&mem, dtb, va, &mut buf);
        if check_dtb(&mem, dtb).valid {
            valid += 1;
        }
    }
    // The seeds are built to pass (fuzz/examples/seeds.rs).
    assert!(valid >= 3, "{valid} valid page-table roots among the seeds");
}

/// The `kernel` target's saved state: `vm2dmp_fuzz::KernelTemplate` in `fuzz/src/lib.rs`
/// (a 1 MiB x64 state, one vCPU, raw RAM block), with the input's registers and memory.
fn kernel_state(input: &[u8]) -> Option<SavedState> {
    use vm2dmp_synth::{BlockEncoding, FlatImage, SynthVm, SynthVp};
    let (head, mem) = input.split_at_checked(41)?;
    let mut vm = SynthVm::with_ram_mib(1)
        .with_pages(FlatImage::new(vec![0x5A; 4096]))
        .with_vps(vec![SynthVp::x64_long_mode(0, 0x1000, 0, 0)])
        .with_encoding(BlockEncoding::RawBlock);
    vm.vmrs.device_keys = false;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernel.vmrs");
    let layout = vm2dmp_synth::write_vmrs(&vm, &path).unwrap();
    let mut d = std::fs::read(&path).unwrap();
    let body = |id| layout.chunk_offset(id, Some(0)).unwrap() as usize + 16;
    use vm2dmp_formats::partition::chunk;
    let (control, segments, tables, msrs) = (
        body(chunk::CONTROL_REGISTERS),
        body(chunk::SEGMENT_REGISTERS),
        body(chunk::TABLE_REGISTERS),
        body(chunk::VIRTUAL_MSRS),
    );
    let q = |i: usize| u64::from_le_bytes(head[1 + i * 8..9 + i * 8].try_into().unwrap());
    let mut put = |at: usize, v: u64| d[at..at + 8].copy_from_slice(&v.to_le_bytes());
    let (cr0, cr4, efer): (u64, u64, u64) = match head[0] & 3 {
        0 => (1 << 31 | 1, 1 << 5, 1 << 10 | 1 << 8),
        1 => (1 << 31 | 1, 1 << 5 | 1 << 12, 1 << 10 | 1 << 8),
        2 => (1 << 31 | 1, 1 << 5, 0),
        _ => (1 << 31 | 1, 0, 0),
    };
    put(control, cr0);
    put(control + 16, q(0));
    put(control + 24, cr4);
    put(control + 40, efer);
    put(tables + 8, q(1));
    put(segments + 5 * 16, q(2));
    put(msrs + 8, q(3));
    put(segments + 4 * 16, q(4));
    let ram = layout.ram_blocks[0].value_offset as usize;
    let n = mem.len().min(BLOCK_SIZE);
    d[ram..ram + n].copy_from_slice(&mem[..n]);
    d[ram + n..ram + BLOCK_SIZE].fill(0);
    SavedState::from_bytes(Path::new("kernel.vmrs"), d, None).ok()
}

#[test]
fn kernel() {
    let dir = tempfile::tempdir().unwrap();
    let mut found = 0;
    for (p, data) in inputs("kernel") {
        let Some(state) = kernel_state(&data) else {
            continue;
        };
        let k = vm2dmp::guest::find_kernel(&state, None);
        let _ = vm2dmp::guest::dump_patched_pages(&state, None);
        if k.image.is_some() {
            found += 1;
            assert!(exercise(&state, dir.path()) > 0, "{}", p.display());
        }
    }
    assert!(found >= 1, "the kernel seed is found");
}

/// Found by `vsv_bin_open`: a `.bin` whose RamBlock1 is corrupt (token 0) but referenced by no
/// memory range (the map covers 160 pages of block 0). Full and bitmap conversions ignore the
/// block; `--skip-zero` reads the zero pages of every block (convert.rs `plan`) and fails.
#[test]
fn skip_zero_ignores_unreferenced_blocks() {
    let data = std::fs::read(
        root().join("testdata/fuzz-regressions/vsv_bin_open/skip-zero-unreferenced-corrupt-block"),
    )
    .unwrap();
    let split = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let (vsv, bin) = data[4..].split_at(split);
    let state =
        SavedState::from_bytes(Path::new("x.vsv"), vsv.to_vec(), Some(bin.to_vec())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for skip_zero in [false, true] {
        let opts = ConvertOptions {
            format: DumpFormat::Bitmap,
            skip_zero,
            ..ConvertOptions::default()
        };
        let out = dir.path().join(format!("{skip_zero}.dmp"));
        convert(&state, &out, &opts, &NoProgress, &Cancel::new())
            .unwrap_or_else(|e| panic!("skip_zero {skip_zero}: {e}"));
    }
}
