//! PDB files given with `--symbols`: the `pdb` crate's parsing as the library drives it
//! (information stream, DBI age, address map, global symbols).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vm2dmp::guest::fuzzing::parse_pdb(data);
});
