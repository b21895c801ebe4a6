//! Token-stream decoding throughput, single thread: one RAM block (1 MiB of output) of each
//! kind decoded with `SavedState::decode_block`. Compressed-page decoding itself is measured
//! against xpress_rs in `crates/vm2dmp-xpress/benches/xpress.rs`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vm2dmp::{hyperv::BLOCK_SIZE, SavedState};
use vm2dmp_benches::{guest, Content};
use vm2dmp_synth::{write_vmrs, SynthRange};

fn bench(c: &mut Criterion) {
    let dir = tempfile_dir();
    let mut g = c.benchmark_group("decode_block");
    g.throughput(Throughput::Bytes(BLOCK_SIZE as u64));
    g.sample_size(30);
    g.measurement_time(std::time::Duration::from_secs(3));
    for content in [
        Content::RawBlocks,
        Content::Mixed,
        Content::Compressed,
        Content::MostlyZero,
    ] {
        let mut vm = guest(1, content);
        vm.ranges = vec![SynthRange {
            gpa_page_start: 0,
            page_count: 16 * 256,
        }];
        if content == Content::MostlyZero {
            // Past the non-zero first GiB: blocks of zero-fill tokens.
            vm.ranges[0].gpa_page_start = 1 << 19;
        }
        let path = dir.join(format!("{}.vmrs", content.name().replace(' ', "-")));
        write_vmrs(&vm, &path).expect("write input");
        let state = SavedState::open(&path).expect("open input");
        let mut out = vec![0u8; BLOCK_SIZE];
        let mut n = 0usize;
        g.bench_function(content.name(), |b| {
            b.iter(|| {
                state.decode_block(n % 16, &mut out).expect("decode");
                n += 1;
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vm2dmp-bench-blocks-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp folder");
    d
}

criterion_group!(benches, bench);
criterion_main!(benches);
