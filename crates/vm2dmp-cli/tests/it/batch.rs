//! `vm2dmp convert --out-dir`: many inputs (folders of both layouts, files, globs), the JSON
//! report, skipping complete dumps, exit codes; and the command-line conventions (help,
//! version, completions, usage errors).

use crate::common::*;

use std::path::{Path, PathBuf};

use predicates::prelude::*;
use serde_json::Value;
use vm2dmp_synth::{
    corrupt, write_vmrs, write_vsv_bin, KeyValue, ReplayTarget, SparsePages, SynthVm, SynthVp,
};

fn guest(tag: &str, mib: u64) -> SynthVm {
    let mut pages = SparsePages::new();
    pages.write(0, tag.as_bytes());
    pages.write(0x7000, b"another page");
    SynthVm::with_ram_mib(mib)
        .with_pages(pages)
        .with_vps(vec![SynthVp::x64_long_mode(
            0,
            0x1AA000,
            0xFFFF_F800_0000_1000,
            0xFFFF_F800_0010_0000,
        )])
}

fn vmrs(path: &Path, tag: &str, mib: u64) -> vm2dmp_synth::SynthLayout {
    write_vmrs(&guest(tag, mib), path).unwrap()
}

fn vmcx(path: &Path, keys: &[(&str, &str)]) {
    let mut vm = SynthVm::with_ram_mib(1);
    vm.vmrs.omit_keys = vec!["/savedstate".into()];
    vm.vmrs.device_keys = false;
    vm.vmrs.extra_keys = keys
        .iter()
        .map(|(k, v)| {
            (
                format!("/configuration/properties/{k}"),
                KeyValue::String((*v).into()),
            )
        })
        .collect();
    write_vmrs(&vm, path).unwrap();
}

fn xml(path: &Path, fields: &[(&str, &str)]) {
    let mut x = String::from("<?xml version=\"1.0\"?>\n<configuration><properties>\n");
    for (k, v) in fields {
        x.push_str(&format!("<{k} type=\"string\">{v}</{k}>\n"));
    }
    x.push_str("</properties></configuration>\n");
    std::fs::write(path, x).unwrap();
}

/// `root/web01` (2016+: saved VM, checkpoints Base, Patched (child of Base), Broken (damaged),
/// Production (no memory)) and `root/legacy` (2008-2012 R2: First, Second without its .bin).
fn build_tree(root: &Path) {
    let a = root.join("web01");
    let vms = mkdir(&a.join("Virtual Machines"));
    let snaps = mkdir(&a.join("Snapshots"));
    vmcx(&vms.join(format!("{VM_A}.vmcx")), &[("name", "Web01")]);
    vmrs(&vms.join(format!("{VM_A}.vmrs")), "web01", 2);
    std::fs::write(vms.join(format!("{VM_A}.vmgs")), vec![1u8; 4096]).unwrap();
    vmcx(&snaps.join(format!("{CP_1}.vmcx")), &[("name", "Base")]);
    vmrs(&snaps.join(format!("{CP_1}.vmrs")), "base", 2);
    vmcx(
        &snaps.join(format!("{CP_2}.vmcx")),
        &[("name", "Patched"), ("parent_snapshot_id", CP_1)],
    );
    vmrs(&snaps.join(format!("{CP_2}.vmrs")), "patched", 3);
    vmcx(
        &snaps.join(format!("{CP_3}.vmcx")),
        &[("name", "Broken"), ("parent_snapshot_id", CP_2)],
    );
    let broken = snaps.join(format!("{CP_3}.vmrs"));
    let l = vmrs(&broken, "broken", 2);
    corrupt::flip_byte(
        &broken,
        l.key("/savedstate/RamMemoryBlock0").entry_offset + 12,
    )
    .unwrap();
    vmcx(
        &snaps.join(format!("{CP_PROD}.vmcx")),
        &[("name", "Production"), ("parent_snapshot_id", CP_1)],
    );
    let mut prod = SynthVm::with_ram_mib(1);
    prod.vmrs.omit_keys = vec!["/savedstate".into()];
    write_vmrs(&prod, snaps.join(format!("{CP_PROD}.vmrs"))).unwrap();

    let b = root.join("legacy");
    let vms = mkdir(&b.join("Virtual Machines"));
    let snaps = mkdir(&b.join("Snapshots"));
    xml(&vms.join(format!("{VM_B}.xml")), &[("name", "Legacy 2012")]);
    let mut vm = guest("legacy", 2);
    vm.legacy.vram_bytes = 0;
    for (id, name) in [(SN_1, "First"), (SN_2, "Second")] {
        xml(&snaps.join(format!("{id}.xml")), &[("name", name)]);
        let d = mkdir(&snaps.join(id));
        write_vsv_bin(
            &vm,
            d.join(format!("{id}.vsv")),
            d.join(format!("{id}.bin")),
        )
        .unwrap();
    }
    std::fs::remove_file(snaps.join(SN_2).join(format!("{SN_2}.bin"))).unwrap();
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn by_label<'a>(r: &'a Value, label: &str) -> &'a Value {
    r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == label)
        .unwrap_or_else(|| panic!("no entry {label}: {r:#}"))
}

fn no_partial_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.contains(".partial"), "left behind: {n}");
    }
}

#[test]
fn bulk_convert_of_both_layouts_with_report_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path());
    let out_dir = dir.path().join("dumps");
    let report_path = dir.path().join("report.json");
    let out = vm2dmp()
        .args(["convert", "--jobs", "2", "--threads", "2", "--out-dir"])
        .arg(&out_dir)
        .arg("--report")
        .arg(&report_path)
        .arg(dir.path().join("web01"))
        .arg(dir.path().join("legacy"))
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    // Two entries failed: exit 1, after converting everything else.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("4 converted, 2 skipped, 2 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("FAILED  Web01 / Broken:"), "{stderr}");
    assert!(
        stderr.contains("vm2dmp: error: 2 of 8 entries failed"),
        "{stderr}"
    );

    let r = report(&report_path);
    assert_eq!(r["tool"], "vm2dmp");
    assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (
            r["ok"].as_u64(),
            r["skipped"].as_u64(),
            r["failed"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
    assert_eq!(r["entries"].as_array().unwrap().len(), 8);
    for e in r["entries"].as_array().unwrap() {
        for field in [
            "input", "output", "status", "pages", "bytes", "seconds", "error",
        ] {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
    }
    let expect_ok = [
        ("Web01 (VM state)", "Web01.dmp", 2u64),
        ("Web01 / Base", "Web01__Base.dmp", 2),
        ("Web01 / Patched", "Web01__Patched.dmp", 3),
        ("Legacy 2012 / First", "Legacy_2012__First.dmp", 2),
    ];
    for (label, file, mib) in expect_ok {
        let e = by_label(&r, label);
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["error"], Value::Null);
        assert_eq!(e["pages"], mib * 256);
        let output = PathBuf::from(e["output"].as_str().unwrap());
        assert_eq!(output, out_dir.join(file));
        assert_eq!(
            std::fs::metadata(&output).unwrap().len(),
            e["bytes"].as_u64().unwrap()
        );
        assert!(e["seconds"].as_f64().unwrap() >= 0.0);
        // Every page of the dump matches its saved state.
        let source = e["files"][0].as_str().unwrap();
        vm2dmp()
            .arg("verify")
            .arg(&output)
            .arg(source)
            .assert()
            .success();
    }
    let broken = by_label(&r, "Web01 / Broken");
    assert_eq!(broken["status"], "failed");
    assert!(
        broken["error"].as_str().unwrap().contains("offset 0x"),
        "{broken}"
    );
    assert_eq!(broken["output"], Value::Null);
    let second = by_label(&r, "Legacy 2012 / Second");
    assert_eq!(second["status"], "failed");
    assert!(
        second["error"].as_str().unwrap().contains(".bin"),
        "{second}"
    );
    let prod = by_label(&r, "Web01 / Production");
    assert_eq!(prod["status"], "skipped");
    assert!(prod["error"].as_str().unwrap().contains("no memory"));
    assert_eq!(by_label(&r, "Legacy 2012 (VM state)")["status"], "skipped");
    // Four dumps and nothing else in the output folder.
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 4);
    no_partial_files(&out_dir);

    // Again: complete dumps are kept, not rewritten.
    let before = std::fs::metadata(out_dir.join("Web01__Base.dmp"))
        .unwrap()
        .modified()
        .unwrap();
    let out = vm2dmp()
        .args(["convert", "--json", "-q", "--out-dir"])
        .arg(&out_dir)
        .arg(dir.path().join("web01"))
        .arg(dir.path().join("legacy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "quiet: only the final error line"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            r["ok"].as_u64(),
            r["skipped"].as_u64(),
            r["failed"].as_u64()
        ),
        (Some(0), Some(6), Some(2))
    );
    let base = by_label(&r, "Web01 / Base");
    assert_eq!(base["status"], "skipped");
    assert!(
        base["error"].as_str().unwrap().contains("complete"),
        "{base}"
    );
    assert_eq!(
        std::fs::metadata(out_dir.join("Web01__Base.dmp"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );

    // Only the good checkpoint, with --force: written again, exit 0.
    let out = vm2dmp()
        .args(["convert", "--force", "--checkpoint", "Patched", "--out-dir"])
        .arg(&out_dir)
        .arg(dir.path().join("web01"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 converted, 0 skipped, 0 failed"));
}

#[test]
fn files_globs_dirty_states_and_foreign_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let loose = mkdir(&dir.path().join("loose"));
    vmrs(&loose.join("alpha.vmrs"), "alpha", 1);
    vmrs(&loose.join("beta.vmrs"), "beta", 2);
    // A dirty file: its memory map is only right after replaying the log in memory.
    let mut dirty = guest("dirty", 2);
    dirty.vmrs.pending_replay = vec![ReplayTarget::KeyValue("/savedstate/RamMemoryBlock0".into())];
    write_vmrs(&dirty, loose.join("dirty.vmrs")).unwrap();
    let out_dir = dir.path().join("out");
    let report_path = dir.path().join("r.json");
    let pattern = format!("{}/*.vmrs", loose.display());

    let out = vm2dmp()
        .args(["convert", "-j", "3", "--out-dir"])
        .arg(&out_dir)
        .arg("--report")
        .arg(&report_path)
        .arg(&pattern)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&report_path);
    assert_eq!(r["ok"], 3);
    let d = by_label(&r, "dirty.vmrs");
    assert_eq!(d["status"], "ok");
    assert_eq!(d["replay_pending"], 1);
    vm2dmp()
        .arg("verify")
        .arg(out_dir.join("dirty.dmp"))
        .arg(loose.join("dirty.vmrs"))
        .assert()
        .success();

    // --no-replay reads the dirty file as it is: that one fails, the others convert; a
    // missing input and a pattern that matches nothing fail without stopping the rest.
    let out = vm2dmp()
        .args(["convert", "--no-replay", "--out-dir"])
        .arg(dir.path().join("out-no-replay"))
        .arg("--report")
        .arg(&report_path)
        .arg(dir.path().join("missing.vmrs"))
        .arg(format!("{}/*.nothing", loose.display()))
        .arg(&pattern)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = report(&report_path);
    assert_eq!(
        (
            r["ok"].as_u64(),
            r["skipped"].as_u64(),
            r["failed"].as_u64()
        ),
        (Some(2), Some(0), Some(3))
    );
    let entries = r["entries"].as_array().unwrap();
    assert!(entries[0]["error"]
        .as_str()
        .unwrap()
        .contains("no such file"));
    assert!(entries[1]["error"]
        .as_str()
        .unwrap()
        .contains("no file matches"));
    let d = by_label(&r, "dirty.vmrs");
    assert_eq!(d["status"], "failed");
    assert!(d["error"].as_str().unwrap().contains("dirty.vmrs"), "{d}");

    // A foreign file at an output path is not taken for a complete dump.
    std::fs::write(out_dir.join("alpha.dmp"), b"something else").unwrap();
    let out = vm2dmp()
        .args(["convert", "--out-dir"])
        .arg(&out_dir)
        .arg(loose.join("alpha.vmrs"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("not a complete dump") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out_dir.join("alpha.dmp")).unwrap(),
        b"something else"
    );
    vm2dmp()
        .args(["convert", "--force", "--out-dir"])
        .arg(&out_dir)
        .arg(loose.join("alpha.vmrs"))
        .assert()
        .success();
    vm2dmp()
        .arg("verify")
        .arg(out_dir.join("alpha.dmp"))
        .arg(loose.join("alpha.vmrs"))
        .assert()
        .success();
    no_partial_files(&out_dir);

    // Same names from different folders get distinct outputs; `INPUT DIR` with an existing
    // folder is a batch of one.
    let other = mkdir(&dir.path().join("other"));
    vmrs(&other.join("alpha.vmrs"), "other alpha", 1);
    let out2 = mkdir(&dir.path().join("out2"));
    vm2dmp()
        .args(["convert", "-q", "--out-dir"])
        .arg(&out2)
        .arg(loose.join("alpha.vmrs"))
        .arg(other.join("alpha.vmrs"))
        .assert()
        .success()
        .stderr("");
    assert!(out2.join("alpha.dmp").exists() && out2.join("alpha_2.dmp").exists());
    let out3 = mkdir(&dir.path().join("out3"));
    vm2dmp()
        .arg("convert")
        .arg(loose.join("beta.vmrs"))
        .arg(&out3)
        .assert()
        .success();
    assert!(out3.join("beta.dmp").exists());
}

#[test]
fn single_conversion_report() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("one.vmrs");
    vmrs(&input, "one", 1);
    let report_path = dir.path().join("one.json");
    vm2dmp()
        .arg("convert")
        .arg(&input)
        .arg(dir.path().join("one.dmp"))
        .arg("--report")
        .arg(&report_path)
        .assert()
        .success();
    let r = report(&report_path);
    assert_eq!(r["ok"], 1);
    assert_eq!(r["entries"][0]["status"], "ok");
    assert_eq!(r["entries"][0]["pages"], 256);
    // A failing single conversion keeps its exit code (2: unreadable input) and is reported.
    std::fs::write(dir.path().join("bad.vmrs"), b"junk junk junk").unwrap();
    vm2dmp()
        .arg("convert")
        .arg(dir.path().join("bad.vmrs"))
        .arg(dir.path().join("bad.dmp"))
        .arg("--report")
        .arg(&report_path)
        .assert()
        .code(2);
    let r = report(&report_path);
    assert_eq!(r["failed"], 1);
    assert!(r["entries"][0]["error"]
        .as_str()
        .unwrap()
        .contains("file signature"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.vmrs");
    vmrs(&a, "a", 1);
    let file = dir.path().join("file.txt");
    std::fs::write(&file, b"x").unwrap();
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["convert".into(), a.clone().into()],
        vec![
            "convert".into(),
            a.clone().into(),
            a.clone().into(),
            "c.dmp".into(),
        ],
        vec![
            "convert".into(),
            "--jobs".into(),
            "0".into(),
            "--out-dir".into(),
            dir.path().join("o").into(),
            a.clone().into(),
        ],
        vec![
            "convert".into(),
            "--out-dir".into(),
            file.clone().into(),
            a.clone().into(),
        ],
        vec![
            "convert".into(),
            "--bin".into(),
            "x.bin".into(),
            "--out-dir".into(),
            dir.path().join("o").into(),
            a.clone().into(),
            a.clone().into(),
        ],
        vec![
            "convert".into(),
            "--checkpoint".into(),
            "X".into(),
            a.clone().into(),
            "x.dmp".into(),
        ],
        vec![
            "convert".into(),
            "-q".into(),
            "-v".into(),
            a.clone().into(),
            "x.dmp".into(),
        ],
        vec!["list".into()],
        vec!["completions".into(), "tcsh".into()],
    ];
    for args in cases {
        let out = vm2dmp().args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !dir.path().join("o").exists()
            || std::fs::read_dir(dir.path().join("o")).unwrap().count() == 0
    );
}

#[test]
fn help_version_and_completions() {
    vm2dmp()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("list"))
        .stdout(predicate::str::contains("completions"))
        .stdout(predicate::str::contains("--out-dir"))
        .stdout(predicate::str::contains("Exit codes: 0 success, 1"))
        .stdout(predicate::str::contains("NO_COLOR"));
    let help = vm2dmp().args(["convert", "--help"]).output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for want in [
        "--out-dir",
        "--jobs",
        "--report",
        "--checkpoint",
        "--force",
        "--no-replay",
        "-q, --quiet",
        "-v, --verbose",
        "Examples:",
        "Exit code 1 when any input failed",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    vm2dmp()
        .args(["list", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--json"))
        .stdout(predicate::str::contains("Examples:"));
    vm2dmp()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    for (shell, want) in [
        ("bash", "_vm2dmp"),
        ("zsh", "#compdef vm2dmp"),
        ("fish", "complete -c vm2dmp"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        vm2dmp()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(want))
            .stdout(predicate::str::contains("out-dir"));
    }
}

/// `convert -q --out-dir OUT --report REPORT INPUTS...`, run to completion.
fn convert_into(out: &Path, report: &Path, inputs: &[&Path]) -> std::process::Output {
    vm2dmp()
        .args(["convert", "-q", "--out-dir"])
        .arg(out)
        .arg("--report")
        .arg(report)
        .args(inputs)
        .output()
        .unwrap()
}

/// Two inputs with one name in different folders: their dumps are `vm.dmp` and `vm_2.dmp`.
/// A later run given only the second must not take the first's `vm.dmp` for its own (the
/// dump names the input file and carries its modification time): it stops with an error
/// and leaves `vm.dmp` alone. A file without memory is skipped whether named or found.
#[test]
fn same_name_in_two_folders_is_not_mistaken_for_a_complete_dump() {
    let dir = tempfile::tempdir().unwrap();
    let a = mkdir(&dir.path().join("a"));
    let b = mkdir(&dir.path().join("b"));
    vmrs(&a.join("vm.vmrs"), "guest A", 2);
    vmrs(&b.join("vm.vmrs"), "guest B", 3);
    // The dump records the input's name and modification time: one second apart, whatever
    // the clock's resolution and however fast the two files were written.
    let epoch = std::time::SystemTime::UNIX_EPOCH;
    for (dir, secs) in [(&a, 1_700_000_000), (&b, 1_700_000_001)] {
        std::fs::File::options()
            .write(true)
            .open(dir.join("vm.vmrs"))
            .unwrap()
            .set_modified(epoch + std::time::Duration::from_secs(secs))
            .unwrap();
    }
    let out = dir.path().join("out");
    vm2dmp()
        .args(["convert", "-q", "--out-dir"])
        .arg(&out)
        .arg(a.join("vm.vmrs"))
        .arg(b.join("vm.vmrs"))
        .assert()
        .success();
    let first = std::fs::read(out.join("vm.dmp")).unwrap();
    assert!(out.join("vm_2.dmp").exists());
    // Only b: its output name is now vm.dmp, which holds a's dump.
    let report_path = dir.path().join("r.json");
    let o = convert_into(&out, &report_path, &[&b.join("vm.vmrs")]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = report(&report_path);
    assert_eq!(r["entries"][0]["status"], "failed");
    assert!(r["entries"][0]["error"]
        .as_str()
        .unwrap()
        .contains("not a complete dump of this input"));
    assert_eq!(std::fs::read(out.join("vm.dmp")).unwrap(), first);
    // Both again, in the first order: both complete, skipped.
    let o = convert_into(
        &out,
        &report_path,
        &[&a.join("vm.vmrs"), &b.join("vm.vmrs")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(report(&report_path)["skipped"], 2);

    // A file that holds no memory, named directly: skipped (exit 0), as in a folder.
    let mut cfg = SynthVm::with_ram_mib(1);
    cfg.vmrs.omit_keys = vec!["/savedstate".into()];
    let off = dir.path().join("off.vmrs");
    write_vmrs(&cfg, &off).unwrap();
    let o = convert_into(&out, &report_path, &[&off]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&report_path);
    assert_eq!(
        (r["skipped"].as_u64(), r["failed"].as_u64()),
        (Some(1), Some(0)),
        "{r:#}"
    );
}

/// A pattern that also matches the output folder (and, on the next run, the dumps in it),
/// over a `.VSV`/`.BIN` pair with upper-case extensions: each saved state converts once, the
/// output folder and its dumps are not taken for inputs, and a second run skips both.
#[test]
fn pattern_over_the_output_folder_and_an_upper_case_pair() {
    let dir = tempfile::tempdir().unwrap();
    let cases = mkdir(&dir.path().join("cases"));
    vmrs(&cases.join("a.vmrs"), "guest a", 2);
    write_vsv_bin(
        &guest("guest pair", 2),
        cases.join("VM.VSV"),
        cases.join("VM.BIN"),
    )
    .unwrap();
    let out = cases.join("dumps");
    let report_path = dir.path().join("r.json");
    for run in 0..2 {
        let o = convert_into(&out, &report_path, &[&cases.join("*")]);
        assert!(
            o.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r = report(&report_path);
        let (ok, skipped, failed) = (
            r["ok"].as_u64(),
            r["skipped"].as_u64(),
            r["failed"].as_u64(),
        );
        // The .BIN reaches the pair again: its own entry, skipped, naming the .VSV's.
        if run == 0 {
            assert_eq!((ok, skipped, failed), (Some(2), Some(1), Some(0)), "{r:#}");
        } else {
            assert_eq!((ok, skipped, failed), (Some(0), Some(3), Some(0)), "{r:#}");
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["VM.dmp", "a.dmp"]);
}
