//! What `vm2dmp info` shows of a saved state: format, versions, processors, memory map.

use std::path::PathBuf;

use vm2dmp_formats::memory::{BLOCK_SIZE, PAGE_SIZE};
use vm2dmp_source::{Architecture, PagingMode, Result};

use crate::container::Container;
use crate::hvs::ReplayLogStatus;
use crate::memory_map::{KeyFlavour, MemoryRange};
use crate::state::{InputFormat, SavedState};

/// Facts about a saved state, for display (`vm2dmp info`) and scripts.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Summary {
    /// Which kind of saved state this is.
    pub format: InputFormat,
    /// The files read, as [`SavedState::files`] lists them.
    pub files: Vec<PathBuf>,
    /// HVS format version (0x400) or legacy container version (0x500).
    pub container_version: u32,
    /// `/savedstate/VmVersion` (e.g. 0x900 for configuration version 9.0), when present.
    pub vm_version: Option<u32>,
    /// Key names the file uses.
    pub key_flavour: KeyFlavour,
    /// `/savedstate/type`, when the HVS file has it (`None` for the legacy container).
    pub saved_state_type: Option<String>,
    /// `/savedstate/VmwpVersion`: the version of the worker process that saved the state, when
    /// present.
    pub worker_process_version: Option<String>,
    /// HVS replay-log status (clean for the legacy container).
    pub replay_log: ReplayLogStatus,
    /// Architecture of the boot vCPU.
    pub architecture: Architecture,
    /// Paging mode of the boot vCPU.
    pub paging_mode: PagingMode,
    /// `AMD`, `Intel`, `Hygon` or `unknown`, from the vendor code; `None` when not saved.
    pub processor_vendor: Option<&'static str>,
    /// Number of vCPUs (VTL 0), at least one.
    pub vp_count: usize,
    /// Index of the boot vCPU (from VP_INDICES), when saved.
    pub boot_vp: Option<u32>,
    /// Guest RAM in 4 KiB pages: the sum of the ranges' page counts.
    pub ram_pages: u64,
    /// Guest RAM in bytes (`ram_pages` × 4096).
    pub ram_bytes: u64,
    /// Size of the concatenated RAM blocks (what Microsoft's API calls raw saved memory).
    pub raw_saved_memory_size: u64,
    /// Number of stored 1 MiB RAM blocks.
    pub ram_blocks: u64,
    /// Guest RAM ranges, sorted by address, not overlapping.
    pub ranges: Vec<MemoryRange>,
    /// `savedVM/topology/low_mmio_gap_mb`: size in MiB of the low MMIO gap, when saved.
    pub low_mmio_gap_mb: Option<i64>,
    /// `savedVM/topology/high_mmio_gap_mb`: size in MiB of the high MMIO gap, when saved.
    pub high_mmio_gap_mb: Option<i64>,
    /// Contents of `guest_crash_msrs` (five u64), when saved and not all zero.
    pub guest_crash_msrs: Option<[u64; 5]>,
}

impl SavedState {
    /// Facts for display.
    pub fn summary(&self) -> Result<Summary> {
        let boot = self.boot_vcpu();
        let ram_pages = self.ram_pages();
        let (container_version, saved_state_type) = match &self.main.container {
            Container::Hvs(h) => (
                h.header.format_version,
                self.main.string("/savedstate/type")?,
            ),
            Container::Legacy(l) => (l.header.version, None),
        };
        Ok(Summary {
            format: self.format,
            files: self.files(),
            container_version,
            vm_version: self.vm_version,
            key_flavour: self.flavour,
            saved_state_type,
            worker_process_version: self.main.string("/savedstate/VmwpVersion")?,
            replay_log: self.replay_log(),
            architecture: boot.architecture(),
            paging_mode: boot.paging_mode(),
            processor_vendor: self.partition.vendor.map(|v| match v {
                vm2dmp_formats::partition::vendor::AMD => "AMD",
                vm2dmp_formats::partition::vendor::INTEL => "Intel",
                vm2dmp_formats::partition::vendor::HYGON => "Hygon",
                _ => "unknown",
            }),
            vp_count: self.partition.vps.len(),
            boot_vp: self.partition.boot_vp,
            ram_pages,
            ram_bytes: ram_pages * PAGE_SIZE as u64,
            raw_saved_memory_size: self.blocks.len() as u64 * BLOCK_SIZE as u64,
            ram_blocks: self.blocks.len() as u64,
            ranges: self.ranges.clone(),
            low_mmio_gap_mb: self
                .main
                .int(&self.flavour.saved_vm("topology/low_mmio_gap_mb"))?,
            high_mmio_gap_mb: self
                .main
                .int(&self.flavour.saved_vm("topology/high_mmio_gap_mb"))?,
            guest_crash_msrs: self.crash_msrs,
        })
    }
}
