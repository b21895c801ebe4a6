//! Finding the kernel image in an address space: from the processors' interrupt handlers
//! (walking down to the image headers), from their KPCRs, or by a scan of kernel space for a
//! PE whose export name is the kernel's.

use std::cell::Cell;

use super::kpcr::kpcr_of;
use super::pe::{PeImage, Vm};
use super::translate::{walk_mapped, CachedMem, Dtb, Paging};
use vm2dmp_source::CpuState;

/// Export names of the Windows kernel (uniprocessor, multiprocessor, PAE variants).
pub(crate) const KERNEL_NAMES: [&str; 4] = [
    "ntoskrnl.exe",
    "ntkrnlmp.exe",
    "ntkrnlpa.exe",
    "ntkrpamp.exe",
];

/// How far below an interrupt handler the image headers may be.
const MAX_WALK_DOWN: u64 = 32 << 20;
/// Page-table entries, and pages, one scan of kernel space looks at, at most (2 GiB of pages).
const SCAN_PAGES_MAX: u64 = 1 << 19;
/// ... and at least, however small the guest (4 MiB of pages).
const SCAN_PAGES_MIN: u64 = 1 << 10;
/// Full scans all of one discovery's address spaces may take together.
const SCANS_PER_DISCOVERY: u64 = 4;

fn is_kernel_name(name: &str) -> bool {
    KERNEL_NAMES.iter().any(|k| k.eq_ignore_ascii_case(name))
}

fn is_kernel(img: &PeImage) -> bool {
    img.export_name.as_deref().is_some_and(is_kernel_name)
}

/// Interrupt handler addresses of the IDT at `idt` (vectors 0..0x30).
fn idt_handlers(vm: &Vm<'_>, idt: u64) -> Vec<u64> {
    let paging = vm.dtb.paging;
    let mut out = Vec::new();
    if !paging.is_kernel_address(idt) {
        return out;
    }
    let wide = paging.pointer_size() == 8;
    let size = if wide { 16 } else { 8 };
    for v in 0..0x30u64 {
        let mut g = [0u8; 16];
        if !vm.read(idt.wrapping_add(v * size), &mut g[..size as usize]) {
            continue;
        }
        if g[5] & 0x80 == 0 {
            continue; // not present
        }
        let lo = u64::from(u16::from_le_bytes([g[0], g[1]]));
        let mid = u64::from(u16::from_le_bytes([g[6], g[7]]));
        let h = if wide {
            lo | (mid << 16) | (u64::from(u32::from_le_bytes([g[8], g[9], g[10], g[11]])) << 32)
        } else {
            lo | (mid << 16)
        };
        if paging.is_kernel_address(h) && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// Page steps all walk-downs of one discovery may take together (8 full 32 MiB walks): guest
/// IDTs can point every handler of every vCPU at pages that hold no image.
const WALK_BUDGET_PAGES: u64 = 8 * MAX_WALK_DOWN / 4096;
/// ... and at least, however small the guest (a walk of 4 MiB).
const WALK_BUDGET_MIN: u64 = 1 << 10;

/// How much of a guest's address spaces one kernel discovery may look at: every address
/// space it tries (each processor's CR3, roots found in RAM) draws from the same budget, so
/// hostile page tables (every entry mapping the same large page, the same IDT handler on
/// every processor) cost a bounded time.
pub(crate) struct SearchBudget {
    /// Page steps left for walks down from interrupt handlers: eight times the guest's RAM
    /// in pages, within [`WALK_BUDGET_MIN`, `WALK_BUDGET_PAGES`] (a guest of 32 MiB or more
    /// gets the most).
    walk_down: Cell<u64>,
    /// Entries and pages left for scans of kernel space.
    scan: Cell<u64>,
    /// What one scan may take: four times the guest's RAM in pages (kernel space maps each
    /// page of RAM about once: more is aliasing), within [`SCAN_PAGES_MIN`, `SCAN_PAGES_MAX`].
    scan_each: u64,
}

impl SearchBudget {
    /// The budget for a guest of `ram_pages` pages of RAM.
    pub(crate) fn for_ram(ram_pages: u64) -> Self {
        let scan_each = ram_pages
            .saturating_mul(4)
            .clamp(SCAN_PAGES_MIN, SCAN_PAGES_MAX);
        Self {
            walk_down: Cell::new(
                ram_pages
                    .saturating_mul(8)
                    .clamp(WALK_BUDGET_MIN, WALK_BUDGET_PAGES),
            ),
            scan: Cell::new(scan_each * SCANS_PER_DISCOVERY),
            scan_each,
        }
    }
}

/// Walks down from `addr` page by page to the headers of the image holding it.
fn image_below(vm: &Vm<'_>, addr: u64, budget: &SearchBudget) -> Option<PeImage> {
    let mut page = addr & !0xFFF;
    for _ in 0..MAX_WALK_DOWN / 4096 {
        let left = budget.walk_down.get().checked_sub(1)?;
        budget.walk_down.set(left);
        if vm.u16(page) == Some(0x5A4D) {
            if let Some(img) = PeImage::parse(vm, page) {
                if img.contains(addr) || is_kernel(&img) {
                    return Some(img);
                }
            }
        }
        page = page.checked_sub(4096)?;
        if !vm.dtb.paging.is_kernel_address(page) {
            return None;
        }
    }
    None
}

/// Finds the kernel image through `dtb`: IDT handlers, then KPCR, then a scan of kernel space.
pub(crate) fn find_kernel_image(
    mem: &CachedMem<'_>,
    dtb: Dtb,
    vps: &[&CpuState],
    budget: &SearchBudget,
) -> Option<(PeImage, String)> {
    let vm = Vm { mem, dtb };
    let mut seen = Vec::new();
    // Pages a walk-down already started from (vCPUs usually share one IDT).
    let mut walked = std::collections::HashSet::new();
    let mut try_handlers = |handlers: Vec<u64>, what: &str| -> Option<(PeImage, String)> {
        for h in handlers {
            if seen.iter().any(|img: &PeImage| img.contains(h)) || !walked.insert(h & !0xFFF) {
                continue;
            }
            if let Some(img) = image_below(&vm, h, budget) {
                if is_kernel(&img) {
                    return Some((img, format!("{what}: handler {h:#x} lies in the image")));
                }
                seen.push(img);
            }
        }
        None
    };
    for vp in vps {
        let handlers = idt_handlers(&vm, vp.idtr.base);
        if let Some(r) = try_handlers(
            handlers,
            &format!("IDT of VP {} (IDTR {:#x})", vp.index, vp.idtr.base),
        ) {
            return Some(r);
        }
    }
    for vp in vps {
        if let Some((kpcr, idt, kvb)) = kpcr_of(&vm, vp) {
            let reg = if dtb.paging.pointer_size() == 8 {
                "GS"
            } else {
                "FS"
            };
            if let Some(r) = try_handlers(
                idt_handlers(&vm, idt),
                &format!(
                    "KPCR {kpcr:#x} of VP {} ({reg} base) -> IdtBase {idt:#x}",
                    vp.index
                ),
            ) {
                return Some(r);
            }
            // DBGKD_GET_VERSION64.KernBase at +0x10.
            if kvb != 0 {
                if let Some(base) = vm.u64(kvb.wrapping_add(0x10)).map(|b| b & 0xFFFF_FFFF) {
                    if let Some(img) = PeImage::parse(&vm, base).filter(is_kernel) {
                        return Some((
                            img,
                            format!(
                                "KPCR {kpcr:#x} of VP {} -> KdVersionBlock.KernBase",
                                vp.index
                            ),
                        ));
                    }
                }
            }
        }
    }
    scan_kernel_space(mem, dtb, budget).map(|img| {
        let how = format!(
            "scan of kernel space for the kernel's PE headers (found at {:#x})",
            img.base
        );
        (img, how)
    })
}

/// Looks at every mapped page of kernel space for the kernel's PE headers, in ascending
/// order, until the budget of one scan (or what is left of the discovery's) is spent.
fn scan_kernel_space(mem: &CachedMem<'_>, dtb: Dtb, budget: &SearchBudget) -> Option<PeImage> {
    let vm = Vm { mem, dtb };
    let ranges: &[(u64, u64)] = match dtb.paging {
        Paging::Long4 | Paging::Long5 => &[
            (0xFFFF_F800_0000_0000, 0xFFFF_F880_0000_0000),
            (0xFFFF_8000_0000_0000, 0xFFFF_F800_0000_0000),
            (0xFFFF_F880_0000_0000, 0xFFFF_FFFF_FFFF_F000),
        ],
        Paging::Pae | Paging::Bit32 => &[(0x8000_0000, 0xFFFF_F000)],
    };
    let allowed = budget.scan_each.min(budget.scan.get());
    // Table entries and pages: the walk counts the first, the probes below the second.
    let mut entries_left = allowed;
    let mut pages_left = allowed;
    let mut hit = None;
    for &(start, end) in ranges {
        walk_mapped(
            mem,
            dtb,
            start,
            end,
            &mut entries_left,
            &mut |va, gpa, size| {
                for sub in 0..size / 4096 {
                    if pages_left == 0 {
                        return false;
                    }
                    pages_left -= 1;
                    let mut b = [0u8; 2];
                    if !mem.probe(gpa.wrapping_add(sub * 4096), &mut b) || &b != b"MZ" {
                        continue;
                    }
                    if let Some(img) =
                        PeImage::parse(&vm, va.wrapping_add(sub * 4096)).filter(is_kernel)
                    {
                        hit = Some(img);
                        return false;
                    }
                }
                true
            },
        );
        if hit.is_some() || entries_left == 0 || pages_left == 0 {
            break;
        }
    }
    let used = (allowed - entries_left).max(allowed - pages_left);
    budget.scan.set(budget.scan.get() - used);
    hit
}
