//! The KPCR of a processor, found from its registers.

use super::pe::Vm;
use vm2dmp_source::CpuState;

/// The KPCR of a vCPU, if its GS base (x64; or the kernel GS base MSR) or FS base (x86)
/// points at one: `(kpcr, idt_base, kd_version_block)`.
pub(crate) fn kpcr_of(vm: &Vm<'_>, vp: &CpuState) -> Option<(u64, u64, u64)> {
    let paging = vm.dtb.paging;
    if paging.pointer_size() == 8 {
        for kpcr in [vp.gs.base, vp.kernel_gs_base().unwrap_or(0)] {
            if !paging.is_kernel_address(kpcr) {
                continue;
            }
            // KPCR.Self at +0x18, CurrentPrcb at +0x20 (= KPCR + 0x180), IdtBase at +0x38.
            if vm.u64(kpcr.wrapping_add(0x18)) == Some(kpcr)
                && vm.u64(kpcr.wrapping_add(0x20)) == Some(kpcr.wrapping_add(0x180))
            {
                return Some((kpcr, vm.u64(kpcr.wrapping_add(0x38)).unwrap_or(0), 0));
            }
        }
        None
    } else {
        let kpcr = vp.fs.base & 0xFFFF_FFFF;
        // KPCR.SelfPcr at +0x1C, Prcb at +0x20 (= KPCR + 0x120), KdVersionBlock +0x34, IDT +0x38.
        (paging.is_kernel_address(kpcr)
            && vm.u32(kpcr.wrapping_add(0x1C)) == Some(kpcr as u32)
            && vm.u32(kpcr.wrapping_add(0x20)) == Some((kpcr as u32).wrapping_add(0x120)))
        .then(|| {
            (
                kpcr,
                u64::from(vm.u32(kpcr.wrapping_add(0x38)).unwrap_or(0)),
                u64::from(vm.u32(kpcr.wrapping_add(0x34)).unwrap_or(0)),
            )
        })
    }
}
