//! Inputs other than Hyper-V saved states from the command line: recognised by content (or
//! `--raw`), shown by `info`, converted and verified like any saved state.

use predicates::prelude::*;

use crate::common::vm2dmp;

/// A raw image of two ranges, 0..64 KiB and 1 MiB..1 MiB+32 KiB, with a pattern in every page.
fn raw_image(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("guest.raw");
    let bytes: Vec<u8> = (0..(16 + 8) * 4096u32)
        .map(|i| (i / 4096 * 7 + i % 13) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

const MAP: &str = "0x0-0xffff,0x100000-0x107fff";

#[test]
fn raw_images_need_raw_and_convert_with_their_map() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_image(dir.path());
    // Without --raw a file with no signature is refused, with what to do.
    vm2dmp()
        .arg("info")
        .arg(&raw)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "guest.raw: file signature at offset 0x0",
        ))
        .stderr(predicate::str::contains("give --raw"));
    vm2dmp()
        .args(["info", "--raw", "--memory-map", MAP])
        .arg(&raw)
        .assert()
        .success()
        .stdout(predicate::str::contains("Format:        raw memory image"))
        .stdout(predicate::str::contains(
            "Guest RAM:     96 KiB in 2 ranges",
        ))
        .stdout(predicate::str::contains("0x000000100000 - 0x000000108000"))
        .stdout(predicate::str::contains("Processors:    none saved"));
    let out = dir.path().join("raw.dmp");
    vm2dmp()
        .args(["convert", "--raw", "--memory-map", MAP, "--quiet"])
        .arg(&raw)
        .arg(&out)
        .assert()
        .success();
    vm2dmp()
        .args(["verify", "--raw", "--memory-map", MAP])
        .arg(&out)
        .arg(&raw)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "OK: 24 guest pages compared: 0 differ",
        ));
    // The same file read as one range from 0 is different memory: the dump does not match.
    vm2dmp()
        .args(["verify", "--raw"])
        .arg(&out)
        .arg(&raw)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("MISMATCH"));
}

#[test]
fn bad_raw_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_image(dir.path());
    vm2dmp()
        .args(["info", "--raw", "--memory-map", "0x0-0x123"])
        .arg(&raw)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--memory-map"))
        .stderr(predicate::str::contains("page-aligned"));
    vm2dmp()
        .args(["info", "--raw", "--cr3", "zz"])
        .arg(&raw)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--cr3 zz: not a number"));
    // --memory-map without --raw is refused by the parser.
    vm2dmp()
        .args(["info", "--memory-map", MAP])
        .arg(&raw)
        .assert()
        .code(2);
    // A map larger than the file: one line naming the file.
    vm2dmp()
        .args(["convert", "--raw", "--memory-map", "0x0-0xfffff"])
        .arg(&raw)
        .arg(dir.path().join("x.dmp"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("guest.raw: memory map at offset 0x18000: the memory map describes 1048576 bytes but the file ends at 98304"));
    assert!(!dir.path().join("x.dmp").exists());
}
