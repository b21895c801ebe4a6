//! Evidence handling and running at scale: SHA-256 of inputs and dumps, byte-identical dumps
//! whatever the threads, jobs or folder, an entry for every input reached twice, absolute
//! report paths, the report written before converting, settings in the completeness check,
//! `--shard K/N` (also through GNU parallel), `report merge`, and the manual page.

use crate::common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};
use vm2dmp_synth::{write_vmrs, SparsePages, SynthVm, SynthVp};

/// A small x64 guest whose first page holds `tag`.
fn vmrs(path: &Path, tag: &str) {
    let mut pages = SparsePages::new();
    pages.write(0, tag.as_bytes());
    pages.write(0x7000, b"another page");
    let vm = SynthVm::with_ram_mib(2)
        .with_pages(pages)
        .with_vps(vec![SynthVp::x64_long_mode(
            0,
            0x1AA000,
            0xFFFF_F800_0000_1000,
            0xFFFF_F800_0010_0000,
        )]);
    write_vmrs(&vm, path).unwrap();
}

/// Sets the modification time of `path` to a fixed moment (inputs copied to other folders or
/// machines keep theirs).
fn set_mtime(path: &Path) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn report(path: &Path) -> Value {
    json(&std::fs::read(path).unwrap())
}

fn entries(r: &Value) -> &Vec<Value> {
    r["entries"].as_array().unwrap()
}

/// `n` inputs `in/g{i}.vmrs`.
fn inputs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let d = mkdir(&dir.join("in"));
    (0..n)
        .map(|i| {
            let p = d.join(format!("g{i}.vmrs"));
            vmrs(&p, &format!("guest {i}"));
            p
        })
        .collect()
}

#[test]
fn hashes_of_inputs_and_dumps_single_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("vm.vmrs");
    vmrs(&input, "hashed");
    let dump = dir.path().join("vm.dmp");
    let out = vm2dmp()
        .args(["convert", "--hash", "--json", "-q"])
        .arg(&input)
        .arg(&dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let summary = json(&out.stdout);
    let listed = summary["input"][0].as_str().unwrap();
    assert_eq!(summary["input_sha256"][listed], sha256(&input));
    assert_eq!(summary["output_sha256"], sha256(&dump));

    // Batch: every entry has the hashes, keyed by its files as listed; also when its complete
    // dump is kept on a second run.
    let out_dir = dir.path().join("dumps");
    let rep = dir.path().join("report.json");
    for run in 0..2 {
        vm2dmp()
            .args(["convert", "--hash", "-q", "--out-dir"])
            .arg(&out_dir)
            .arg("--report")
            .arg(&rep)
            .arg(&input)
            .assert()
            .success();
        let r = report(&rep);
        let e = &entries(&r)[0];
        assert_eq!(e["status"], if run == 0 { "ok" } else { "skipped" }, "{e}");
        let file = e["files"][0].as_str().unwrap();
        assert_eq!(e["input_sha256"][file], sha256(&input), "{e}");
        let output = PathBuf::from(e["output"].as_str().unwrap());
        assert_eq!(e["output_sha256"], sha256(&output), "{e}");
    }
    // Without --hash no hash fields.
    let plain = dir.path().join("plain.json");
    vm2dmp()
        .args(["convert", "-q", "--force", "--out-dir"])
        .arg(&out_dir)
        .arg("--report")
        .arg(&plain)
        .arg(&input)
        .assert()
        .success();
    assert!(entries(&report(&plain))[0].get("output_sha256").is_none());

    // verify --sha256: the right hash passes, another fails with one line (exit 1), a
    // malformed one is a usage error (exit 2).
    let hex = sha256(&dump);
    vm2dmp()
        .arg("verify")
        .arg(&dump)
        .arg(&input)
        .args(["--sha256", &hex.to_uppercase()])
        .assert()
        .success()
        .stdout(predicates::str::contains(format!("SHA-256 OK: {hex}")));
    let wrong = format!("{}0", &hex[..63]);
    let wrong = if wrong == hex { "0".repeat(64) } else { wrong };
    let out = vm2dmp()
        .arg("verify")
        .arg(&dump)
        .arg(&input)
        .args(["--sha256", &wrong])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SHA-256 mismatch"), "{stderr}");
    assert!(stderr.contains(&hex) && stderr.contains(&wrong), "{stderr}");
    vm2dmp()
        .arg("verify")
        .arg(&dump)
        .arg(&input)
        .args(["--sha256", "xyz"])
        .assert()
        .code(2);
}

#[test]
fn same_input_gives_the_same_bytes_whatever_folder_threads_and_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let a = mkdir(&dir.path().join("first"));
    let b = mkdir(&dir.path().join("second/deeper"));
    let (ia, ib) = (a.join("vm.vmrs"), b.join("vm.vmrs"));
    vmrs(&ia, "same guest");
    std::fs::copy(&ia, &ib).unwrap();
    set_mtime(&ia);
    set_mtime(&ib);
    let (da, db) = (dir.path().join("a.dmp"), dir.path().join("b.dmp"));
    for (input, dump, threads) in [(&ia, &da, "1"), (&ib, &db, "2")] {
        vm2dmp()
            .args(["convert", "-q", "--threads", threads])
            .arg(input)
            .arg(dump)
            .assert()
            .success();
    }
    let bytes = std::fs::read(&da).unwrap();
    assert_eq!(bytes, std::fs::read(&db).unwrap());
    // No folder of the input or the output in the dump.
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(&*dir.path().to_string_lossy()));

    // A batch of two inputs with one job, another with two: the same bytes again.
    let (x, y) = (a.join("other.vmrs"), b.join("other.vmrs"));
    vmrs(&x, "other guest");
    std::fs::copy(&x, &y).unwrap();
    set_mtime(&x);
    set_mtime(&y);
    for (folder, jobs, threads, list) in
        [("one", "1", "1", [&ia, &x]), ("two", "2", "2", [&ib, &y])]
    {
        vm2dmp()
            .args([
                "convert",
                "-q",
                "--jobs",
                jobs,
                "--threads",
                threads,
                "--out-dir",
            ])
            .arg(dir.path().join(folder))
            .args(list)
            .assert()
            .success();
    }
    for name in ["vm.dmp", "other.dmp"] {
        let one = std::fs::read(dir.path().join("one").join(name)).unwrap();
        assert_eq!(
            one,
            std::fs::read(dir.path().join("two").join(name)).unwrap()
        );
    }
    assert_eq!(std::fs::read(dir.path().join("one/vm.dmp")).unwrap(), bytes);
}

#[cfg(unix)]
#[test]
fn an_input_reached_twice_has_its_own_entry_and_paths_are_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let files = inputs(dir.path(), 1);
    std::os::unix::fs::symlink(&files[0], dir.path().join("link.vmrs")).unwrap();
    // Relative arguments, from the temporary folder: the file, a symbolic link to it, and a
    // glob over its folder.
    let out = vm2dmp()
        .current_dir(dir.path())
        .args([
            "convert",
            "-q",
            "--out-dir",
            "dumps",
            "--report",
            "r.json",
            "in/g0.vmrs",
            "link.vmrs",
            "in/*.vmrs",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = report(&dir.path().join("r.json"));
    let list = entries(&r);
    assert_eq!(list.len(), 3, "{r:#}");
    assert_eq!(
        (r["ok"].as_u64(), r["skipped"].as_u64()),
        (Some(1), Some(2))
    );
    let first = &list[0];
    assert_eq!(first["status"], "ok");
    let output = first["output"].as_str().unwrap();
    for again in &list[1..] {
        assert_eq!(again["status"], "skipped", "{again}");
        assert_eq!(again["duplicate_of"], output, "{again}");
        let why = again["error"].as_str().unwrap();
        assert!(why.contains("\"g0.vmrs\"") && why.contains(output), "{why}");
    }
    for e in list {
        assert!(Path::new(e["input"].as_str().unwrap()).is_absolute(), "{e}");
        for f in e["files"].as_array().unwrap() {
            assert!(Path::new(f.as_str().unwrap()).is_absolute(), "{e}");
        }
    }
    assert!(Path::new(output).is_absolute());
    assert!(Path::new(r["out_dir"].as_str().unwrap()).is_absolute());
    assert_eq!(
        std::fs::read_dir(dir.path().join("dumps")).unwrap().count(),
        1
    );
}

#[test]
fn the_report_is_written_before_converting_and_replaced_on_early_failure() {
    let dir = tempfile::tempdir().unwrap();
    let files = inputs(dir.path(), 1);
    let out_dir = dir.path().join("dumps");
    // A report that cannot be written: found before any conversion.
    let out = vm2dmp()
        .args(["convert", "-q", "--out-dir"])
        .arg(&out_dir)
        .arg("--report")
        .arg(dir.path().join("no/such/folder/r.json"))
        .arg(&files[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--report"), "{stderr}");
    let dumps = std::fs::read_dir(&out_dir).map_or(0, |d| d.count());
    assert_eq!(dumps, 0, "a dump was written");

    // An older report is replaced by one with the error when the run fails early.
    let rep = dir.path().join("r.json");
    std::fs::write(&rep, "{\"old\": true}").unwrap();
    vm2dmp()
        .args(["convert", "-q", "--jobs", "0", "--out-dir"])
        .arg(&out_dir)
        .arg("--report")
        .arg(&rep)
        .arg(&files[0])
        .assert()
        .code(2);
    let r = report(&rep);
    assert!(r.get("old").is_none(), "{r}");
    assert_eq!(r["finished"], true);
    assert!(r["error"].as_str().unwrap().contains("--jobs"), "{r}");
    assert_eq!(entries(&r).len(), 0);
    // A successful run replaces it with the entries; no temporary report is left.
    vm2dmp()
        .args(["convert", "-q", "--out-dir"])
        .arg(&out_dir)
        .arg("--report")
        .arg(&rep)
        .arg(&files[0])
        .assert()
        .success();
    let r = report(&rep);
    assert!(r.get("error").is_none() && entries(&r).len() == 1, "{r}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_complete_dump_made_with_other_settings_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let files = inputs(dir.path(), 1);
    let out_dir = dir.path().join("dumps");
    let rep = dir.path().join("r.json");
    let run = |extra: &[&str]| {
        vm2dmp()
            .args(["convert", "-q", "--out-dir"])
            .arg(&out_dir)
            .arg("--report")
            .arg(&rep)
            .args(extra)
            .arg(&files[0])
            .output()
            .unwrap()
    };
    assert!(run(&[]).status.success());
    let status = || entries(&report(&rep))[0]["status"].clone();
    let error = || {
        entries(&report(&rep))[0]["error"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // Same settings: kept.
    assert!(run(&[]).status.success());
    assert_eq!(status(), "skipped");
    // Each setting that changes the bytes: not taken for complete, and said why.
    for setting in [
        &["--skip-zero"][..],
        &["--format", "bitmap"],
        &["--no-replay"],
    ] {
        let out = run(setting);
        assert_eq!(out.status.code(), Some(1), "{setting:?}");
        assert_eq!(status(), "failed");
        assert!(error().contains("other settings"), "{}", error());
    }
    // --force writes it again with them; then it is complete for them and not for the
    // defaults.
    assert!(run(&["--skip-zero", "--force"]).status.success());
    assert_eq!(status(), "ok");
    assert!(run(&["--skip-zero"]).status.success());
    assert_eq!(status(), "skipped");
    assert_eq!(run(&[]).status.code(), Some(1));
    assert!(error().contains("skip-zero"), "{}", error());
    // --format full and auto write the same bytes: the same dump.
    assert!(run(&["--force"]).status.success());
    assert!(run(&["--format", "full"]).status.success());
    assert_eq!(status(), "skipped");
}

/// The outputs of the entries with status `ok` in each report.
fn written(reports: &[PathBuf]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|p| {
            entries(&report(p))
                .iter()
                .filter(|e| e["status"] == "ok")
                .map(|e| e["output"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn shards_split_the_images_and_their_reports_merge() {
    let dir = tempfile::tempdir().unwrap();
    let files = inputs(dir.path(), 5);
    let out_dir = dir.path().join("dumps");
    let mut reports = Vec::new();
    let mut counts = Vec::new();
    for k in 1..=2 {
        let rep = dir.path().join(format!("r-{k}.json"));
        vm2dmp()
            .args(["convert", "-q", "--shard", &format!("{k}/2"), "--out-dir"])
            .arg(&out_dir)
            .arg("--report")
            .arg(&rep)
            // The folder and a glob over it: every image once, whichever way it was reached.
            .arg(dir.path().join("in/g0.vmrs"))
            .arg(dir.path().join("in/*.vmrs"))
            .assert()
            .success();
        let r = report(&rep);
        assert_eq!(r["shard"], format!("{k}/2"));
        counts.push(entries(&r).len());
        reports.push(rep);
    }
    let all = written(&reports);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(unique.len(), 5, "a dump written twice: {all:?}");
    // g0 is reached twice: its second entry goes with the shard that converts it.
    assert_eq!(counts.iter().sum::<usize>(), 6, "{counts:?}");
    assert!(counts.iter().all(|&c| c >= 2), "unbalanced: {counts:?}");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), files.len());

    let merged = dir.path().join("all.json");
    vm2dmp()
        .args(["report", "merge"])
        .args(&reports)
        .arg("-o")
        .arg(&merged)
        .assert()
        .success();
    let m = report(&merged);
    assert_eq!(
        (
            m["ok"].as_u64(),
            m["skipped"].as_u64(),
            m["failed"].as_u64()
        ),
        (Some(5), Some(1), Some(0))
    );
    assert_eq!(entries(&m).len(), 6);
    assert_eq!(m["shards"], serde_json::json!(["1/2", "2/2"]));
    // The same report twice is not a set of shards.
    let out = vm2dmp()
        .args(["report", "merge"])
        .arg(&reports[0])
        .arg(&reports[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlap"));

    // K counts from 1 to N; --shard needs --out-dir.
    for bad in ["0/2", "3/2", "1/0", "x"] {
        vm2dmp()
            .args(["convert", "--shard", bad, "--out-dir"])
            .arg(&out_dir)
            .arg(&files[0])
            .assert()
            .code(2);
    }
    vm2dmp()
        .args(["convert", "--shard", "1/2"])
        .arg(&files[0])
        .arg(dir.path().join("x.dmp"))
        .assert()
        .code(2);
}

#[test]
fn shards_run_through_gnu_parallel() {
    let found = std::process::Command::new("parallel")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: GNU parallel is not installed (apt-get install parallel)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = inputs(dir.path(), 7);
    let out_dir = dir.path().join("dumps");
    let bin = assert_cmd::cargo::cargo_bin("vm2dmp");
    let status = std::process::Command::new("parallel")
        .env("NO_COLOR", "1")
        // No citation notice, no configuration from the home folder.
        .args(["--will-cite", "--halt", "never", "-j", "3"])
        .arg(&bin)
        .args([
            "convert",
            "-q",
            "--threads",
            "1",
            "--shard",
            "{}/3",
            "--out-dir",
        ])
        .arg(&out_dir)
        .arg("--report")
        .arg(dir.path().join("r-{}.json"))
        .arg(dir.path().join("in"))
        .args([":::", "1", "2", "3"])
        .status()
        .unwrap();
    assert!(status.success(), "parallel: {status}");
    let reports: Vec<PathBuf> = (1..=3)
        .map(|k| dir.path().join(format!("r-{k}.json")))
        .collect();
    let all = written(&reports);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a dump written twice: {all:?}");
    let expected: BTreeSet<String> = files
        .iter()
        .map(|f| {
            let stem = f.file_stem().unwrap().to_string_lossy();
            std::path::absolute(out_dir.join(format!("{stem}.dmp")))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let got: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(got, expected);
    for r in &reports {
        let n = entries(&report(r)).len();
        assert!((2..=3).contains(&n), "{}: {n} entries", r.display());
    }
}

#[test]
fn manual_page_names_the_commands() {
    let out = vm2dmp().arg("manpage").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH vm2dmp 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for command in [
        "convert",
        "verify",
        "info",
        "list",
        "keys",
        "completions",
        "report",
    ] {
        assert!(
            page.contains(&format!("vm2dmp\\-{command}(1)")),
            "{command} missing"
        );
    }
}
