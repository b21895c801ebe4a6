//! Opens the input as an in-memory `.vmrs` and reads everything it offers, keys included.
//!
//! Inputs of even length get their HVS checksums recomputed first, so that mutations reach
//! the structures behind the CRC-32 fields; odd-length inputs are read exactly as given, which
//! keeps the checksum checks themselves under test.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len().is_multiple_of(2) {
        vm2dmp_fuzz::fix_hvs_checksums(&mut bytes);
    }
    // Every key, as `vm2dmp keys` lists them (also for files without memory).
    let _ = vm2dmp::hyperv::list_keys_from_bytes(Path::new("fuzz.vmrs"), bytes.clone(), false);
    if let Ok(state) = vm2dmp::SavedState::from_bytes(Path::new("fuzz.vmrs"), bytes, None) {
        vm2dmp_fuzz::exercise(&state);
    }
});
