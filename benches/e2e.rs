//! End-to-end conversion benchmark: synthetic `.vmrs` inputs of 1, 4 and 16 GiB of guest RAM,
//! converted to full and bitmap dumps, each timed against `cp` of the same input file in the
//! same run (warm page cache), with 1 and 2 threads, and the peak anonymous memory of the
//! conversion.
//!
//! `cargo bench -p vm2dmp-benches --bench e2e [-- --quick] [--max-gib N] [--only raw|mixed|compressed|mostly-zero] [--out FILE.md]`
//! Inputs go to `$VM2DMP_BENCH_DIR` (default `target/bench-e2e`) and are removed at the end;
//! `--out` is relative to the workspace root.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vm2dmp::{convert, Cancel, ConvertOptions, DumpFormat, NoProgress, SavedState};
use vm2dmp_benches::measure::{best_of, cp, warm, with_peak_rss, workspace};
use vm2dmp_benches::{write_input, Content};

fn convert_once(
    state: &SavedState,
    out: &Path,
    format: DumpFormat,
    skip_zero: bool,
    threads: usize,
) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let opts = ConvertOptions {
        format,
        skip_zero,
        force: true,
        comment: None,
        symbols: None,
        write_path: vm2dmp::WritePath::default(),
        ..ConvertOptions::default()
    };
    let t = Instant::now();
    pool.install(|| convert(state, out, &opts, &NoProgress, &Cancel::new()).expect("convert"));
    let s = t.elapsed().as_secs_f64();
    std::fs::remove_file(out).expect("remove dump");
    s
}

struct Row {
    gib: u64,
    content: Content,
    input_mib: f64,
    cp: f64,
    full2: f64,
    full1: f64,
    bitmap2: f64,
    skip2: Option<f64>,
    peak_mib: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out_md = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(|p| workspace().join(p));
    let dir = std::env::var_os("VM2DMP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/bench-e2e"));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let max_gib: u64 = args
        .iter()
        .position(|a| a == "--max-gib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let cases: Vec<(u64, Content)> = if quick {
        vec![(1, Content::RawBlocks), (1, Content::Compressed)]
    } else {
        vec![
            (1, Content::RawBlocks),
            (4, Content::RawBlocks),
            (1, Content::Mixed),
            (4, Content::Mixed),
            (16, Content::Mixed),
            (1, Content::Compressed),
            (4, Content::Compressed),
            (16, Content::Compressed),
            (16, Content::MostlyZero),
        ]
    };
    // `--only NAME`: the cases of one content ("raw", "mixed", "compressed", "mostly-zero").
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let cases: Vec<(u64, Content)> = cases
        .into_iter()
        .filter(|(g, _)| *g <= max_gib)
        .filter(|(_, c)| only.is_none_or(|o| c.short_name() == o))
        .collect();
    let runs = if quick { 1 } else { 2 };
    let mut rows = Vec::new();
    for (gib, content) in cases {
        let input = dir.join(format!(
            "guest-{gib}g-{}.vmrs",
            content.name().replace(' ', "-")
        ));
        let out = dir.join("out.dmp");
        let t = Instant::now();
        write_input(gib, content, &input).expect("write input");
        let input_mib = std::fs::metadata(&input).expect("input").len() as f64 / (1 << 20) as f64;
        eprintln!(
            "{gib} GiB {}: input {input_mib:.0} MiB written in {:.1} s",
            content.name(),
            t.elapsed().as_secs_f64()
        );
        warm(&input);
        let copy = dir.join("copy");
        let cp_s = best_of(runs, || {
            cp(&input, &copy);
            std::fs::remove_file(&copy).expect("remove copy");
        });
        let state = SavedState::open(&input).expect("open input");
        let full2 = (0..runs)
            .map(|_| convert_once(&state, &out, DumpFormat::Full, false, 2))
            .fold(f64::INFINITY, f64::min);
        let full1 = convert_once(&state, &out, DumpFormat::Full, false, 1);
        let bitmap2 = convert_once(&state, &out, DumpFormat::Bitmap, false, 2);
        let skip2 = (content == Content::MostlyZero)
            .then(|| convert_once(&state, &out, DumpFormat::Bitmap, true, 2));
        let (_, peak_mib) = with_peak_rss(|| {
            convert_once(&state, &out, DumpFormat::Full, false, 2);
        });
        let row = Row {
            gib,
            content,
            input_mib,
            cp: cp_s,
            full2,
            full1,
            bitmap2,
            skip2,
            peak_mib,
        };
        eprintln!(
            "  cp {:.2} s, full {:.2} s (2 threads) / {:.2} s (1 thread), bitmap {:.2} s{}, peak anon {:.0} MiB",
            row.cp,
            row.full2,
            row.full1,
            row.bitmap2,
            row.skip2.map_or(String::new(), |s| format!(", bitmap --skip-zero {s:.2} s")),
            row.peak_mib
        );
        rows.push(row);
        drop(state);
        std::fs::remove_file(&input).expect("remove input");
    }
    let _ = std::fs::remove_dir(&dir);
    let table = render(&rows);
    println!("{table}");
    if let Some(p) = out_md {
        std::fs::write(&p, &table).expect("write results");
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn render(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Machine: {} cores, {}; guest RAM above 3 GiB placed from 4 GiB (MMIO hole).\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    ));
    s.push_str("| guest | input | input file | cp + fsync | full dump, 2 threads | vs cp | full, 1 thread | 2 vs 1 thread | bitmap, 2 threads | per GiB (full) | peak anon memory |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} GiB | {} | {:.0} MiB | {:.2} s | {:.2} s | {:.2}x | {:.2} s | {:.2}x | {:.2} s{} | {:.3} s | {:.0} MiB |\n",
            r.gib,
            r.content.name(),
            r.input_mib,
            r.cp,
            r.full2,
            r.cp / r.full2,
            r.full1,
            r.full1 / r.full2,
            r.bitmap2,
            r.skip2.map_or(String::new(), |k| format!("; skip-zero {k:.2} s ({:.0}% of full)", 100.0 * k / r.full2)),
            r.full2 / r.gib as f64,
            r.peak_mib
        ));
    }
    s.push_str("\n\"vs cp\" is cp time / conversion time for the same input file (higher is faster; 1.0 = as fast as copying it). Both flush the written file to disk.\n");
    s
}
