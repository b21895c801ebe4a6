//! Writes synthetic Windows-like guests as Hyper-V `.vmrs` files for the Python tests of the
//! volatility3 layer's metadata (a kernel vm2dmp finds, so the layer publishes its
//! page-table root), with `truth.json` naming what a reader must find. The guests are those
//! of the library's kernel-discovery tests (crates/vm2dmp/tests/it/guest).
//!
//! Usage: `cargo run -p vm2dmp-python --example make_windows_guests -- OUT_DIR`

use std::path::PathBuf;

#[path = "../../vm2dmp/tests/it/guest/mod.rs"]
mod guest;

fn main() {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/py-windows-guests"));
    std::fs::create_dir_all(&out).expect("output folder");
    let mut entries = Vec::new();
    for (name, clues, paging) in [
        ("win-x64.vmrs", guest::Clues::x64(), "Long4"),
        ("win-pae.vmrs", guest::Clues::x86_pae(), "Pae"),
    ] {
        let (vm, truth) = guest::build(&clues);
        vm2dmp_synth::write_vmrs(&vm, out.join(name)).expect("write guest");
        entries.push(format!(
            "\"{name}\":{{\"paging\":\"{paging}\",\"root\":{},\"system_dtb\":{},\"kernel_base\":{},\"build\":{}}}",
            truth.root, truth.system_dtb, truth.kernel_base, truth.build
        ));
    }
    let manifest = format!("{{{}}}\n", entries.join(","));
    std::fs::write(out.join("truth.json"), manifest).expect("write truth.json");
    println!("{}", out.join("truth.json").display());
}
