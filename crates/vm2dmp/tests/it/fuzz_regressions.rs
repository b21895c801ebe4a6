//! Replays the fuzz seeds (`fuzz/seeds/<target>/`) and every input a fuzz target ever failed on
//! (`testdata/fuzz-regressions/<target>/`) through the targets themselves: each target in
//! `fuzz/fuzz_targets/` is one call of the function of the same name in `vm2dmp-fuzz-harness`,
//! and so is each test here, on the stable toolchain. None may panic, and whatever converts must
//! verify. See `testdata/fuzz-regressions/README.md` for how inputs are added.

use std::path::{Path, PathBuf};

use vm2dmp::{convert, Cancel, ConvertOptions, DumpFormat, NoProgress, SavedState};
use vm2dmp_fuzz_harness as harness;

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

/// Whether an input opened, and the dumps written and verified from it.
fn open_and_convert<S: vm2dmp::MemorySource>(
    data: &[u8],
    target: fn(&[u8]) -> bool,
    open: fn(&[u8]) -> Option<S>,
) -> (bool, usize) {
    let opened = target(data);
    let written = open(data).map_or(0, |s| harness::convert_and_verify(&s));
    assert!(opened || written == 0, "converted what did not open");
    (opened, written)
}

/// The container targets read what an input offers without converting (the `convert` target
/// fuzzes the conversion): here every seed and regression that opens is converted and
/// verified too.
#[test]
fn vmrs_open() {
    let all = inputs("vmrs_open");
    assert!(!all.is_empty(), "no seeds: run fuzz/seeds.sh");
    let written: usize = all
        .iter()
        .map(|(p, data)| {
            let (opened, written) = open_and_convert(data, harness::vmrs_open, harness::open_vmrs);
            // The seeds are valid saved states (fuzz/examples/seeds.rs checks that they open).
            assert!(opened, "{}", p.display());
            written
        })
        .sum();
    assert!(written >= 4, "{written} dumps written from the seeds");
}

#[test]
fn vsv_bin_open() {
    let written: usize = inputs("vsv_bin_open")
        .iter()
        .map(|(_, data)| open_and_convert(data, harness::vsv_bin_open, harness::open_vsv_bin).1)
        .sum();
    assert!(written >= 2, "{written} dumps written from the seeds");
}

#[test]
fn ram_block() {
    for (_, data) in inputs("ram_block") {
        harness::ram_block(&data);
    }
}

#[test]
fn partition_state() {
    for (_, data) in inputs("partition_state") {
        harness::partition_state(&data);
    }
}

/// The inputs are whole dumps: every page they list as present reads.
#[test]
fn kdump_parse() {
    for (p, data) in inputs("kdump_parse") {
        assert_eq!(harness::kdump_parse(&data), 0, "{}", p.display());
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
        assert_eq!(harness::pdb_symbols(&data), want, "{}", p.display());
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
        harness::xpress(&data);
    }
}

#[test]
fn page_tables() {
    let valid = inputs("page_tables")
        .iter()
        .filter(|(_, data)| harness::page_tables(data))
        .count();
    // The seeds are built to pass (fuzz/examples/seeds.rs).
    assert!(valid >= 3, "{valid} valid page-table roots among the seeds");
}

/// Every seed is a guest that converts in the layout it asks for and in every other one;
/// the kernel seeds' kernel is found.
#[test]
fn convert_tiny_guests() {
    let mut found = 0;
    let all = inputs("convert");
    assert!(all.len() >= 6, "no seeds: run fuzz/seeds.sh");
    for (p, data) in all {
        assert_eq!(harness::convert(&data), Some(true), "{}", p.display());
        let guest = harness::tiny_guest(&data).unwrap();
        assert_eq!(harness::convert_and_verify(&guest), 3, "{}", p.display());
        found += usize::from(vm2dmp::guest::find_kernel(&guest, None).image.is_some());
    }
    assert!(found >= 2, "the kernel seeds are found");
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

/// Every seed of a whole-file target of the other formats opens and converts in every layout
/// (3 dumps each), the ELF and kdump seeds with a real QEMU guest's processor notes.
#[test]
fn other_formats_open_and_convert() {
    type Run = fn(&[u8]) -> (bool, usize);
    let targets: [(&str, Run, usize); 4] = [
        (
            "elf_core_open",
            |d| open_and_convert(d, harness::elf_core_open, harness::open_elf_core),
            2,
        ),
        (
            "diskdump_open",
            |d| open_and_convert(d, harness::diskdump_open, harness::open_diskdump),
            4,
        ),
        (
            "vmware_open",
            |d| open_and_convert(d, harness::vmware_open, harness::open_vmware),
            1,
        ),
        (
            "raw_open",
            |d| open_and_convert(d, harness::raw_open, harness::open_raw),
            1,
        ),
    ];
    for (target, run, seeds) in targets {
        let all = inputs(target);
        assert!(all.len() >= seeds, "{target}: no seeds: run fuzz/seeds.sh");
        for (p, data) in all {
            let (opened, written) = run(&data);
            if p.starts_with(root().join("fuzz/seeds")) {
                assert!(opened, "{}", p.display());
                assert_eq!(written, 3, "{}", p.display());
            }
        }
    }
}

/// Each compressed-page seed decodes to one page.
#[test]
fn diskdump_page() {
    let all = inputs("diskdump_page");
    assert_eq!(all.len(), 4, "one seed per compressor");
    for (p, data) in all {
        assert_eq!(harness::diskdump_page(&data), Some(4096), "{}", p.display());
    }
}
