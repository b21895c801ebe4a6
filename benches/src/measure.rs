//! Timing helpers shared by the end-to-end benchmarks.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workspace root (benchmarks run with the package folder as working directory).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Best of `n` runs of `f`, in seconds.
pub fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Reads the whole file once so it is in the page cache.
pub fn warm(path: &Path) {
    let mut f = std::fs::File::open(path).expect("open input");
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).expect("read input") > 0 {}
}

/// `cp` of `input` to `out`, flushed to disk like our output is (fsync before the rename).
pub fn cp(input: &Path, out: &Path) {
    let st = std::process::Command::new("cp")
        .arg(input)
        .arg(out)
        .status()
        .expect("run cp");
    assert!(st.success());
    std::fs::File::open(out)
        .and_then(|f| f.sync_all())
        .expect("fsync copy");
}

pub fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `f` while sampling RssAnon; returns (seconds, peak RssAnon growth in MiB).
pub fn with_peak_rss(f: impl FnOnce()) -> (f64, f64) {
    let base = rss_anon_kib();
    let peak = Arc::new(AtomicU64::new(base));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let t = Instant::now();
    f();
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (
        secs,
        peak.load(Ordering::Relaxed).saturating_sub(base) as f64 / 1024.0,
    )
}
