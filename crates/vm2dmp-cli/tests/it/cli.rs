//! The `vm2dmp` command: exit codes, messages, JSON output, on the real sample.

use crate::common::*;

use predicates::prelude::*;
use serde_json::Value;

#[test]
fn help_and_version() {
    vm2dmp()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("Exit codes"));
    vm2dmp()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    vm2dmp().arg("frobnicate").assert().code(2);
    vm2dmp().args(["convert", "only-one-arg"]).assert().code(2);
}

#[test]
fn info_text_and_json() {
    vm2dmp()
        .args(["info"])
        .arg(sample("test_file.VMRS"))
        .assert()
        .success()
        .stdout(predicate::str::contains("Processors:    4"))
        .stdout(predicate::str::contains("X86, paging mode Bit32"))
        .stdout(predicate::str::contains(
            "185 compressed, 6 raw, 64278 zero-filled, 43 pattern-filled",
        ));
    let out = vm2dmp()
        .args(["info", "--json"])
        .arg(sample("test_file.vsv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["format"], "vsv+bin");
    assert_eq!(j["vp_count"], 4);
    assert_eq!(j["ram_pages"], 64512);
    assert_eq!(j["encoding"]["compressed_pages"], 185);
    assert_eq!(j["vcpus"][0]["rip"], "0x5ba9");
    assert_eq!(j["vcpus"][1]["cr0"], "0x60000010");
    assert_eq!(j["vcpus"][0]["registers"]["rcx"], 4);
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.vmrs");
    std::fs::write(&junk, b"this is not a saved state at all").unwrap();
    let out = vm2dmp().arg("info").arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("junk.vmrs") && err.contains("file signature") && err.contains("0x0"),
        "{err}"
    );

    let out = vm2dmp()
        .arg("info")
        .arg(dir.path().join("missing.vmrs"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let vsv = dir.path().join("alone.vsv");
    std::fs::copy(sample("test_file.vsv"), &vsv).unwrap();
    let out = vm2dmp()
        .arg("convert")
        .arg(&vsv)
        .arg(dir.path().join("o.dmp"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("alone.bin") && err.contains("--bin"), "{err}");
    assert!(!dir.path().join("o.dmp").exists());
    // --bin finds it.
    vm2dmp()
        .arg("info")
        .arg(&vsv)
        .arg("--bin")
        .arg(sample("test_file.bin"))
        .assert()
        .success();
}

#[test]
fn convert_verify_and_overwrite_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("sample.dmp");
    let out = vm2dmp()
        .args(["convert", "--json"])
        .arg(sample("test_file.VMRS"))
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["dump_type"], 1);
    assert_eq!(j["pages_written"], 64512);
    assert_eq!(j["bytes"], 0x1000 + 64512 * 4096);
    assert!(j["notes"][0]
        .as_str()
        .unwrap()
        .contains("no Windows kernel is present"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("note: "), "{stderr}");
    assert_eq!(
        std::fs::metadata(&out_path).unwrap().len(),
        0x1000 + 64512 * 4096
    );

    // An existing output is refused without --force, and left as it was.
    let before = std::fs::metadata(&out_path).unwrap().modified().unwrap();
    vm2dmp()
        .arg("convert")
        .arg(sample("test_file.VMRS"))
        .arg(&out_path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(
        std::fs::metadata(&out_path).unwrap().modified().unwrap(),
        before
    );

    vm2dmp()
        .args(["verify"])
        .arg(&out_path)
        .arg(sample("test_file.VMRS"))
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "OK: 64512 guest pages compared",
        ));
    // The .vsv/.bin pair is a different save: exactly five pages differ.
    vm2dmp()
        .args(["verify"])
        .arg(&out_path)
        .arg(sample("test_file.vsv"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("5 differ"))
        .stdout(predicate::str::contains("0x0 0x7 0xf9 0xfbf0 0xfbf1"));

    vm2dmp()
        .args(["info"])
        .arg(&out_path)
        .assert()
        .success()
        .stdout(predicate::str::contains("DUMP_HEADER32 (DumpType 1: full)"))
        .stdout(predicate::str::contains("rip 0x5ba9"));

    // Bitmap with zero pages left out, over the existing file with --force.
    let out = vm2dmp()
        .args(["convert", "--force", "--skip-zero", "--json", "-q"])
        .arg(sample("test_file.vsv"))
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["dump_type"], 5);
    let written = j["pages_written"].as_u64().unwrap();
    assert!((234..1000).contains(&written), "{written}");
    vm2dmp()
        .args(["verify"])
        .arg(&out_path)
        .arg(sample("test_file.vsv"))
        .assert()
        .success();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary files left"
    );

    vm2dmp()
        .args(["convert", "--skip-zero", "--format", "full"])
        .arg(sample("test_file.vsv"))
        .arg(dir.path().join("x.dmp"))
        .assert()
        .code(2);
}

/// Damaged copies of the real sample: exit code 2, one line naming the file and the structure.
#[test]
fn damaged_inputs_exit_2_with_one_line_naming_file_and_structure() {
    let dir = tempfile::tempdir().unwrap();
    let vmrs = std::fs::read(sample("test_file.VMRS")).unwrap();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "truncated",
            Box::new(|d| d.truncate(6000)),
            "HVS file header",
        ),
        (
            "magic",
            Box::new(|d| {
                d[0] = b'X';
                d[4096] = b'X';
            }),
            "file signature",
        ),
        (
            "both-crcs",
            Box::new(|d| {
                d[12] ^= 1;
                d[4096 + 12] ^= 1;
            }),
            "HVS file header",
        ),
        (
            "object-entry",
            Box::new(|d| d[0x2008 + 7] ^= 1),
            "object table entry",
        ),
        (
            "object-count",
            Box::new(|d| d[0x2004..0x2008].copy_from_slice(&u32::MAX.to_le_bytes())),
            "object table",
        ),
        ("key-entry", Box::new(|d| d[0x3050] ^= 4), "key table entry"),
    ];
    for (name, damage, structure) in cases {
        let mut d = vmrs.clone();
        damage(&mut d);
        let p = dir.path().join(format!("{name}.vmrs"));
        std::fs::write(&p, d).unwrap();
        for cmd in ["info", "convert"] {
            let mut c = vm2dmp();
            c.arg(cmd).arg(&p);
            if cmd == "convert" {
                c.arg(dir.path().join("out.dmp"));
            }
            let out = c.output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{name} {cmd}");
            let err = String::from_utf8(out.stderr).unwrap();
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            assert!(
                err.contains(&format!("{name}.vmrs")) && err.contains(structure),
                "{name}: {err}"
            );
            assert!(err.contains("offset 0x"), "{name}: {err}");
        }
        assert!(!dir.path().join("out.dmp").exists());
    }
}

/// A write error (the file-size limit standing in for a full disk): exit 1, one line, nothing
/// left under the target name or as a temporary file.
#[cfg(target_os = "linux")]
#[test]
fn write_error_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("full.dmp");
    let bin = assert_cmd::cargo::cargo_bin("vm2dmp");
    let script = format!(
        "trap '' XFSZ; ulimit -f 2048; exec '{}' convert '{}' '{}'",
        bin.display(),
        sample("test_file.VMRS").display(),
        out_path.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("vm2dmp: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("full.dmp"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{err}");
}

fn windows_dump(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/windows-dumps")
        .join(name)
}

/// `info` on kernel dumps Windows wrote (testdata/windows-dumps): the header fields as
/// Windows set them, in text and JSON; `verify` refuses a dump without page data.
#[test]
fn info_on_dumps_written_by_windows() {
    let arm64 = windows_dump("win10_arm64_mem.dmp");
    let out = vm2dmp().arg("info").arg(&arm64).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Header:               DUMP_HEADER64 (DumpType 4: triage / kernel minidump)",
        "Machine:              0xaa64 (ARM64), 8 processor(s)",
        "Version:              0xf.17134 (free build 17134)",
        "DirectoryTableBase:   0x400a9000",
        "KdDebuggerDataBlock:  0xfffff801bce5ef70",
        "PsLoadedModuleList:   0xfffff801bce76c30",
        "PsActiveProcessHead:  0xfffff801bce6fda0",
        "PfnDataBase:          0xfffff801bcf392b0",
        "BugCheck:             0xe2 MANUALLY_INITIATED_CRASH (0x0, 0x0, 0x0, 0x0)",
        "SystemTime:           2018-07-06 22:16:05 UTC (FILETIME 0x1d41576ee8dce77)",
        "Context:              ARM64 CONTEXT, not decoded",
        "Size:                 1003028 bytes (RequiredDumpSpace 1003252, DIFFERENT)",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    let out = vm2dmp()
        .args(["info", "--json"])
        .arg(windows_dump("RPi3_ARM_mini.cab.dmp"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["header"], "DUMP_HEADER32");
    assert_eq!(j["dump_type"], 4);
    assert_eq!(j["page_data"], false);
    assert_eq!(j["machine_image_type"], "0x1c4");
    assert_eq!(j["machine"], "ARM (Thumb-2)");
    assert_eq!(j["pae_enabled"], Value::Null);
    assert_eq!(j["major_version"], 15);
    assert_eq!(j["minor_version"], 17134);
    assert_eq!(j["directory_table_base"], "0x7200000");
    assert_eq!(j["pfn_database"], "0x80e4f1e0");
    assert_eq!(j["ps_loaded_module_list"], "0x80e16d78");
    assert_eq!(j["ps_active_process_head"], "0x80e12ba8");
    assert_eq!(j["kd_debugger_data_block"], "0x80deec58");
    assert_eq!(j["number_processors"], 4);
    assert_eq!(j["bugcheck_code"], "0x0");
    assert_eq!(j["system_time_utc"], "2018-07-16 20:15:13 UTC");
    assert_eq!(j["required_dump_space"], 336_912);
    assert_eq!(j["file_size"], 336_724);
    assert_eq!(j["comment"], "");
    assert_eq!(j["context_rip"], Value::Null);

    let out = vm2dmp()
        .arg("verify")
        .arg(&arm64)
        .arg(sample("test_file.VMRS"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(
            "win10_arm64_mem.dmp: DumpType 4 (triage / kernel minidump) holds no physical memory"
        ),
        "{err}"
    );
}

/// `keys` lists every key of the real sample's files, with types, places and values; a
/// damaged file is one error line and exit code 2.
#[test]
fn keys_of_the_real_sample() {
    let out = vm2dmp()
        .args(["keys", "--prefix", "/savedstate/"])
        .arg(sample("test_file.VMRS"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "/savedstate/VmVersion [int, 8 bytes at 0x3d0d] 2304",
        "/savedstate/VmwpVersion [string, 76 bytes at 0x3c60] \"10.0.18301.1044 (WinBuild.160101.0800)\"",
        "/savedstate/type [string, 12 bytes at 0x3cd6] \"Normal\"",
        // Version 3, 64,512 pages from GPA 0: the memory map expected.json gives.
        "/savedstate/RamMemoryBlock0 [binary, 48 bytes at 0x3d4a] 030000000000000000fc0000000000000000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}");
    }
    assert!(text.lines().all(|l| l.starts_with("/savedstate/")));
    // One key per 1 MiB RAM block: 64,512 pages / 256 = 252.
    let blocks = text
        .lines()
        .filter(|l| l.starts_with("/savedstate/RamBlock") && l.contains("[binary"))
        .count();
    assert_eq!(blocks, 252);

    let out = vm2dmp()
        .args(["keys", "--json"])
        .arg(sample("test_file.vsv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["container"], "legacy");
    assert_eq!(j["replay_log"], Value::Null);
    let keys = j["keys"].as_array().unwrap();
    assert!(keys.len() > 100, "{}", keys.len());
    let ram_map = keys
        .iter()
        .find(|k| {
            k["path"]
                .as_str()
                .unwrap_or("")
                .starts_with("RamMemoryBlock")
        })
        .unwrap_or_else(|| panic!("no memory map key in {j:#}"));
    assert_eq!(ram_map["type"], "binary");
    assert!(ram_map["value"]["hex"]
        .as_str()
        .unwrap()
        .starts_with("030000000000000000fc0000"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.vmrs");
    let mut b = std::fs::read(sample("test_file.VMRS")).unwrap();
    b[0] ^= 0xFF;
    b[4096] ^= 0xFF;
    std::fs::write(&bad, b).unwrap();
    let out = vm2dmp().arg("keys").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.vmrs"), "{err}");
}
