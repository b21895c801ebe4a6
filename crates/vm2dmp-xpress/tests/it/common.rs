pub mod ovmf;
pub mod reference;
pub mod sample;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs the `xpress_rs` decoder, turning its panics (it indexes without
/// checks on malformed input) into `None` without printing them.
pub fn xpress_rs_decode(src: &[u8]) -> Option<Vec<u8>> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        xpress_rs::lz77::LZ77Decompressor::new(src.to_vec()).decompress()
    }));
    QUIET.with(|q| q.set(false));
    match r {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

/// Compresses with this crate's encoder.
pub fn ours_compress(input: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    vm2dmp_xpress::compress(input, &mut v);
    v
}
