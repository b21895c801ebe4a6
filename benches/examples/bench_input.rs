//! Writes one benchmark input: `cargo run --release -p vm2dmp-benches --example bench_input -- GIB KIND OUT.vmrs`
//! with KIND one of raw, mixed, compressed, mostly-zero, realistic.
use vm2dmp_benches::{write_input, Content};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (Some(gib), Some(kind), Some(out)) =
        (a.get(1).and_then(|g| g.parse().ok()), a.get(2), a.get(3))
    else {
        eprintln!("usage: bench_input GIB raw|mixed|compressed|mostly-zero|realistic OUT.vmrs");
        std::process::exit(2);
    };
    if kind == "realistic" {
        let vm = vm2dmp_benches::realistic_guest(gib).expect("OVMF corpus");
        vm2dmp_synth::write_vmrs(&vm, std::path::Path::new(out)).expect("write input");
        return;
    }
    let content = match kind.as_str() {
        "raw" => Content::RawBlocks,
        "mixed" => Content::Mixed,
        "compressed" => Content::Compressed,
        "mostly-zero" => Content::MostlyZero,
        _ => {
            eprintln!("unknown kind {kind}");
            std::process::exit(2);
        }
    };
    write_input(gib, content, std::path::Path::new(out)).expect("write input");
}
