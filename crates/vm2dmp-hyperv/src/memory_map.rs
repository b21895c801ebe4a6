//! The memory map: `RamMemoryBlock` keys (guest-physical ranges and where their pages are in
//! the saved RAM), the key names of each file generation, and `guest_crash_msrs`.

use vm2dmp_formats::memory::RamMemoryBlock;
use vm2dmp_source::Result;

use crate::container::ContainerFile;

/// Highest guest page number we accept (52-bit physical addresses).
const MAX_GPA_PAGE: u64 = 1 << 40;

/// Key names used by the file: `/savedstate/...` (VM version above 5.0) or the older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum KeyFlavour {
    /// Keys under `/savedstate/` (`RamMemoryBlock0`, `RamBlock0`, `savedVM/...`): VM versions
    /// above 5.0.
    #[cfg_attr(feature = "serde", serde(rename = "savedstate"))]
    SavedState,
    /// The older names (`RamMemoryBlock/0/`, `RamBlock/0/`, `/savedVM/...`): `.vsv` files, and
    /// HVS files of VM version 5.0 or older.
    #[cfg_attr(feature = "serde", serde(rename = "legacy"))]
    Legacy,
}

impl KeyFlavour {
    pub(crate) fn memory_block(self, n: u64) -> String {
        match self {
            KeyFlavour::SavedState => format!("/savedstate/RamMemoryBlock{n}"),
            KeyFlavour::Legacy => format!("RamMemoryBlock/{n}/"),
        }
    }
    pub(crate) fn ram_block(self, n: u64) -> String {
        match self {
            KeyFlavour::SavedState => format!("/savedstate/RamBlock{n}"),
            KeyFlavour::Legacy => format!("RamBlock/{n}/"),
        }
    }
    pub(crate) fn saved_vm(self, rest: &str) -> String {
        match self {
            KeyFlavour::SavedState => format!("/savedstate/savedVM/{rest}"),
            KeyFlavour::Legacy => format!("/savedVM/{rest}"),
        }
    }
}

/// One contiguous range of guest-physical RAM and where its pages are in the saved RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemoryRange {
    /// First guest-physical page number (GPA >> 12).
    pub gpa_page_start: u64,
    /// Number of 4 KiB pages (at least one).
    pub page_count: u64,
    /// First page of the range within the concatenation of all RAM blocks.
    pub raw_page_start: u64,
    /// `RamMemoryBlock` flags (bit 0 hot-added, bit 1 SGX, bit 2 VTL2, bit 3 specific-purpose).
    pub flags: u32,
    /// Virtual NUMA node the range belongs to.
    pub virtual_node: u32,
}

impl MemoryRange {
    /// First byte of the range (guest-physical address).
    pub fn gpa_start(&self) -> u64 {
        self.gpa_page_start << 12
    }
    /// One past the last byte of the range.
    pub fn gpa_end(&self) -> u64 {
        (self.gpa_page_start + self.page_count) << 12
    }
    /// One past the last page number of the range.
    pub fn gpa_page_end(&self) -> u64 {
        self.gpa_page_start + self.page_count
    }
}

pub(crate) fn read_crash_msrs(
    main: &ContainerFile,
    flavour: KeyFlavour,
) -> Result<Option<[u64; 5]>> {
    Ok(match main.value(&flavour.saved_vm("guest_crash_msrs"))? {
        Some(v) if v.len == 40 => {
            let b = main.bytes(&v, "guest_crash_msrs")?;
            vm2dmp_formats::partition::u64_array::<5>(&b).filter(|m| m.iter().any(|&x| x != 0))
        }
        _ => None,
    })
}

pub(crate) fn read_memory_map(
    main: &ContainerFile,
    flavour: KeyFlavour,
) -> Result<Vec<MemoryRange>> {
    let ctx = &main.file.ctx;
    let mut ranges = Vec::new();
    for n in 0u64.. {
        let key = flavour.memory_block(n);
        let Some(v) = main.value(&key)? else { break };
        if v.len != RamMemoryBlock::SIZE as u64 {
            return Err(ctx.corrupt(
                "RamMemoryBlock",
                v.offset,
                format!(
                    "{key} is {} bytes, expected {}",
                    v.len,
                    RamMemoryBlock::SIZE
                ),
            ));
        }
        let b = main.bytes(&v, "RamMemoryBlock")?;
        if b.len() != RamMemoryBlock::SIZE {
            return Err(ctx.corrupt(
                "RamMemoryBlock",
                v.offset,
                format!(
                    "{key} is {} bytes, expected {}",
                    b.len(),
                    RamMemoryBlock::SIZE
                ),
            ));
        }
        let m = RamMemoryBlock::parse(&b)
            .ok_or_else(|| ctx.corrupt("RamMemoryBlock", v.offset, "truncated"))?;
        if m.version != RamMemoryBlock::VERSION_3 {
            return Err(ctx.unsupported(format!(
                "{key}: memory block version {} (only version 3 is read)",
                m.version
            )));
        }
        let gpa_end = m.gpa_page_start.checked_add(m.page_count);
        let raw_end = m.mbp_index_start.checked_add(m.page_count);
        if m.page_count == 0
            || gpa_end.is_none_or(|e| e > MAX_GPA_PAGE)
            || raw_end.is_none_or(|e| e > MAX_GPA_PAGE)
        {
            return Err(ctx.corrupt(
                "RamMemoryBlock",
                v.offset,
                format!(
                    "{key}: {} pages at guest page {:#x} / saved page {:#x} is empty or out of range",
                    m.page_count, m.gpa_page_start, m.mbp_index_start
                ),
            ));
        }
        ranges.push((
            v.offset,
            MemoryRange {
                gpa_page_start: m.gpa_page_start,
                page_count: m.page_count,
                raw_page_start: m.mbp_index_start,
                flags: m.flags,
                virtual_node: m.virtual_node,
            },
        ));
    }
    ranges.sort_by_key(|(_, r)| r.gpa_page_start);
    for w in ranges.windows(2) {
        if w[0].1.gpa_page_end() > w[1].1.gpa_page_start {
            return Err(ctx.corrupt(
                "RamMemoryBlock",
                w[1].0,
                "memory ranges overlap in guest-physical space",
            ));
        }
    }
    let mut by_raw: Vec<_> = ranges
        .iter()
        .map(|(o, r)| (r.raw_page_start, r.page_count, *o))
        .collect();
    by_raw.sort_unstable();
    for w in by_raw.windows(2) {
        if w[0].0 + w[0].1 > w[1].0 {
            return Err(ctx.corrupt(
                "RamMemoryBlock",
                w[1].2,
                "memory ranges overlap in the saved RAM",
            ));
        }
    }
    Ok(ranges.into_iter().map(|(_, r)| r).collect())
}
