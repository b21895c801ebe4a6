//! Opens a `.vsv` + `.bin` pair held in memory. Input: u32 (little-endian) length of the
//! `.vsv` image, the `.vsv` image, then the `.bin` image (the split is clamped to the input).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let split = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (vsv, bin) = rest.split_at(split);
    if let Ok(state) =
        vm2dmp::SavedState::from_bytes(Path::new("fuzz.vsv"), vsv.to_vec(), Some(bin.to_vec()))
    {
        vm2dmp_fuzz::exercise(&state);
    }
});
