//! Guest kernel discovery (page tables, IDT, KPCR, PE headers, exports, version resource,
//! KDBG) over guest memory and registers the input provides, in a 1 MiB x64 or x86 saved
//! state; what is found is converted and the dump verified.
//!
//! Input: see `vm2dmp_fuzz::KernelTemplate::build` (a mode byte, five u64 registers, then guest
//! memory from physical address 0).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vm2dmp_fuzz::KernelTemplate;

static TEMPLATE: OnceLock<KernelTemplate> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let template = TEMPLATE.get_or_init(KernelTemplate::new);
    let Some(bytes) = template.build(data) else {
        return;
    };
    let state = vm2dmp::SavedState::from_bytes(Path::new("kernel.vmrs"), bytes, None)
        .expect("the template opens whatever the registers and memory");
    let k = vm2dmp::guest::find_kernel(&state, None);
    let _ = vm2dmp::guest::dump_patched_pages(&state, None);
    if k.image.is_some() {
        vm2dmp_fuzz::convert_and_verify(&state);
    }
});
