//! Single-thread decode and encode throughput, this crate against
//! `xpress_rs` 0.2.0, on the real sample's 185 compressed pages, on pages
//! of real firmware memory (`testdata/ovmf-pages`, compressed with this
//! crate's encoder) and on synthetic pages compressed with this crate's
//! encoder.
//!
//! Run with `cargo bench -p vm2dmp-xpress`; figures go in `BENCH.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use vm2dmp_xpress::{compress, decompress_page, PAGE_SIZE};
use xpress_rs::lz77::{LZ77Compressor, LZ77Decompressor};

#[path = "../tests/it/common/sample.rs"]
#[allow(dead_code)]
mod sample;

#[path = "../tests/it/common/ovmf.rs"]
#[allow(dead_code)]
mod ovmf;

/// Pages per synthetic set.
const SYNTHETIC_PAGES: usize = 64;

/// Small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// English-like text: words from a small vocabulary, punctuation, lines.
fn text_page(rng: &mut Rng) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "memory",
        "page",
        "kernel",
        "driver",
        "process",
        "thread",
        "handle",
        "object",
        "system",
        "windows",
        "virtual",
        "address",
        "table",
        "entry",
        "file",
        "registry",
        "service",
        "network",
        "buffer",
        "error",
        "status",
        "device",
        "request",
        "completed",
        "with",
        "for",
        "from",
        "value",
        "string",
        "ntoskrnl",
    ];
    let mut v = Vec::with_capacity(PAGE_SIZE);
    while v.len() < PAGE_SIZE {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        v.extend_from_slice(w.as_bytes());
        v.push(match rng.below(12) {
            0 => b'\n',
            1 => b',',
            2 => b'.',
            _ => b' ',
        });
    }
    v.truncate(PAGE_SIZE);
    v
}

/// Arrays of kernel-like records: pointers, counters, flags, padding.
fn structured_page(rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::with_capacity(PAGE_SIZE);
    let base = 0xFFFF_F800_0000_0000u64 | (rng.below(1 << 20) << 12);
    let mut counter = rng.below(1000) as u32;
    while v.len() < PAGE_SIZE {
        v.extend_from_slice(&(base + rng.below(1 << 16) * 16).to_le_bytes());
        v.extend_from_slice(&(base + rng.below(1 << 16) * 16).to_le_bytes());
        v.extend_from_slice(&counter.to_le_bytes());
        counter += 1 + rng.below(3) as u32;
        v.extend_from_slice(&(rng.below(4) as u32).to_le_bytes());
        v.extend_from_slice(&[0u8; 16]);
        v.extend_from_slice(&(rng.next() & 0xFFFF_FFFF).to_le_bytes());
        v.extend_from_slice(&0x0000_0001_0000_0000u64.to_le_bytes());
    }
    v.truncate(PAGE_SIZE);
    v
}

/// Mostly zero, with a few short runs of data.
fn sparse_page(rng: &mut Rng) -> Vec<u8> {
    let mut v = vec![0u8; PAGE_SIZE];
    for _ in 0..1 + rng.below(8) {
        let len = 8 + rng.below(120) as usize;
        let at = rng.below((PAGE_SIZE - len) as u64) as usize;
        for b in &mut v[at..at + len] {
            *b = rng.next() as u8;
        }
    }
    v
}

struct Set {
    name: &'static str,
    /// Uncompressed pages (empty for the real sets).
    pages: Vec<Vec<u8>>,
    /// Compressed streams, each decoding to one page.
    streams: Vec<Vec<u8>>,
}

fn synthetic(name: &'static str, seed: u64, make: fn(&mut Rng) -> Vec<u8>) -> Set {
    let mut rng = Rng(seed);
    let pages: Vec<Vec<u8>> = (0..SYNTHETIC_PAGES).map(|_| make(&mut rng)).collect();
    let streams = pages
        .iter()
        .map(|p| {
            let mut s = Vec::new();
            compress(p, &mut s);
            s
        })
        .collect();
    Set {
        name,
        pages,
        streams,
    }
}

fn sets() -> Vec<Set> {
    let sample = Set {
        name: "sample",
        pages: Vec::new(),
        streams: sample::compressed_pages()
            .into_iter()
            .map(|p| p.data)
            .collect(),
    };
    // Hyper-V stores a page whose stream would not be shorter than the page
    // as is: such streams never reach the decoder.
    let ovmf = Set {
        name: "ovmf",
        pages: Vec::new(),
        streams: ovmf::streams()
            .into_iter()
            .filter(|s| s.len() < PAGE_SIZE)
            .collect(),
    };
    vec![
        sample,
        ovmf,
        synthetic("text", 0x1234_5678, text_page),
        synthetic("structured", 0x9ABC_DEF0, structured_page),
        synthetic("sparse", 0x0F0F_0F0F, sparse_page),
    ]
}

fn configure(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_millis(800));
    g.sample_size(20);
}

fn decode(c: &mut Criterion) {
    for set in sets() {
        let mut g = c.benchmark_group(format!("decode/{}", set.name));
        configure(&mut g);
        g.throughput(Throughput::Bytes((set.streams.len() * PAGE_SIZE) as u64));
        let mut page = [0u8; PAGE_SIZE];
        g.bench_function("vm2dmp_xpress", |b| {
            b.iter(|| {
                for s in &set.streams {
                    decompress_page(black_box(s), &mut page).unwrap();
                    black_box(&page);
                }
            })
        });
        g.bench_function("xpress_rs", |b| {
            b.iter(|| {
                for s in &set.streams {
                    let v = LZ77Decompressor::new(black_box(s).clone())
                        .decompress()
                        .unwrap();
                    assert_eq!(v.len(), PAGE_SIZE);
                    black_box(v);
                }
            })
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    for set in sets() {
        let pages = if set.pages.is_empty() {
            // The real sets' pages, decoded.
            set.streams
                .iter()
                .map(|s| {
                    let mut p = [0u8; PAGE_SIZE];
                    decompress_page(s, &mut p).unwrap();
                    p.to_vec()
                })
                .collect()
        } else {
            set.pages
        };
        let mut g = c.benchmark_group(format!("encode/{}", set.name));
        configure(&mut g);
        // xpress_rs encodes at some tens of MB/s: keep its share short.
        g.sample_size(10);
        g.sampling_mode(SamplingMode::Flat);
        g.throughput(Throughput::Bytes((pages.len() * PAGE_SIZE) as u64));
        let mut out = Vec::with_capacity(2 * PAGE_SIZE);
        g.bench_function("vm2dmp_xpress", |b| {
            b.iter(|| {
                for p in &pages {
                    out.clear();
                    compress(black_box(p), &mut out);
                    black_box(&out);
                }
            })
        });
        g.bench_function("xpress_rs", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(
                        LZ77Compressor::new(black_box(p).clone())
                            .compress()
                            .unwrap(),
                    );
                }
            })
        });
        g.finish();
    }
}

/// Decode throughput of both decoders measured alternately, keeping the
/// best of many rounds: on a machine shared with other work, the best round
/// is the least disturbed one, and alternating exposes both decoders to the
/// same conditions. Printed as a table after the criterion results.
fn interleaved_summary(_: &mut Criterion) {
    const ROUNDS: usize = 150;
    println!();
    println!("page sets:");
    println!(
        "{:<12} {:>6} {:>12} {:>12} {:>7}",
        "set", "pages", "stream mean", "stream max", "ratio"
    );
    for set in sets() {
        let total: usize = set.streams.iter().map(Vec::len).sum();
        let max = set.streams.iter().map(Vec::len).max().unwrap_or(0);
        println!(
            "{:<12} {:>6} {:>12} {:>12} {:>6.2}x",
            set.name,
            set.streams.len(),
            total / set.streams.len(),
            max,
            (set.streams.len() * PAGE_SIZE) as f64 / total as f64
        );
    }
    println!();
    println!("interleaved best of {ROUNDS} rounds, decode, single thread:");
    println!(
        "{:<12} {:>16} {:>18} {:>7}",
        "set", "vm2dmp_xpress", "xpress_rs", "ratio"
    );
    for set in sets() {
        let bytes = (set.streams.len() * PAGE_SIZE) as f64;
        let mut page = [0u8; PAGE_SIZE];
        let (mut ours, mut theirs) = (f64::MAX, f64::MAX);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for s in &set.streams {
                decompress_page(black_box(s), &mut page).unwrap();
                black_box(&page);
            }
            ours = ours.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for s in &set.streams {
                black_box(
                    LZ77Decompressor::new(black_box(s).clone())
                        .decompress()
                        .unwrap(),
                );
            }
            theirs = theirs.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{:<12} {:>11.2} GB/s {:>13.0} MB/s {:>6.1}x",
            set.name,
            bytes / ours / 1e9,
            bytes / theirs / 1e6,
            theirs / ours
        );
    }
}

criterion_group! {
    name = benches;
    // No plots and fewer bootstrap resamples: keeps the whole run short.
    config = Criterion::default().without_plots().nresamples(10_000);
    targets = decode, encode, interleaved_summary
}
criterion_main!(benches);
