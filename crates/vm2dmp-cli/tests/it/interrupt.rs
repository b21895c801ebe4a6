//! A conversion stopped midway — by SIGINT, SIGTERM, or a disk that fills up while the dump is
//! written — exits non-zero with one line and leaves nothing in the output folder.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vm2dmp_synth::{write_vmrs, BlockEncoding, PagePolicy, SynthVm, SynthVp};

use crate::common;

/// An x64 guest of `gib` GiB whose pages are all non-zero 8-byte patterns: the input is a few
/// MiB of fill tokens, while the dump needs every page written (no zero runs to leave as
/// holes), so writing it takes long enough to be interrupted.
fn patterned_guest(path: &Path, gib: u64) {
    let vm = SynthVm::with_ram_split(gib * 1024)
        .with_vps(vec![SynthVp::x64_long_mode(
            0,
            0x1AA000,
            0xFFFF_F800_0000_1000,
            0xFFFF_F800_0010_0000,
        )])
        .with_pages(|gpa_page: u64, buf: &mut [u8; 4096]| {
            let v = (gpa_page | 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for c in buf.chunks_exact_mut(8) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        })
        .with_encoding(BlockEncoding::Tokens(PagePolicy::FillOne));
    write_vmrs(&vm, path).unwrap();
}

/// An x64 guest of `mib` MiB of incompressible pages in raw 1 MiB blocks: the converter
/// copies them from the input file to the dump (inside the kernel where it can).
fn raw_block_guest(path: &Path, mib: u64) {
    let vm = SynthVm::with_ram_split(mib)
        .with_vps(vec![SynthVp::x64_long_mode(
            0,
            0x1AA000,
            0xFFFF_F800_0000_1000,
            0xFFFF_F800_0010_0000,
        )])
        .with_pages(|gpa_page: u64, buf: &mut [u8; 4096]| {
            let mut x = gpa_page.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for c in buf.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
        })
        .with_encoding(BlockEncoding::RawBlock);
    write_vmrs(&vm, path).unwrap();
}

fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("vm2dmp")
}

/// Starts `vm2dmp` with the arguments `args` adds, output captured, no colours.
fn spawn(args: impl FnOnce(&mut Command) -> &mut Command) -> Child {
    spawn_with_stderr(Stdio::piped(), args)
}

/// [`spawn`] with standard error going to `stderr`.
fn spawn_with_stderr(stderr: Stdio, args: impl FnOnce(&mut Command) -> &mut Command) -> Child {
    let mut c = Command::new(binary());
    args(&mut c)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn temp_name(target: &Path, pid: u32) -> PathBuf {
    let name = target.file_name().unwrap().to_string_lossy();
    target.with_file_name(format!(".{name}.partial-{pid}"))
}

/// Waits until `path` exists (the output has been created and sized: pages are being
/// written), looking again every millisecond; fails if the child ends first.
fn wait_for(path: &Path, child: &mut Child) {
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("vm2dmp ended ({status}) before writing its output");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn interrupted_by(sig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    patterned_guest(&input, 2);
    let out_dir = common::mkdir(&dir.path().join("out"));
    let target = out_dir.join("guest.dmp");
    let mut child = spawn(|c| {
        c.args(["convert", "--threads", "1"])
            .arg(&input)
            .arg(&target)
    });
    wait_for(&temp_name(&target, child.id()), &mut child);
    signal_while_stopped(child.id(), &[sig]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{sig}: status {} stderr {stderr}",
        out.status
    );
    assert_eq!(stderr.lines().count(), 1, "{sig}: {stderr}");
    assert!(
        stderr.starts_with("vm2dmp: error: interrupted") && stderr.contains("guest.dmp"),
        "{sig}: {stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!target.exists());
    assert_eq!(entries(&out_dir), Vec::<String>::new(), "{sig}");
}

/// Sends `sigs` to a stopped process and lets it go on: the conversion cannot finish
/// between the moment the test sees its output and the moment the signals arrive.
fn signal_while_stopped(pid: u32, sigs: &[&str]) {
    signal(pid, "-STOP");
    for sig in sigs {
        signal(pid, sig);
    }
    signal(pid, "-CONT");
}

/// The one line of an interrupted single conversion: the immediate exit's (a second signal
/// handled first) or the cancelled conversion's, which names the dump not written.
fn is_interrupted_line(stderr: &str, target: &Path) -> bool {
    let cancelled = format!(
        "vm2dmp: error: interrupted; {} was not written\n",
        target.display()
    );
    stderr == "vm2dmp: error: interrupted\n" || stderr == cancelled
}

/// Asserts what an interrupted single conversion leaves in `dir`: nothing under the target
/// name, at most its hidden temporary file (and the `extra` names the test put there).
fn assert_left_at_most_temp(dir: &Path, target: &Path, pid: u32, extra: &[&str]) {
    assert!(!target.exists());
    let temp = temp_name(target, pid);
    let temp = temp.file_name().unwrap().to_string_lossy();
    for name in entries(dir) {
        assert!(
            name == temp || extra.contains(&name.as_str()),
            "left behind: {name}"
        );
    }
}

/// Two signals pending together while the process is stopped: the second may be handled
/// before or after the cancelled conversion reports; either way one line and exit code 130.
#[test]
fn two_queued_signals_give_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    patterned_guest(&input, 2);
    for (i, sigs) in [["-INT", "-TERM"], ["-HUP", "-INT"]].iter().enumerate() {
        let out_dir = common::mkdir(&dir.path().join(format!("out{i}")));
        let target = out_dir.join("guest.dmp");
        let mut child = spawn(|c| {
            c.args(["convert", "--threads", "1"])
                .arg(&input)
                .arg(&target)
        });
        wait_for(&temp_name(&target, child.id()), &mut child);
        signal_while_stopped(child.id(), sigs);
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(130), "{sigs:?}: {stderr}");
        assert!(is_interrupted_line(&stderr, &target), "{sigs:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert_left_at_most_temp(&out_dir, &target, pid, &[]);
    }
}

/// A second signal ends the process at once, even while the main thread is stuck: here it
/// cannot get past writing `--report` (a FIFO nobody reads sits at the report's temporary
/// name), so the signal handler is always first. Exit code 130, its line alone.
#[test]
fn second_sigint_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    patterned_guest(&input, 2);
    let out_dir = common::mkdir(&dir.path().join("out"));
    let target = out_dir.join("guest.dmp");
    let report = out_dir.join("report.json");
    let mut child = spawn(|c| {
        c.args(["convert", "--threads", "1", "--report"])
            .arg(&report)
            .arg(&input)
            .arg(&target)
    });
    let pid = child.id();
    let temp = temp_name(&target, pid);
    wait_for(&temp, &mut child);
    signal(pid, "-STOP");
    // The dump is not complete (not renamed), so the report has not been written yet.
    assert!(temp.exists(), "the conversion ended before the signals");
    let fifo = temp_name(&report, pid);
    mkfifo(&fifo);
    signal(pid, "-INT");
    signal(pid, "-TERM");
    signal(pid, "-CONT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr, "vm2dmp: error: interrupted\n");
    assert!(out.stdout.is_empty());
    // Only the report written before converting is there: not finished.
    let placeholder: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(placeholder["finished"], false, "{placeholder}");
    let fifo_name = fifo.file_name().unwrap().to_string_lossy().into_owned();
    assert_left_at_most_temp(&out_dir, &target, pid, &[&fifo_name, "report.json"]);
}

/// The cancelled conversion has decided its final line and is writing it (its standard error
/// is full, so the write waits) when the second signal arrives and is handled: that line
/// alone, exit 130.
#[test]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    ignore = "system call numbers known for x86_64 and aarch64 only"
)]
fn second_signal_after_cancellation_is_reported_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    patterned_guest(&input, 2);
    let out_dir = common::mkdir(&dir.path().join("out"));
    let target = out_dir.join("guest.dmp");
    let (mut stderr_reader, stderr) = full_socket();
    let mut child = spawn_with_stderr(std::os::fd::OwnedFd::from(stderr).into(), |c| {
        c.args(["convert", "--threads", "1"])
            .arg(&input)
            .arg(&target)
    });
    let pid = child.id();
    wait_for(&temp_name(&target, pid), &mut child);
    signal_while_stopped(pid, &["-INT"]);
    wait_for_stderr_write(&mut child);
    signal_and_wait_for_handler(&mut child, "-TERM");
    let mut bytes = Vec::new();
    stderr_reader.read_to_end(&mut bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    // What the test wrote to fill the socket comes first.
    let written: Vec<u8> = bytes.into_iter().skip_while(|b| *b == FILL).collect();
    let stderr = String::from_utf8_lossy(&written);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "vm2dmp: error: interrupted; {} was not written\n",
            target.display()
        )
    );
    assert!(out.stdout.is_empty());
    assert_eq!(entries(&out_dir), Vec::<String>::new());
}

/// The byte a socket is filled with before it becomes a child's standard error.
const FILL: u8 = 0;

/// A connected pair of sockets: one end to read, and the other, its send buffer already
/// full, to give a child as standard error, so that the child's first write waits until the
/// test reads.
fn full_socket() -> (UnixStream, UnixStream) {
    let (reader, writer) = UnixStream::pair().unwrap();
    writer.set_nonblocking(true).unwrap();
    let mut w = &writer;
    for size in [4096, 1] {
        let chunk = vec![FILL; size];
        loop {
            match w.write(&chunk) {
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the socket: {e}"),
            }
        }
    }
    writer.set_nonblocking(false).unwrap();
    (reader, writer)
}

/// The numbers of the `write` and `futex` system calls, as `/proc/PID/task/TID/syscall`
/// shows them: x86_64, and the generic table of aarch64 (the test that uses them runs on
/// these two only).
#[cfg(target_arch = "x86_64")]
const SYS_WRITE_FUTEX: (u64, u64) = (1, 202);
#[cfg(not(target_arch = "x86_64"))]
const SYS_WRITE_FUTEX: (u64, u64) = (64, 98);

/// The system call a thread is blocked in and its first argument, or `None` while it runs.
fn blocked_in(task: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(task.join("syscall")).ok()?;
    let mut fields = text.split_whitespace();
    let number = fields.next()?.parse().ok()?;
    Some((number, fields.next()?.to_string()))
}

fn tasks(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.flatten().map(|t| t.path()).collect())
        .unwrap_or_default()
}

/// Looks at the child's threads every millisecond until `found` gives something; fails if
/// the child ends first.
fn poll<T>(child: &mut Child, what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let readable = std::fs::read_to_string(format!("/proc/{}/syscall", child.id()));
    assert!(readable.is_ok(), "/proc/PID/syscall: {readable:?}");
    loop {
        if let Some(v) = found() {
            return v;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("vm2dmp ended ({status}) before {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until a thread of the child is blocked writing to its standard error.
fn wait_for_stderr_write(child: &mut Child) {
    let pid = child.id();
    poll(child, "writing to standard error", || {
        tasks(pid)
            .iter()
            .any(|t| blocked_in(t) == Some((SYS_WRITE_FUTEX.0, "0x2".into())))
            .then_some(())
    });
}

/// Sends `sig` to the child and waits until the thread running its signal handler (the one
/// the ctrlc crate names `ctrl-c`) has taken it: blocked again, but no longer where it
/// waits for signals.
fn signal_and_wait_for_handler(child: &mut Child, sig: &str) {
    let pid = child.id();
    let handler = poll(child, "its signal thread started", || {
        tasks(pid).into_iter().find(|t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim_end() == "ctrl-c")
        })
    });
    let futex = SYS_WRITE_FUTEX.1;
    let waiting_for_signals = poll(child, "its signal thread waited", || {
        blocked_in(&handler).and_then(|(n, addr)| (n == futex).then_some(addr))
    });
    signal(pid, sig);
    poll(child, "its signal thread took the signal", || {
        blocked_in(&handler)
            .is_some_and(|(n, addr)| n == futex && addr != waiting_for_signals)
            .then_some(())
    });
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn sigint_midway_leaves_no_output() {
    interrupted_by("-INT");
}

#[test]
fn sigterm_midway_leaves_no_output() {
    interrupted_by("-TERM");
}

/// Runs `script` with `sh` in a private user and mount namespace, where it may mount a tmpfs
/// of a chosen size on `$1`; `$2` is the binary, `$3` the input, `$4` a folder for results.
/// `None` when the system does not allow unprivileged namespaces.
fn in_private_mount(script: &str, input: &Path, mount: &Path, results: &Path) -> Option<()> {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .stderr(Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        eprintln!("skipped: `unshare --user --map-root-user --mount` is not available here");
        return None;
    }
    let status = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-euc",
            script,
            "sh",
        ])
        .arg(mount)
        .arg(binary())
        .arg(input)
        .arg(results)
        .status()
        .unwrap();
    assert!(status.success(), "namespace script: {status}");
    Some(())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The file system fills up while pages are being written (another process takes the space
/// after the free-space check passed): the write error is reported in one line, the
/// temporary file is removed, and nothing appears under the target name. Pages written from
/// memory (decoded blocks) and pages copied from the input (raw blocks) alike.
#[test]
fn disk_full_midway_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    patterned_guest(&input, 2);
    disk_full_midway(&input, dir.path());
    let input = dir.path().join("raw.vmrs");
    raw_block_guest(&input, 768);
    disk_full_midway(&input, dir.path());
}

fn disk_full_midway(input: &Path, dir: &Path) {
    let dir = tempfile::tempdir_in(dir).unwrap();
    let input = input.to_path_buf();
    let mount = common::mkdir(&dir.path().join("small"));
    let results = common::mkdir(&dir.path().join("results"));
    // A 4 GiB tmpfs passes the free-space check for the 2 GiB dump; once the temporary
    // file exists the converter is stopped, the tmpfs is shrunk to what is in use plus
    // 256 KiB, and the converter continues into a full file system.
    let script = r#"
        mount -t tmpfs -o size=4g vm2dmp-test "$1"
        # The input on the same file system, so raw blocks are copied inside the kernel.
        cp "$3" "$1/input.vmrs"
        "$2" convert --threads 1 "$1/input.vmrs" "$1/guest.dmp" >"$4/stdout" 2>"$4/stderr" &
        pid=$!
        while [ ! -e "$1/.guest.dmp.partial-$pid" ]; do
            if ! kill -0 "$pid" 2>/dev/null; then echo "ended early" >"$4/early"; break; fi
            sleep 0.001
        done
        kill -STOP "$pid" 2>/dev/null || true
        # Every thread stopped, so no write is still under way when the size is taken.
        while [ -d "/proc/$pid" ] && sed 's/.*) //' /proc/"$pid"/task/*/stat 2>/dev/null | cut -c1 | grep -qv T; do
            sleep 0.001
        done
        used=$(df -k --output=used "$1" | tail -n 1)
        mount -o remount,size=$((used + 256))k "$1"
        df -k --output=avail "$1" | tail -n 1 >"$4/avail"
        kill -CONT "$pid" 2>/dev/null || true
        rc=0; wait "$pid" || rc=$?
        echo "$rc" >"$4/rc"
        rm "$1/input.vmrs"
        ls -A "$1" >"$4/ls"
    "#;
    if in_private_mount(script, &input, &mount, &results).is_none() {
        return;
    }
    assert_eq!(
        read(&results.join("early")),
        "",
        "the conversion ended before the disk filled"
    );
    let avail: u64 = read(&results.join("avail")).trim().parse().unwrap();
    assert!(avail <= 256, "{avail} KiB left");
    let stderr = read(&results.join("stderr"));
    assert_eq!(read(&results.join("rc")).trim(), "1", "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("vm2dmp: error: ")
            && stderr.contains("guest.dmp: cannot write")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(read(&results.join("stdout")), "");
    assert_eq!(
        read(&results.join("ls")),
        "",
        "left in the full file system"
    );
}

/// A file system too small for the dump from the start: refused before anything is written.
#[test]
fn disk_too_small_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("guest.vmrs");
    patterned_guest(&input, 1);
    let mount = common::mkdir(&dir.path().join("small"));
    let results = common::mkdir(&dir.path().join("results"));
    let script = r#"
        mount -t tmpfs -o size=64m vm2dmp-test "$1"
        rc=0; "$2" convert "$3" "$1/guest.dmp" >"$4/stdout" 2>"$4/stderr" || rc=$?
        echo "$rc" >"$4/rc"
        ls -A "$1" >"$4/ls"
    "#;
    if in_private_mount(script, &input, &mount, &results).is_none() {
        return;
    }
    let stderr = read(&results.join("stderr"));
    assert_eq!(read(&results.join("rc")).trim(), "1", "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("guest.dmp: not enough free disk space: need 1073"),
        "{stderr}"
    );
    assert_eq!(read(&results.join("ls")), "");
}

/// Ctrl-C during a bulk conversion: the dump being written is dropped, the inputs not yet
/// started are not written, the report says so, and the exit code is 130.
#[test]
fn sigint_during_batch_stops_it_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = common::mkdir(&dir.path().join("in"));
    for name in ["a", "b", "c"] {
        patterned_guest(&inputs.join(format!("{name}.vmrs")), 1);
    }
    let out_dir = dir.path().join("out");
    let report = dir.path().join("report.json");
    let mut child = spawn(|c| {
        c.args(["convert", "--threads", "1", "--jobs", "1", "--out-dir"])
            .arg(&out_dir)
            .arg("--report")
            .arg(&report)
            .arg(inputs.join("*.vmrs"))
    });
    wait_for(&temp_name(&out_dir.join("a.dmp"), child.id()), &mut child);
    signal_while_stopped(child.id(), &["-INT"]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(
            "vm2dmp: error: interrupted; 0 of 3 entries converted before it; the others were not written"
        ),
        "{stderr}"
    );
    assert_eq!(entries(&out_dir), Vec::<String>::new());
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let statuses: Vec<(&str, &str)> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["label"].as_str().unwrap_or(""),
                e["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 3, "{r:#}");
    assert!(statuses.iter().all(|(_, s)| *s == "failed"), "{r:#}");
    for e in r["entries"].as_array().unwrap() {
        let err = e["error"].as_str().unwrap_or("");
        assert!(err.contains("interrupted"), "{err}");
    }
}
