//! Packs raw 4 KiB pages into the page-corpus format of `testdata/ovmf-pages`:
//! for each page, its stream from this crate's encoder as a 32-bit
//! little-endian length followed by the stream.
//!
//! `cargo run --release -p vm2dmp-xpress --example pack_pages -- RAW OUT`
//! (`RAW` is a whole number of pages; used by `scripts/capture-ovmf-pages.sh`).

use std::process::ExitCode;

use vm2dmp_xpress::{compress, decompress_page, PAGE_SIZE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [raw, out] = args.as_slice() else {
        eprintln!("usage: pack_pages RAW OUT");
        return ExitCode::FAILURE;
    };
    let input = match std::fs::read(raw) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{raw}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if input.is_empty() || input.len() % PAGE_SIZE != 0 {
        eprintln!("{raw}: {} bytes, not a whole number of pages", input.len());
        return ExitCode::FAILURE;
    }
    let mut packed = Vec::new();
    let mut stream = Vec::new();
    let mut check = [0u8; PAGE_SIZE];
    for page in input.chunks_exact(PAGE_SIZE) {
        stream.clear();
        compress(page, &mut stream);
        // Every stream is checked before it is stored.
        if decompress_page(&stream, &mut check).is_err() || check[..] != *page {
            eprintln!("round trip failed");
            return ExitCode::FAILURE;
        }
        let len = u32::try_from(stream.len()).expect("a page stream is small");
        packed.extend_from_slice(&len.to_le_bytes());
        packed.extend_from_slice(&stream);
    }
    if let Err(e) = std::fs::write(out, &packed) {
        eprintln!("{out}: {e}");
        return ExitCode::FAILURE;
    }
    let pages = input.len() / PAGE_SIZE;
    println!(
        "{pages} pages, {} bytes packed ({} bytes of streams, mean {})",
        packed.len(),
        packed.len() - 4 * pages,
        (packed.len() - 4 * pages) / pages
    );
    ExitCode::SUCCESS
}
