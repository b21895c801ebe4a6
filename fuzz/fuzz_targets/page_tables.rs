//! Guest page-table walks (the kernel discovery of `convert` reads guest memory through them).
//!
//! Input: a mode byte (paging mode in bits 0-1), u64 CR3, u64 virtual address, then guest
//! memory from physical address 0 (what the input does not cover is a hole).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm2dmp::{guest::translate::check_dtb, guest::translate::read_virt, guest::translate::translate, guest::translate::Dtb, guest::translate::Paging, guest::translate::PhysMem};

struct Image<'a>(&'a [u8]);

impl PhysMem for Image<'_> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let Some(src) = usize::try_from(gpa)
            .ok()
            .and_then(|s| self.0.get(s..s.checked_add(buf.len())?))
        else {
            return false;
        };
        buf.copy_from_slice(src);
        true
    }
    fn is_ram(&self, gpa: u64) -> bool {
        gpa < self.0.len() as u64
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((cr3, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((va, mem)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let paging = [Paging::Bit32, Paging::Pae, Paging::Long4, Paging::Long5][usize::from(mode & 3)];
    let dtb = Dtb::new(paging, u64::from_le_bytes(*cr3));
    let va = u64::from_le_bytes(*va);
    let mem = Image(mem);
    for v in [va, va.wrapping_add(0xFF8), paging.shared_user_data()] {
        if let Some(t) = translate(&mem, dtb, v) {
            assert!(t.page_size.is_power_of_two() && t.page_size >= 4096);
            assert_eq!(t.gpa & 0xFFF, v & 0xFFF, "the page offset is kept");
        }
    }
    let mut buf = [0u8; 64];
    let _ = read_virt(&mem, dtb, va.wrapping_add(0xFE0), &mut buf);
    let _ = paging.is_kernel_address(va);
    let c = check_dtb(&mem, dtb);
    assert_eq!(c.valid, c.reason.is_empty());
});
