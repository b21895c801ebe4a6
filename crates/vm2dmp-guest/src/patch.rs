//! Pages of guest memory as the dump stores them: the decoded `KDBG`, `KdpDataBlockEncoded`
//! cleared, and each vCPU's registers in its KPRCB (docs/windows-crash-dump.md §6.4). The
//! saved state itself is never changed.

use vm2dmp_kdump::CpuContext;

use super::info::KernelInfo;
use super::kdbg::offsets as ko;
use super::translate::SourceMem;
use super::translate::{translate, CachedMem, Dtb, PhysMem};
use vm2dmp_source::{CpuState, MemorySource};

/// Whole replacement pages by guest page number, sorted.
#[derive(Default, Clone)]
pub struct PagePatches {
    pages: Vec<(u64, Box<[u8; 4096]>)>,
}

impl std::fmt::Debug for PagePatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pages.iter().map(|(p, _)| p))
            .finish()
    }
}

impl PagePatches {
    /// Patched pages among guest pages `first .. first + count`.
    pub fn in_range(&self, first: u64, count: u64) -> &[(u64, Box<[u8; 4096]>)] {
        let lo = self.pages.partition_point(|(p, _)| *p < first);
        let hi = self
            .pages
            .partition_point(|(p, _)| *p < first.saturating_add(count));
        &self.pages[lo..hi.max(lo)]
    }

    /// Guest page numbers of the patched pages, ascending.
    pub fn pfns(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.iter().map(|(p, _)| *p)
    }

    fn page_mut(&mut self, mem: &dyn PhysMem, pfn: u64) -> Option<&mut [u8; 4096]> {
        let i = match self.pages.binary_search_by_key(&pfn, |(p, _)| *p) {
            Ok(i) => i,
            Err(i) => {
                let mut page = Box::new([0u8; 4096]);
                if !mem.read_phys(pfn.checked_mul(4096)?, &mut page[..]) {
                    return None;
                }
                self.pages.insert(i, (pfn, page));
                i
            }
        };
        Some(&mut self.pages[i].1)
    }

    /// Writes `data` at guest-virtual `va` (all of it or nothing).
    fn write_virt(&mut self, mem: &dyn PhysMem, dtb: Dtb, va: u64, data: &[u8]) -> bool {
        let mut pieces = Vec::new();
        let mut done = 0usize;
        while done < data.len() {
            let addr = va.wrapping_add(done as u64);
            let n = (4096 - (addr & 0xFFF) as usize).min(data.len() - done);
            let Some(t) = translate(mem, dtb, addr) else {
                return false;
            };
            if !mem.is_ram(t.gpa) {
                return false;
            }
            pieces.push((t.gpa, done, n));
            done += n;
        }
        for (gpa, from, n) in pieces {
            let Some(page) = self.page_mut(mem, gpa >> 12) else {
                return false;
            };
            let off = (gpa & 0xFFF) as usize;
            page[off..off + n].copy_from_slice(&data[from..from + n]);
        }
        true
    }
}

/// `KSPECIAL_REGISTERS` prefix of a vCPU: CR0, CR2, CR3, CR4, kernel DR0-3/6/7, GDTR, IDTR,
/// TR, LDTR (and MXCSR on x64).
fn special_registers(vp: &CpuState, x64: bool) -> Vec<u8> {
    if x64 {
        let mut b = vec![0u8; 0x78];
        let q = [
            vp.cr0, vp.cr2, vp.cr3, vp.cr4, vp.dr0, vp.dr1, vp.dr2, vp.dr3, vp.dr6, vp.dr7,
        ];
        for (i, v) in q.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b[0x56..0x58].copy_from_slice(&vp.gdtr.limit.to_le_bytes());
        b[0x58..0x60].copy_from_slice(&vp.gdtr.base.to_le_bytes());
        b[0x66..0x68].copy_from_slice(&vp.idtr.limit.to_le_bytes());
        b[0x68..0x70].copy_from_slice(&vp.idtr.base.to_le_bytes());
        b[0x70..0x72].copy_from_slice(&vp.tr.selector.to_le_bytes());
        b[0x72..0x74].copy_from_slice(&vp.ldtr.selector.to_le_bytes());
        let mxcsr = vp.fp.map_or(0x1F80, |f| f.mxcsr);
        b[0x74..0x78].copy_from_slice(&mxcsr.to_le_bytes());
        b
    } else {
        let mut b = vec![0u8; 0x3C];
        let d = [
            vp.cr0, vp.cr2, vp.cr3, vp.cr4, vp.dr0, vp.dr1, vp.dr2, vp.dr3, vp.dr6, vp.dr7,
        ];
        for (i, v) in d.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&(*v as u32).to_le_bytes());
        }
        b[0x2A..0x2C].copy_from_slice(&vp.gdtr.limit.to_le_bytes());
        b[0x2C..0x30].copy_from_slice(&(vp.gdtr.base as u32).to_le_bytes());
        b[0x32..0x34].copy_from_slice(&vp.idtr.limit.to_le_bytes());
        b[0x34..0x38].copy_from_slice(&(vp.idtr.base as u32).to_le_bytes());
        b[0x38..0x3A].copy_from_slice(&vp.tr.selector.to_le_bytes());
        b[0x3A..0x3C].copy_from_slice(&vp.ldtr.selector.to_le_bytes());
        b
    }
}

/// The pages to store patched, and notes on what could not be written.
pub(crate) fn build_patches(
    state: &dyn MemorySource,
    info: &KernelInfo,
    context: &dyn Fn(&CpuState) -> CpuContext,
) -> (PagePatches, Vec<String>) {
    let mut patches = PagePatches::default();
    let mut notes = Vec::new();
    let (Some(dtb), Some(kdbg), Some(kd_va)) = (
        info.dtb,
        info.kdbg.as_ref(),
        info.kd_debugger_data_block.value,
    ) else {
        return (patches, notes);
    };
    let src = SourceMem(state);
    let mem = CachedMem::new(&src);
    let x64 = !kdbg.x86;
    if let Some(keys) = info.kdbg_keys {
        if !patches.write_virt(&mem, dtb, kd_va, &kdbg.bytes) {
            notes.push(format!(
                "the decoded KdDebuggerDataBlock could not be placed at {kd_va:#x}"
            ));
        }
        if !patches.write_virt(&mem, dtb, keys.kdp_data_block_encoded, &[0]) {
            notes.push("KdpDataBlockEncoded could not be cleared in the dump".into());
        }
    }
    let size = kdbg.size().unwrap_or(0) as usize;
    let field = |off: usize| -> u64 {
        if off + 2 <= size {
            kdbg.u16(off).map_or(0, u64::from)
        } else {
            0
        }
    };
    let off_ctx_ptr = field(ko::OFFSET_PRCB_CONTEXT);
    let off_state_ctx = field(ko::OFFSET_PRCB_PROC_STATE_CONTEXT);
    let off_special = field(ko::OFFSET_PRCB_PROC_STATE_SPECIAL_REG);
    let ptr_size = dtb.paging.pointer_size();
    let mut missing = Vec::new();
    // Without processor state of its own, the source's registers are the ones in the KPRCBs:
    // nothing to store there.
    let prcbs = if state.machine().processors_from_kernel {
        &[][..]
    } else {
        &info.prcbs[..]
    };
    for (n, &prcb) in prcbs.iter().enumerate() {
        let Some(vp) = state.vcpus().iter().find(|v| v.index as usize == n) else {
            missing.push(n);
            continue;
        };
        let ctx = context(vp);
        let bytes = if x64 {
            ctx.to_context64().to_bytes()
        } else {
            ctx.to_context32().to_bytes()
        };
        let mut wrote = false;
        if off_ctx_ptr != 0 {
            let mut p = [0u8; 8];
            let ptr = super::translate::read_virt(
                &mem,
                dtb,
                prcb.wrapping_add(off_ctx_ptr),
                &mut p[..ptr_size],
            )
            .ok()
            .map(|_| u64::from_le_bytes(p))
            .filter(|&v| v != 0 && dtb.paging.is_kernel_address(v));
            if let Some(ctx_va) = ptr {
                wrote |= patches.write_virt(&mem, dtb, ctx_va, &bytes);
            }
        }
        if off_state_ctx != 0 {
            wrote |= patches.write_virt(&mem, dtb, prcb.wrapping_add(off_state_ctx), &bytes);
        }
        if off_special != 0 {
            let sr = special_registers(vp, x64);
            patches.write_virt(&mem, dtb, prcb.wrapping_add(off_special), &sr);
        }
        if !wrote {
            notes.push(format!(
                "processor {n}: no CONTEXT location in its KPRCB ({prcb:#x}) could be written"
            ));
        }
    }
    if !missing.is_empty() {
        notes.push(format!(
            "processors {missing:?} have a KPRCB but no saved vCPU of that index: their registers are not in the dump"
        ));
    }
    (patches, notes)
}
