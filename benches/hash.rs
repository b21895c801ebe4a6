//! What `convert --hash` costs: SHA-256 of a file against `sha256sum` of the same bytes in the
//! same run (both from the page cache), and a conversion with and without hashing its input
//! and its dump.
//!
//! `cargo bench -p vm2dmp-benches --bench hash [-- --gib N]` (default 1 GiB of guest RAM).
//! Files go to `$VM2DMP_BENCH_DIR` (default `target/bench-hash`) and are removed at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vm2dmp::{convert, Cancel, ConvertOptions, NoProgress, SavedState};
use vm2dmp_benches::measure::{best_of, warm, workspace};
use vm2dmp_benches::{write_input, Content};

const GIB: f64 = (1u64 << 30) as f64;

fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Seconds of one conversion of `state` to `out` (removed afterwards).
fn convert_secs(state: &SavedState, out: &Path, hash: bool) -> f64 {
    let opts = ConvertOptions {
        force: true,
        hash,
        ..ConvertOptions::default()
    };
    let t = Instant::now();
    let r = convert(state, out, &opts, &NoProgress, &Cancel::new()).expect("convert");
    let s = t.elapsed().as_secs_f64();
    assert_eq!(r.output_sha256.is_some(), hash);
    std::fs::remove_file(out).expect("remove dump");
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gib: u64 = args
        .iter()
        .position(|a| a == "--gib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let dir = std::env::var_os("VM2DMP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/bench-hash"));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let input = dir.join(format!("hash-{gib}g.vmrs"));
    write_input(gib, Content::RawBlocks, &input).expect("write input");
    warm(&input);
    let len = std::fs::metadata(&input).expect("input size").len() as f64;

    // The same bytes, from the page cache, hashed by the library and by sha256sum.
    let mut ours = String::new();
    let lib = best_of(3, || {
        ours = vm2dmp::hash::sha256_file(&input, &Cancel::new()).expect("hash");
    });
    let mut theirs = String::new();
    let tool = best_of(3, || theirs = sha256sum(&input));
    assert_eq!(ours, theirs, "digests differ");
    println!(
        "SHA-256 of {:.2} GiB: vm2dmp::hash {:.3} s/GiB, sha256sum {:.3} s/GiB: {:.2}x sha256sum's speed",
        len / GIB,
        lib * GIB / len,
        tool * GIB / len,
        tool / lib
    );

    // A conversion with and without --hash (input and dump hashed): the extra time per GiB of
    // bytes hashed (input + dump).
    let state = SavedState::open(&input).expect("open input");
    let out = dir.join("hash-out.dmp");
    let plain = best_of(3, || {
        convert_secs(&state, &out, false);
    });
    let hashed = best_of(3, || {
        convert_secs(&state, &out, true);
    });
    let dump_len = state.ram_pages() as f64 * 4096.0;
    println!(
        "convert {gib} GiB guest: {plain:.3} s without hashing, {hashed:.3} s with (+{:.3} s, {:.3} s per GiB hashed)",
        hashed - plain,
        (hashed - plain) * GIB / (len + dump_len)
    );
    let _ = std::fs::remove_file(&input);
}
