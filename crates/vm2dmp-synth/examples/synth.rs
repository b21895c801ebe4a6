//! Write a synthetic saved state from the command line.
//!
//! ```text
//! cargo run -p vm2dmp-synth --example synth -- vmrs OUT.vmrs [--mib N] [--sample] [--mixed] [--raw] [--content]
//! cargo run -p vm2dmp-synth --example synth -- legacy OUT.vsv OUT.bin [same options]
//! ```

use vm2dmp_synth::{write_vmrs, write_vsv_bin, BlockEncoding, MixedContent, PagePolicy, SynthVm};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: synth vmrs OUT [--mib N] [--sample] [--mixed|--auto|--raw] [--content]");
        eprintln!("       synth legacy OUT.vsv OUT.bin [options]");
        std::process::exit(2);
    }
    let flag = |f: &str| args.iter().any(|a| a == f);
    let mib = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<u64>().expect("--mib N"));
    let mut vm = if flag("--sample") {
        SynthVm::sample_shape()
    } else {
        SynthVm::with_ram_split(mib.unwrap_or(64))
    };
    if flag("--content") {
        vm = vm.with_pages(MixedContent { seed: 1 });
    }
    if flag("--mixed") {
        vm.encoding = BlockEncoding::Tokens(PagePolicy::Mixed);
    } else if flag("--auto") {
        vm.encoding = BlockEncoding::Tokens(PagePolicy::Auto);
    } else if flag("--raw") {
        vm.encoding = BlockEncoding::RawBlock;
    }
    let t = std::time::Instant::now();
    let layout = match args[0].as_str() {
        "vmrs" => write_vmrs(&vm, &args[1]),
        "legacy" => write_vsv_bin(&vm, &args[1], &args[2]),
        other => panic!("unknown kind {other}"),
    }
    .expect("write");
    eprintln!(
        "{} RAM blocks, {} keys, tokens {:?}, {:.2?}",
        layout.ram_blocks.len(),
        layout.keys.len(),
        layout.token_totals,
        t.elapsed()
    );
}
