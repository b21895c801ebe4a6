//! Conversion of a realistic compressed guest (60% XPRESS pages of real firmware memory, 30%
//! zero-fill tokens, 10% raw pages; `vm2dmp_benches::RealMix`) against `cp` + fsync of a
//! raw file of the same size as the dump, in the same run: the work a conversion cannot avoid
//! (writing and flushing that many bytes). Each write path, 1 and 2 threads, and the growth
//! of anonymous memory.
//!
//! `cargo bench -p vm2dmp-benches --bench compressed [-- --gib 1,4,16] [--runs N] [--out FILE.md]`
//! Files go to `$VM2DMP_BENCH_DIR` (default `target/bench-compressed`; a tmpfs such as
//! `/dev/shm/x` measures without a disk) and are removed at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vm2dmp::{convert, Cancel, ConvertOptions, NoProgress, SavedState, WritePath};
use vm2dmp_benches::measure::{cp, warm, with_peak_rss, workspace};

/// `cp` + fsync of `from` (see [`cp`]); seconds (the copy's removal not counted).
fn cp_fsync(from: &Path, to: &Path) -> f64 {
    let t = Instant::now();
    cp(from, to);
    let s = t.elapsed().as_secs_f64();
    std::fs::remove_file(to).expect("remove copy");
    s
}

/// Seconds of one conversion and the growth of RssAnon during it (MiB).
fn convert_once(state: &SavedState, out: &Path, path: WritePath, threads: usize) -> (f64, f64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let opts = ConvertOptions {
        force: true,
        write_path: path,
        ..ConvertOptions::default()
    };
    with_peak_rss(|| {
        pool.install(|| convert(state, out, &opts, &NoProgress, &Cancel::new()).expect("convert"));
    })
}

struct Row {
    gib: u64,
    input_mib: f64,
    cp: f64,
    /// (path, threads) -> best seconds
    times: Vec<(WritePath, usize, f64)>,
    peak_mib: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let gibs: Vec<u64> = arg("--gib")
        .unwrap_or_else(|| "1,4,16".into())
        .split(',')
        .filter_map(|g| g.parse().ok())
        .collect();
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(2);
    let dir = std::env::var_os("VM2DMP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/bench-compressed"));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let mut rows = Vec::new();
    for gib in gibs {
        let input = dir.join(format!("realistic-{gib}g.vmrs"));
        let vm = vm2dmp_benches::realistic_guest(gib).expect("corpus");
        let t = Instant::now();
        vm2dmp_synth::write_vmrs(&vm, &input).expect("write input");
        drop(vm);
        let input_mib = std::fs::metadata(&input).expect("input").len() as f64 / (1 << 20) as f64;
        eprintln!(
            "{gib} GiB: input {input_mib:.0} MiB written in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        warm(&input);
        let state = SavedState::open(&input).expect("open");
        let out = dir.join("out.dmp");
        // The raw file of the same size: a dump of this guest.
        let raw = dir.join("raw.bin");
        convert_once(&state, &raw, WritePath::default(), 2);
        warm(&raw);
        let mut cp = f64::INFINITY;
        let mut times: Vec<(WritePath, usize, f64)> = Vec::new();
        let mut peak_mib: f64 = 0.0;
        for _ in 0..runs {
            // Interleaved: each round measures the baseline and every variant once.
            cp = cp.min(cp_fsync(&raw, &dir.join("copy.bin")));
            for path in [WritePath::WriterThread, WritePath::Workers] {
                for threads in [2, 1] {
                    let (s, p) = convert_once(&state, &out, path, threads);
                    std::fs::remove_file(&out).expect("remove dump");
                    peak_mib = peak_mib.max(p);
                    match times
                        .iter_mut()
                        .find(|(w, t, _)| *w == path && *t == threads)
                    {
                        Some(e) => e.2 = e.2.min(s),
                        None => times.push((path, threads, s)),
                    }
                }
            }
        }
        std::fs::remove_file(&raw).expect("remove raw");
        let row = Row {
            gib,
            input_mib,
            cp,
            times,
            peak_mib,
        };
        eprintln!("{}", render_row(&row));
        rows.push(row);
        drop(state);
        std::fs::remove_file(&input).expect("remove input");
    }
    let _ = std::fs::remove_dir(&dir);
    let mut table = String::from(
        "| guest | input file | cp + fsync of a raw file of the dump's size | writer thread, 2 threads | vs cp | writer thread, 1 thread | 2 vs 1 | workers write, 2 threads | vs cp | workers write, 1 thread | guest RAM/s (best) | anon memory growth |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&render_row(r));
        table.push('\n');
    }
    println!("{table}");
    if let Some(p) = arg("--out") {
        std::fs::write(workspace().join(p), &table).expect("write results");
    }
}

fn render_row(r: &Row) -> String {
    let t = |p: WritePath, n: usize| {
        r.times
            .iter()
            .find(|(w, k, _)| *w == p && *k == n)
            .map_or(f64::NAN, |e| e.2)
    };
    let (w2, w1) = (t(WritePath::WriterThread, 2), t(WritePath::WriterThread, 1));
    let (k2, k1) = (t(WritePath::Workers, 2), t(WritePath::Workers, 1));
    let best = w2.min(k2);
    format!(
        "| {} GiB | {:.0} MiB | {:.2} s | {:.2} s | {:.2}x | {:.2} s | {:.2}x | {:.2} s | {:.2}x | {:.2} s | {:.2} GB/s | {:.0} MiB |",
        r.gib,
        r.input_mib,
        r.cp,
        w2,
        r.cp / w2,
        w1,
        w1 / w2,
        k2,
        r.cp / k2,
        k1,
        (r.gib << 30) as f64 / best / 1e9,
        r.peak_mib
    )
}
