//! How deep a corpus reaches: for `vmrs_open` and `vsv_bin_open` inputs, how many open as a
//! saved state and how many of those convert, and the most common first error.
//!
//! `cargo run --release --example corpus_stats -- vmrs_open corpus/vmrs_open`

use std::collections::BTreeMap;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (target, dir) = (&args[1], Path::new(&args[2]));
    let (mut total, mut opened) = (0usize, 0usize);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("corpus directory").flatten() {
        let data = std::fs::read(e.path()).unwrap();
        total += 1;
        let r = if target == "vmrs_open" {
            let mut b = data.clone();
            if b.len() % 2 == 0 {
                vm2dmp_fuzz_harness::fix_hvs_checksums(&mut b);
            }
            vm2dmp::SavedState::from_bytes(Path::new("fuzz.vmrs"), b, None)
        } else {
            if data.len() < 4 {
                continue;
            }
            let split =
                (u32::from_le_bytes(data[..4].try_into().unwrap()) as usize).min(data.len() - 4);
            let (v, b) = data[4..].split_at(split);
            vm2dmp::SavedState::from_bytes(Path::new("fuzz.vsv"), v.to_vec(), Some(b.to_vec()))
        };
        match r {
            Ok(_) => opened += 1,
            Err(e) => {
                // Group by structure: drop offsets and numbers.
                let msg = e.to_string();
                let key: String = msg
                    .split(": ")
                    .nth(1)
                    .unwrap_or(&msg)
                    .split(" at offset")
                    .next()
                    .unwrap_or("")
                    .to_string();
                *errors.entry(key).or_default() += 1;
            }
        }
    }
    println!("{target}: {opened} of {total} inputs open");
    let mut v: Vec<_> = errors.into_iter().collect();
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (k, n) in v.iter().take(15) {
        println!("{n:6}  {k}");
    }
}
