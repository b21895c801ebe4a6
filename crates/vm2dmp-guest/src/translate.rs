//! Guest-virtual to guest-physical translation: x64 4- and 5-level paging, PAE and 32-bit
//! paging, with large pages; checks that a page-table root maps kernel space, and a scan of
//! guest RAM for page-table roots that do.
//!
//! Every entry is read from guest memory and treated as hostile: translations that leave RAM
//! fail, loops are bounded by the architecture's table sizes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use vm2dmp_source::{CpuState, MemorySource, PagingMode};

/// Guest-physical memory as the translation code reads it.
pub trait PhysMem {
    /// Fills `buf` from guest-physical `gpa`; false if any byte is outside RAM or unreadable.
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Whether guest-physical `gpa` is in RAM.
    fn is_ram(&self, gpa: u64) -> bool;
}

/// Any [`MemorySource`] read as [`PhysMem`].
#[derive(Clone, Copy)]
pub struct SourceMem<'a>(pub &'a dyn MemorySource);

impl PhysMem for SourceMem<'_> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.0.read_phys(gpa, buf).is_ok()
    }
    fn is_ram(&self, gpa: u64) -> bool {
        self.0.range_of(gpa >> 12).is_some()
    }
}

/// Reads through a cache of whole pages (for the many small reads of kernel discovery).
/// Not `Sync`: used by one thread.
pub(crate) struct CachedMem<'a> {
    inner: &'a dyn PhysMem,
    pages: RefCell<HashMap<u64, CachedPage>>,
    /// The pages last looked up, by page number modulo [`RECENT`]: a translation touches
    /// four or five tables and a page, again and again for neighbouring addresses, and a
    /// look here costs no hashing. A page missing here is looked up in `pages`.
    recent: RefCell<Vec<(u64, CachedPage)>>,
}

/// A page's bytes, or `None` when it is not all in RAM.
type CachedPage = Option<Rc<[u8; 4096]>>;

/// Pages kept before the cache is emptied (64 MiB).
const CACHE_PAGES: usize = 16 * 1024;
/// Slots of [`CachedMem::recent`].
const RECENT: usize = 64;

impl<'a> CachedMem<'a> {
    pub(crate) fn new(inner: &'a dyn PhysMem) -> Self {
        Self {
            inner,
            pages: RefCell::new(HashMap::new()),
            // u64::MAX is no page number (addresses are 64-bit, pages 4 KiB).
            recent: RefCell::new(vec![(u64::MAX, None); RECENT]),
        }
    }

    /// Reads without caching (for one-off probes of many pages).
    pub(crate) fn probe(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.inner.read_phys(gpa, buf)
    }

    fn page(&self, pfn: u64) -> CachedPage {
        let slot = (pfn % RECENT as u64) as usize;
        if let Some((at, p)) = self.recent.borrow().get(slot) {
            if *at == pfn {
                return p.clone();
            }
        }
        let page = self.page_in_map(pfn);
        if let Some(s) = self.recent.borrow_mut().get_mut(slot) {
            *s = (pfn, page.clone());
        }
        page
    }

    fn page_in_map(&self, pfn: u64) -> CachedPage {
        if let Some(p) = self.pages.borrow().get(&pfn) {
            return p.clone();
        }
        let mut buf = [0u8; 4096];
        let page = pfn
            .checked_mul(4096)
            .filter(|&gpa| self.inner.read_phys(gpa, &mut buf))
            .map(|_| Rc::new(buf));
        let mut pages = self.pages.borrow_mut();
        if pages.len() >= CACHE_PAGES {
            pages.clear();
        }
        pages.insert(pfn, page.clone());
        page
    }
}

impl PhysMem for CachedMem<'_> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let Some(addr) = gpa.checked_add(done as u64) else {
                return false;
            };
            let off = (addr & 0xFFF) as usize;
            let n = (4096 - off).min(buf.len() - done);
            match self.page(addr >> 12) {
                Some(p) => buf[done..done + n].copy_from_slice(&p[off..off + n]),
                None => return false,
            }
            done += n;
        }
        true
    }
    fn is_ram(&self, gpa: u64) -> bool {
        self.inner.is_ram(gpa)
    }
}

/// A paging mode of the x86 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Paging {
    /// 32-bit paging: two levels of 1024 four-byte entries, 4 MiB pages (PSE).
    Bit32,
    /// PAE: a 4-entry PDPT and two levels of 512 eight-byte entries, 2 MiB pages.
    Pae,
    /// x64 4-level paging (48-bit addresses), 2 MiB and 1 GiB pages.
    Long4,
    /// x64 5-level paging (57-bit addresses, CR4.LA57).
    Long5,
}

impl Paging {
    /// The mode a vCPU translates with, or `None` when paging is off.
    pub fn of_vcpu(vp: &CpuState) -> Option<Paging> {
        if !vp.paging_enabled() {
            return None;
        }
        Some(match vp.paging_mode() {
            PagingMode::Long if vp.five_level_paging() => Paging::Long5,
            PagingMode::Long => Paging::Long4,
            PagingMode::Pae => Paging::Pae,
            PagingMode::Bit32 => Paging::Bit32,
        })
    }

    /// Pointer size of code running in this mode (8 in long mode, else 4).
    pub fn pointer_size(self) -> usize {
        match self {
            Paging::Long4 | Paging::Long5 => 8,
            Paging::Pae | Paging::Bit32 => 4,
        }
    }

    /// Whether `va` is a kernel-space address (upper half, or above 2 GiB on x86).
    pub fn is_kernel_address(self, va: u64) -> bool {
        match self {
            Paging::Long4 | Paging::Long5 => va >> 63 == 1 && self.is_canonical(va),
            Paging::Pae | Paging::Bit32 => (0x8000_0000..=0xFFFF_FFFF).contains(&va),
        }
    }

    /// Whether `va` is canonical for this mode (x86 modes: a 32-bit address, or one
    /// sign-extended from bit 31 as `KDDEBUGGER_DATA64` stores them).
    pub fn is_canonical(self, va: u64) -> bool {
        match self {
            Paging::Long4 => {
                let top = va >> 47;
                top == 0 || top == 0x1_FFFF
            }
            Paging::Long5 => {
                let top = va >> 56;
                top == 0 || top == 0xFF
            }
            Paging::Pae | Paging::Bit32 => va >> 32 == 0 || va >> 31 == 0x1_FFFF_FFFF,
        }
    }

    /// Address of `KUSER_SHARED_DATA`, mapped in every Windows address space.
    pub fn shared_user_data(self) -> u64 {
        match self {
            Paging::Long4 | Paging::Long5 => 0xFFFF_F780_0000_0000,
            Paging::Pae | Paging::Bit32 => 0xFFDF_0000,
        }
    }
}

/// A page-table root: the paging mode and the physical address of the top-level table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Dtb {
    /// The paging mode the tables are walked with.
    pub paging: Paging,
    /// Physical address of the PML5/PML4, the PAE PDPT or the 32-bit page directory.
    pub root: u64,
}

/// Bits 51:12 of a table entry.
pub(crate) const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
pub(crate) const PRESENT: u64 = 1;
const LARGE: u64 = 1 << 7;
/// Windows software PTE bits of a page in transition (still in RAM, not valid).
const PTE_PROTOTYPE: u64 = 1 << 10;
const PTE_TRANSITION: u64 = 1 << 11;

impl Dtb {
    /// The root in `cr3` for `paging` (PCID and flag bits cleared).
    pub fn new(paging: Paging, cr3: u64) -> Dtb {
        let root = match paging {
            Paging::Long4 | Paging::Long5 => cr3 & ADDR_MASK,
            Paging::Pae => cr3 & 0xFFFF_FFE0,
            Paging::Bit32 => cr3 & 0xFFFF_F000,
        };
        Dtb { paging, root }
    }

    /// The root a vCPU translates with, if it has paging on.
    pub fn of_vcpu(vp: &CpuState) -> Option<Dtb> {
        Paging::of_vcpu(vp).map(|p| Dtb::new(p, vp.cr3))
    }
}

/// Where a virtual address lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Translation {
    /// Guest-physical address of the byte.
    pub gpa: u64,
    /// Size of the page that maps it (4 KiB, 2 or 4 MiB, 1 GiB).
    pub page_size: u64,
}

/// Why a virtual read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VirtError {
    /// The address is not canonical for the paging mode (see [`Paging::is_canonical`]).
    #[error("virtual address {va:#x} is not canonical")]
    NonCanonical {
        /// The virtual address.
        va: u64,
    },
    /// The page tables map no page at the address, or the page they map is not in guest RAM.
    #[error("virtual address {va:#x} is not mapped")]
    NotMapped {
        /// The virtual address (the first unreadable byte of a longer read).
        va: u64,
    },
}

fn entry(mem: &dyn PhysMem, table: u64, index: u64, size: usize) -> Option<u64> {
    let mut b = [0u8; 8];
    let at = table.checked_add(index * size as u64)?;
    if !mem.read_phys(at, &mut b[..size]) {
        return None;
    }
    Some(u64::from_le_bytes(b))
}

/// A leaf PTE (4 KiB page): valid, or in transition (Windows keeps the page in RAM).
fn leaf_frame(pte: u64, mask: u64) -> Option<u64> {
    if pte & PRESENT != 0
        || (pte & PTE_TRANSITION != 0 && pte & PTE_PROTOTYPE == 0 && pte & mask != 0)
    {
        Some(pte & mask)
    } else {
        None
    }
}

/// Translates `va` through `dtb`. `None` when not mapped or when a table is outside RAM.
pub fn translate(mem: &dyn PhysMem, dtb: Dtb, va: u64) -> Option<Translation> {
    if !dtb.paging.is_canonical(va) {
        return None;
    }
    match dtb.paging {
        Paging::Long4 | Paging::Long5 => {
            let mut table = dtb.root;
            let top = if dtb.paging == Paging::Long5 { 48 } else { 39 };
            let mut shift = top;
            loop {
                let e = entry(mem, table, (va >> shift) & 0x1FF, 8)?;
                if shift == 12 {
                    let frame = leaf_frame(e, ADDR_MASK)?;
                    return Some(Translation {
                        gpa: frame | (va & 0xFFF),
                        page_size: 4096,
                    });
                }
                if e & PRESENT == 0 {
                    return None;
                }
                if e & LARGE != 0 && (shift == 30 || shift == 21) {
                    let size = 1u64 << shift;
                    let base = e & ADDR_MASK & !(size - 1);
                    return Some(Translation {
                        gpa: base | (va & (size - 1)),
                        page_size: size,
                    });
                }
                table = e & ADDR_MASK;
                shift -= 9;
            }
        }
        Paging::Pae => {
            let va = va & 0xFFFF_FFFF;
            let pdpte = entry(mem, dtb.root, va >> 30, 8)?;
            if pdpte & PRESENT == 0 {
                return None;
            }
            let pde = entry(mem, pdpte & ADDR_MASK, (va >> 21) & 0x1FF, 8)?;
            if pde & PRESENT == 0 {
                return None;
            }
            if pde & LARGE != 0 {
                return Some(Translation {
                    gpa: (pde & ADDR_MASK & !0x1F_FFFF) | (va & 0x1F_FFFF),
                    page_size: 2 << 20,
                });
            }
            let pte = entry(mem, pde & ADDR_MASK, (va >> 12) & 0x1FF, 8)?;
            let frame = leaf_frame(pte, ADDR_MASK)?;
            Some(Translation {
                gpa: frame | (va & 0xFFF),
                page_size: 4096,
            })
        }
        Paging::Bit32 => {
            let va = va & 0xFFFF_FFFF;
            let pde = entry(mem, dtb.root, va >> 22, 4)?;
            if pde & PRESENT == 0 {
                return None;
            }
            if pde & LARGE != 0 {
                // PSE-36: bits 20:13 of the entry are physical-address bits 39:32.
                let base = (pde & 0xFFC0_0000) | (((pde >> 13) & 0xFF) << 32);
                return Some(Translation {
                    gpa: base | (va & 0x3F_FFFF),
                    page_size: 4 << 20,
                });
            }
            let pte = entry(mem, pde & 0xFFFF_F000, (va >> 12) & 0x3FF, 4)?;
            let frame = leaf_frame(pte, 0xFFFF_F000)?;
            Some(Translation {
                gpa: frame | (va & 0xFFF),
                page_size: 4096,
            })
        }
    }
}

/// Reads virtual memory through `dtb`, page by page.
pub fn read_virt(mem: &dyn PhysMem, dtb: Dtb, va: u64, buf: &mut [u8]) -> Result<(), VirtError> {
    if !dtb.paging.is_canonical(va) {
        return Err(VirtError::NonCanonical { va });
    }
    let mut done = 0usize;
    while done < buf.len() {
        let addr = va.wrapping_add(done as u64);
        let n = (4096 - (addr & 0xFFF) as usize).min(buf.len() - done);
        let t = translate(mem, dtb, addr).ok_or(VirtError::NotMapped { va: addr })?;
        if !mem.read_phys(t.gpa, &mut buf[done..done + n]) {
            return Err(VirtError::NotMapped { va: addr });
        }
        done += n;
    }
    Ok(())
}

/// What walking a candidate page-table root found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DtbCheck {
    /// The root checked.
    pub dtb: Dtb,
    /// The root maps kernel space the way a Windows kernel address space does.
    pub valid: bool,
    /// Present entries in the top-level table.
    pub present_entries: u32,
    /// Present top-level entries covering kernel space.
    pub kernel_entries: u32,
    /// Index of a top-level entry that points back at the table itself (the self-map
    /// Windows uses to reach its page tables), if any.
    pub self_map: Option<u32>,
    /// `KUSER_SHARED_DATA` is mapped.
    pub maps_shared_user_data: bool,
    /// Why the root was rejected (empty when valid).
    pub reason: String,
}

/// Walks the top-level table of `dtb`: every present entry must point into RAM, some must
/// cover kernel space, and `KUSER_SHARED_DATA` must translate.
pub fn check_dtb(mem: &dyn PhysMem, dtb: Dtb) -> DtbCheck {
    let mut c = DtbCheck {
        dtb,
        valid: false,
        present_entries: 0,
        kernel_entries: 0,
        self_map: None,
        maps_shared_user_data: false,
        reason: String::new(),
    };
    if !mem.is_ram(dtb.root) {
        c.reason = format!("root {:#x} is not in guest RAM", dtb.root);
        return c;
    }
    let (count, size, kernel_from, mask): (u64, usize, u64, u64) = match dtb.paging {
        Paging::Long4 | Paging::Long5 => (512, 8, 256, ADDR_MASK),
        Paging::Pae => (4, 8, 2, ADDR_MASK),
        Paging::Bit32 => (1024, 4, 512, 0xFFFF_F000),
    };
    let mut bad = None;
    for i in 0..count {
        let Some(e) = entry(mem, dtb.root, i, size) else {
            c.reason = format!("root {:#x} cannot be read", dtb.root);
            return c;
        };
        if e & PRESENT == 0 {
            continue;
        }
        c.present_entries += 1;
        if i >= kernel_from {
            c.kernel_entries += 1;
        }
        let large_leaf = dtb.paging == Paging::Bit32 && e & LARGE != 0;
        if !large_leaf && !mem.is_ram(e & mask) {
            bad.get_or_insert(i);
        }
        if dtb.paging == Paging::Pae && e & 0x1E6 != 0 {
            // Bits 1, 2, 5-8 of a PDPTE are reserved.
            bad.get_or_insert(i);
        }
        if e & mask == dtb.root & mask && i >= kernel_from && dtb.paging != Paging::Pae {
            c.self_map.get_or_insert(i as u32);
        }
    }
    if dtb.paging == Paging::Pae {
        c.self_map = pae_self_map(mem, dtb.root).then_some(0x600);
    }
    c.maps_shared_user_data = translate(mem, dtb, dtb.paging.shared_user_data()).is_some();
    c.reason = if let Some(i) = bad {
        format!("top-level entry {i} points outside guest RAM or has reserved bits set")
    } else if c.kernel_entries == 0 {
        "no top-level entry covers kernel space".into()
    } else if !c.maps_shared_user_data {
        format!(
            "KUSER_SHARED_DATA ({:#x}) is not mapped",
            dtb.paging.shared_user_data()
        )
    } else {
        String::new()
    };
    c.valid = c.reason.is_empty();
    c
}

/// PAE self-map: the page directory for 0xC0000000.. maps the four page directories at its
/// entries 0..3 (page tables at 0xC0000000, page directories at 0xC0600000).
pub(crate) fn pae_self_map(mem: &dyn PhysMem, pdpt: u64) -> bool {
    let mut e = [0u64; 4];
    for (i, slot) in e.iter_mut().enumerate() {
        match entry(mem, pdpt, i as u64, 8) {
            Some(v) if v & PRESENT != 0 => *slot = v & ADDR_MASK,
            _ => return false,
        }
    }
    (0..4).all(|i| {
        entry(mem, e[3], i, 8).is_some_and(|v| v & PRESENT != 0 && v & ADDR_MASK == e[i as usize])
    })
}

/// Calls `visit(va, gpa_of_page, page_size)` for every mapped page (or large page) in
/// `[start, end)` of `dtb`, in ascending order, until it returns false or `budget` tables
/// and pages have been visited.
pub(crate) fn walk_mapped(
    mem: &dyn PhysMem,
    dtb: Dtb,
    start: u64,
    end: u64,
    budget: &mut u64,
    visit: &mut dyn FnMut(u64, u64, u64) -> bool,
) {
    fn sign_extend(va: u64, bits: u32) -> u64 {
        let shift = 64 - bits;
        (((va << shift) as i64) >> shift) as u64
    }
    struct Ctx<'a> {
        mem: &'a dyn PhysMem,
        start: u64,
        end: u64,
        entry_size: usize,
        mask: u64,
        va_bits: u32,
        large_ok: fn(u32) -> bool,
    }
    #[allow(clippy::too_many_arguments)]
    fn walk(
        c: &Ctx<'_>,
        table: u64,
        shift: u32,
        index_bits: u32,
        base: u64,
        budget: &mut u64,
        visit: &mut dyn FnMut(u64, u64, u64) -> bool,
        leaf: bool,
    ) -> bool {
        let count = 1u64 << index_bits;
        let span = 1u64 << shift;
        for i in 0..count {
            if *budget == 0 {
                return false;
            }
            let va = sign_extend(base + i * span, c.va_bits);
            let va_end = va.wrapping_add(span);
            if va_end <= c.start && va_end != 0 {
                continue;
            }
            if va >= c.end {
                return true;
            }
            *budget -= 1;
            let Some(e) = entry(c.mem, table, i, c.entry_size) else {
                return true;
            };
            if leaf {
                if let Some(frame) = leaf_frame(e, c.mask) {
                    if !visit(va, frame, span) {
                        return false;
                    }
                }
                continue;
            }
            if e & PRESENT == 0 {
                continue;
            }
            if e & LARGE != 0 && (c.large_ok)(shift) {
                let frame = if c.entry_size == 4 {
                    (e & 0xFFC0_0000) | (((e >> 13) & 0xFF) << 32)
                } else {
                    e & c.mask & !(span - 1)
                };
                if !visit(va, frame, span) {
                    return false;
                }
                continue;
            }
            let next_bits = if c.entry_size == 4 { 10 } else { 9 };
            if !walk(
                c,
                e & c.mask,
                shift - next_bits,
                next_bits,
                base + i * span,
                budget,
                visit,
                shift - next_bits == 12,
            ) {
                return false;
            }
        }
        true
    }
    match dtb.paging {
        Paging::Long4 | Paging::Long5 => {
            let (shift, bits) = if dtb.paging == Paging::Long5 {
                (48, 57)
            } else {
                (39, 48)
            };
            let c = Ctx {
                mem,
                start,
                end,
                entry_size: 8,
                mask: ADDR_MASK,
                va_bits: bits,
                large_ok: |s| s == 30 || s == 21,
            };
            walk(&c, dtb.root, shift, 9, 0, budget, visit, false);
        }
        Paging::Pae => {
            let c = Ctx {
                mem,
                start: start & 0xFFFF_FFFF,
                end: end.min(1 << 32),
                entry_size: 8,
                mask: ADDR_MASK,
                va_bits: 64,
                large_ok: |s| s == 21,
            };
            for i in 0..4u64 {
                let base = i << 30;
                if base + (1 << 30) <= c.start || base >= c.end {
                    continue;
                }
                let Some(e) = entry(mem, dtb.root, i, 8) else {
                    return;
                };
                if e & PRESENT == 0 {
                    continue;
                }
                if !walk(&c, e & ADDR_MASK, 21, 9, base, budget, visit, false) {
                    return;
                }
            }
        }
        Paging::Bit32 => {
            let c = Ctx {
                mem,
                start: start & 0xFFFF_FFFF,
                end: end.min(1 << 32),
                entry_size: 4,
                mask: 0xFFFF_F000,
                va_bits: 64,
                large_ok: |s| s == 22,
            };
            walk(&c, dtb.root, 22, 10, 0, budget, visit, false);
        }
    }
}
