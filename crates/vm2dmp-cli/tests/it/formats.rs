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

/// The real QEMU dumps CI captures (`scripts/capture-qemu-dumps.sh`), when present.
fn qemu_dumps() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("VM2DMP_QEMU_DUMPS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/qemu-dumps")
        });
    if dir.join("ovmf.elf").is_file() && dir.join("ovmf.kdump-zlib").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: no real QEMU dumps in {}", dir.display());
        None
    }
}

#[test]
fn qemu_dumps_from_the_command_line() {
    let Some(q) = qemu_dumps() else { return };
    let (elf, kdump) = (q.join("ovmf.elf"), q.join("ovmf.kdump-zlib"));
    let out = vm2dmp()
        .arg("info")
        .arg(&elf)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "ELF core");
    assert_eq!(v["kind"], "QEMU ELF core");
    assert_eq!(v["vcpus"].as_array().unwrap().len(), 2);
    assert_eq!(v["vcpus"][0]["architecture"], "X64");
    // Below 4 GiB: 640 KiB, the rest up to 1 GiB and, once the firmware has mapped it, the
    // VGA framebuffer (how far the firmware got in its wall-clock seconds depends on the
    // machine's load); above: the last 512 MiB.
    let ranges = v["ram_ranges"].as_array().unwrap();
    assert!((3..=4).contains(&ranges.len()), "{ranges:?}");
    assert_eq!(ranges[0]["start"], "0x0");
    assert_eq!(ranges[ranges.len() - 1]["start"], "0x100000000");
    let pages: u64 = ranges.iter().map(|r| r["pages"].as_u64().unwrap()).sum();
    assert_eq!(v["ram_bytes"].as_u64(), Some(pages * 4096));
    vm2dmp()
        .arg("info")
        .arg(&kdump)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Format:        kdump-compressed dump (zlib, flattened)",
        ))
        .stdout(predicate::str::contains("Processors:    2"));

    // One batch of both; each dump verified against the other format.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    vm2dmp()
        .args(["convert", "--quiet", "--out-dir"])
        .arg(dir.path().join("dumps"))
        .arg("--report")
        .arg(&report)
        .arg(&elf)
        .arg(&kdump)
        .assert()
        .success();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["ok"], 2, "{r}");
    let dumps: Vec<_> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| std::path::PathBuf::from(e["output"].as_str().unwrap()))
        .collect();
    for (dump, other) in dumps.iter().zip([&kdump, &elf]) {
        vm2dmp()
            .arg("verify")
            .arg(dump)
            .arg(other)
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "OK: {pages} guest pages compared: 0 differ",
            )));
    }
}

#[test]
fn damaged_qemu_files_give_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    // An ELF core whose program headers run past the end of the file.
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[6] = 1;
    elf[16] = 4; // ET_CORE
    elf[18] = 62; // EM_X86_64
    elf[32] = 64; // e_phoff
    elf[54] = 56; // e_phentsize
    elf[56] = 3; // e_phnum
    let path = dir.path().join("cut.elf");
    std::fs::write(&path, &elf).unwrap();
    let out = dir.path().join("cut.dmp");
    let a = vm2dmp()
        .arg("convert")
        .arg(&path)
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cut.elf: ") && stderr.contains("at offset 0x40"),
        "{stderr}"
    );
    assert!(!out.exists());

    // A kdump-compressed file cut inside its header.
    let mut kd = b"KDUMP   ".to_vec();
    kd.extend_from_slice(&[6, 0, 0, 0]);
    let path = dir.path().join("cut.kdump");
    std::fs::write(&path, &kd).unwrap();
    let a = vm2dmp().arg("info").arg(&path).assert().code(2);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cut.kdump: ") && stderr.contains("offset 0x"),
        "{stderr}"
    );
}

#[test]
fn vmware_state_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("vm-Snapshot1.vmsn");
    vm2dmp_synth::vmware::Guest::small(2)
        .write(&state, Some(&dir.path().join("vm-Snapshot1.vmem")))
        .unwrap();
    vm2dmp()
        .arg("info")
        .arg(&state)
        .assert()
        .success()
        .stdout(predicate::str::contains("Format:        VMware snapshot"))
        .stdout(predicate::str::contains("vm-Snapshot1.vmsn + "))
        .stdout(predicate::str::contains("Processors:    2"));
    vm2dmp()
        .arg("list")
        .arg(dir.path().join("vm-Snapshot1.vmem"))
        .assert()
        .success()
        .stdout(predicate::str::contains("1 memory image to convert"))
        .stdout(predicate::str::contains(
            "ok           VMware snapshot, 3.2 MiB",
        ))
        .stdout(predicate::str::contains(
            "vm-Snapshot1.vmsn + vm-Snapshot1.vmem",
        ));
    // Batch over a glob naming both files: converted once.
    let report = dir.path().join("r.json");
    vm2dmp()
        .args(["convert", "--quiet", "--out-dir"])
        .arg(dir.path().join("out"))
        .arg("--report")
        .arg(&report)
        .arg(dir.path().join("vm-Snapshot1.*"))
        .assert()
        .success();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["ok"], 1, "{r}");
    // Again: the dump is complete, kept, not written twice.
    vm2dmp()
        .args(["convert", "--quiet", "--out-dir"])
        .arg(dir.path().join("out"))
        .arg("--report")
        .arg(&report)
        .arg(&state)
        .assert()
        .success();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        (r["ok"].as_u64(), r["skipped"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );
    // Without its .vmem: one line naming what was looked for.
    std::fs::remove_file(dir.path().join("vm-Snapshot1.vmem")).unwrap();
    vm2dmp()
        .arg("info")
        .arg(&state)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("vm-Snapshot1.vmem"))
        .stderr(predicate::str::contains("--bin"));
}
