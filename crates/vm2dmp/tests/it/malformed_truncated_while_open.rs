//! Inputs that shrink after they were opened (a copy still being written, a file rewritten by
//! the host): reads past the new end must be errors naming the file, never a crash. Memory-
//! mapped reads of such pages would raise SIGBUS and kill the process.

use std::fs::OpenOptions as FsOpen;
use std::path::{Path, PathBuf};

use vm2dmp::{convert, hyperv::BLOCK_SIZE, Cancel, ConvertOptions, NoProgress, SavedState};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}

fn copy(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(sample(name), &p).unwrap();
    p
}

fn shrink(path: &Path, len: u64) {
    FsOpen::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Every block read after the truncation fails cleanly; those before the cut still decode.
fn read_all_blocks(state: &SavedState, file: &Path) -> (usize, usize) {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let (mut ok, mut failed) = (0, 0);
    for n in 0..state.ram_block_count() {
        match state.decode_block(n, &mut buf) {
            Ok(_) => ok += 1,
            Err(e) => {
                let msg = e.to_string();
                assert!(e.is_input_error(), "{msg}");
                assert!(msg.contains(&file.display().to_string()), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
                failed += 1;
            }
        }
    }
    (ok, failed)
}

#[test]
fn vmrs_truncated_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy(dir.path(), "test_file.VMRS");
    let state = SavedState::open(&p).unwrap();
    // Cut in the middle of the RAM blocks (stored from about 0x8A0000 to 0xA0A000).
    shrink(&p, 0x960000);
    let (ok, failed) = read_all_blocks(&state, &p);
    assert!(failed > 0, "blocks past the cut must fail");
    assert!(ok > 0, "blocks before the cut still read");
    let mut b = [0u8; 16];
    assert!(state.read_phys(0xFB00000, &mut b).is_err());

    let out = dir.path().join("out.dmp");
    let e = convert(
        &state,
        &out,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap_err();
    assert!(e.is_input_error(), "{e}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn vmrs_emptied_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy(dir.path(), "test_file.VMRS");
    let state = SavedState::open(&p).unwrap();
    shrink(&p, 0);
    let (ok, failed) = read_all_blocks(&state, &p);
    assert_eq!((ok, failed), (0, state.ram_block_count()));
    assert!(state.encoding_stats().is_err());
    assert!(state.summary().is_err());
}

#[test]
fn bin_truncated_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let vsv = copy(dir.path(), "test_file.vsv");
    let bin = copy(dir.path(), "test_file.bin");
    let state = SavedState::open(&vsv).unwrap();
    shrink(&bin, 0x8000);
    let (ok, failed) = read_all_blocks(&state, &bin);
    assert!(failed > 0 && ok > 0, "{ok} {failed}");
    // The .vsv shrinking is survived too.
    shrink(&vsv, 0x1000);
    assert!(state.summary().is_err());
}

#[test]
fn file_growing_after_open_reads_as_opened() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy(dir.path(), "test_file.VMRS");
    let state = SavedState::open(&p).unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    shrink(&p, len + 0x100000);
    let (ok, failed) = read_all_blocks(&state, &p);
    assert_eq!((ok, failed), (state.ram_block_count(), 0));
}

/// A kernel dump cut short while `info`/`verify` read it: page reads past the cut are errors
/// naming the dump, pages before it still read, and `verify` fails cleanly.
#[test]
fn dump_truncated_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let state = SavedState::open(sample("test_file.VMRS")).unwrap();
    let dump_path = dir.path().join("sample.dmp");
    convert(
        &state,
        &dump_path,
        &ConvertOptions::default(),
        &NoProgress,
        &Cancel::new(),
    )
    .unwrap();
    let dump = vm2dmp::DumpFile::open(&dump_path).unwrap();
    // Full 32-bit dump: header 0x1000, then the pages in order. Cut after page 0x100.
    shrink(&dump_path, 0x1000 + 0x100 * 4096);
    let mut page = vec![0u8; 4096];
    assert!(dump.read_page(0xC0, &mut page).unwrap());
    let mut want = vec![0u8; 4096];
    state.read_phys(0xC0 * 4096, &mut want).unwrap();
    assert_eq!(page, want);
    let err = dump.read_page(0x200, &mut page).unwrap_err().to_string();
    assert!(err.contains(&dump_path.display().to_string()), "{err}");
    assert!(err.contains("truncated or rewritten"), "{err}");
    let mut b = [0u8; 64];
    assert!(dump.read_phys(0x200 * 4096, &mut b).is_err());
    assert!(dump.page(0x200).is_none());
    let err = vm2dmp::verify(&dump, &state, None, &NoProgress, &Cancel::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sample.dmp"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}
