//! The synthetic VM: guest-physical ranges, page contents, virtual processors and
//! the knobs that decide how the files are written.

// The page sources are in `model/pages.rs`, the register sets in `model/regs.rs` and the
// virtual processors in `model/vp.rs`; all are re-exported here.

mod pages;
mod regs;
mod vp;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::encode::BlockEncoding;
use crate::options::{LegacyOptions, VmrsOptions};

pub use pages::{FlatImage, MixedContent, PageSource, SparsePages, ZeroPages, PAGE_SIZE};
pub use regs::{
    cr0, cr4, efer, vmsr, ControlRegs, DebugRegs, FpRegs, GpRegs, Segment, SegmentRegs, TableReg,
    TableRegs, VpState,
};
pub use vp::{SynthVp, Vendor};

/// Number of 4 KiB pages in one RAM block (1 MiB).
pub const PAGES_PER_BLOCK: u64 = 256;

/// Default `/savedstate/VmwpVersion` of a [`SynthVm`] (the real sample's).
pub(crate) const VMWP_VERSION: &str = "10.0.18301.1044 (WinBuild.160101.0800)";

/// One guest-physical RAM range: pages `[gpa_page_start, gpa_page_start + page_count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthRange {
    /// First guest-physical page number (GPA / 4096).
    pub gpa_page_start: u64,
    /// Number of 4 KiB pages.
    pub page_count: u64,
}

impl SynthRange {
    /// A range given in bytes; both values must be multiples of 4096.
    pub fn from_bytes(gpa: u64, len: u64) -> Self {
        assert!(
            gpa % PAGE_SIZE == 0 && len % PAGE_SIZE == 0,
            "range not page aligned"
        );
        Self {
            gpa_page_start: gpa / PAGE_SIZE,
            page_count: len / PAGE_SIZE,
        }
    }

    /// One past the last page.
    pub fn gpa_page_end(&self) -> u64 {
        self.gpa_page_start + self.page_count
    }
}

/// Where a range lands in "raw saved memory" (the concatenation of the RAM blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacedRange {
    /// The guest-physical range.
    pub range: SynthRange,
    /// `mbp_index_start` of the memory-block metadata: first raw page of the range.
    pub mbp_index_start: u64,
    /// First RAM block of the range (`mbp_index_start / 256`).
    pub first_block: u64,
    /// Number of RAM blocks the range occupies (the last one may be padded with zeros).
    pub block_count: u64,
}

/// The whole synthetic VM plus writer options.
#[derive(Clone)]
pub struct SynthVm {
    /// Guest-physical RAM ranges, in the order they are laid out in raw saved memory.
    pub ranges: Vec<SynthRange>,
    /// Virtual processors (1..=64 for valid files); VP_INDICES is built from their indices.
    pub vps: Vec<SynthVp>,
    /// `/savedstate/VmVersion` and `/configuration/properties/version` (e.g. 0x900).
    pub vm_version: u32,
    /// Processor vendor, in the PROLOG chunk and `/savedVM/processor/vendor`.
    pub vendor: Vendor,
    /// `/savedVM/processor/features/general` (also copied into the PROLOG chunk).
    pub processor_features: u64,
    /// `/savedVM/implemented_physical_address_bits` (also in the PROLOG chunk).
    pub implemented_physical_address_bits: u64,
    /// Guest OS identity written into the OS id chunk.
    pub guest_os_id: u64,
    /// 5 x u64 `/savedVM/guest_crash_msrs`.
    pub guest_crash_msrs: [u64; 5],
    /// `/savedVM/topology/low_mmio_gap_mb`.
    pub low_mmio_gap_mb: i64,
    /// `/savedVM/topology/high_mmio_gap_mb`.
    pub high_mmio_gap_mb: i64,
    /// Page contents.
    pub pages: Arc<dyn PageSource>,
    /// How each RAM block is encoded (default for all blocks).
    pub encoding: BlockEncoding,
    /// Per-block overrides of `encoding`, by RAM block number.
    pub block_encoding: BTreeMap<u64, BlockEncoding>,
    /// Encoder of compressed payloads.
    pub compressor: crate::encode::Compressor,
    /// Order of the `RamBlock` keys and values.
    pub block_order: crate::options::BlockOrder,
    /// Record every token's location in [`crate::SynthLayout::ram_blocks`].
    pub record_tokens: bool,
    /// `/savedstate/VmwpVersion`.
    pub vmwp_version: String,
    /// Options for the partition_state blob.
    pub partition: crate::options::PartitionOptions,
    /// Options only used by [`crate::write_vmrs`].
    pub vmrs: VmrsOptions,
    /// Options only used by [`crate::write_vsv_bin`].
    pub legacy: LegacyOptions,
}

impl std::fmt::Debug for SynthVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynthVm")
            .field("ranges", &self.ranges)
            .field("vps", &self.vps.len())
            .field("vm_version", &self.vm_version)
            .field("vendor", &self.vendor)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl SynthVm {
    /// A VM with the given ranges, one x64 VP 0 and all-zero pages.
    pub fn new(ranges: Vec<SynthRange>) -> Self {
        Self {
            ranges,
            vps: vec![SynthVp::x64_long_mode(
                0,
                0x1AA000,
                0xFFFF_F800_0000_1000,
                0xFFFF_F800_0010_0000,
            )],
            vm_version: 0x900,
            vendor: Vendor::Intel,
            processor_features: 0x0005_7040_4000_019F,
            implemented_physical_address_bits: 44,
            guest_os_id: 0,
            guest_crash_msrs: [0; 5],
            low_mmio_gap_mb: 128,
            high_mmio_gap_mb: 512,
            pages: Arc::new(ZeroPages),
            encoding: BlockEncoding::default(),
            block_encoding: BTreeMap::new(),
            compressor: Default::default(),
            block_order: Default::default(),
            record_tokens: false,
            vmwp_version: VMWP_VERSION.to_string(),
            partition: Default::default(),
            vmrs: Default::default(),
            legacy: Default::default(),
        }
    }

    /// A single range of `mib` MiB at GPA 0.
    pub fn with_ram_mib(mib: u64) -> Self {
        Self::new(vec![SynthRange {
            gpa_page_start: 0,
            page_count: mib * PAGES_PER_BLOCK,
        }])
    }

    /// The usual x64 layout for `total_mib` of RAM: up to 3 GiB below the MMIO gap,
    /// the rest from 4 GiB.
    pub fn with_ram_split(total_mib: u64) -> Self {
        let low = total_mib.min(3072);
        let mut ranges = vec![SynthRange {
            gpa_page_start: 0,
            page_count: low * PAGES_PER_BLOCK,
        }];
        if total_mib > low {
            ranges.push(SynthRange {
                gpa_page_start: 4096 * PAGES_PER_BLOCK,
                page_count: (total_mib - low) * PAGES_PER_BLOCK,
            });
        }
        Self::new(ranges)
    }

    /// The shape of the real sample: one range of 64,512 pages (252 MiB) at GPA 0 and
    /// four real-mode VPs, VM version 0x900.
    pub fn sample_shape() -> Self {
        let mut vm = Self::new(vec![SynthRange {
            gpa_page_start: 0,
            page_count: 64_512,
        }]);
        vm.vps = (0..4)
            .map(|i| {
                if i == 0 {
                    SynthVp::real_mode(0, 0xF000, 0x5BA9)
                } else {
                    SynthVp::real_mode(i, 0xF000, 0x7283)
                }
            })
            .collect();
        vm
    }

    /// `self` with page contents from `pages`.
    pub fn with_pages(mut self, pages: impl PageSource + 'static) -> Self {
        self.pages = Arc::new(pages);
        self
    }

    /// `self` with these virtual processors.
    pub fn with_vps(mut self, vps: Vec<SynthVp>) -> Self {
        self.vps = vps;
        self
    }

    /// `self` with `encoding` as the default encoding of every RAM block.
    pub fn with_encoding(mut self, encoding: BlockEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Place the ranges: each starts on a fresh RAM block.
    pub fn placed_ranges(&self) -> Vec<PlacedRange> {
        let mut next_block = 0u64;
        self.ranges
            .iter()
            .map(|r| {
                let block_count = r.page_count.div_ceil(PAGES_PER_BLOCK);
                let p = PlacedRange {
                    range: *r,
                    mbp_index_start: next_block * PAGES_PER_BLOCK,
                    first_block: next_block,
                    block_count,
                };
                next_block += block_count;
                p
            })
            .collect()
    }

    /// Total number of RAM blocks written.
    pub fn block_count(&self) -> u64 {
        self.placed_ranges().iter().map(|p| p.block_count).sum()
    }

    /// The encoding used for RAM block `block`.
    pub fn encoding_for(&self, block: u64) -> BlockEncoding {
        self.block_encoding
            .get(&block)
            .copied()
            .unwrap_or(self.encoding)
    }

    /// Guest page backing raw page `raw_page`, or `None` for the zero padding at the end of a range.
    pub fn gpa_page_of_raw(&self, raw_page: u64) -> Option<u64> {
        for p in self.placed_ranges() {
            if raw_page >= p.mbp_index_start && raw_page < p.mbp_index_start + p.range.page_count {
                return Some(p.range.gpa_page_start + (raw_page - p.mbp_index_start));
            }
        }
        None
    }

    /// Read the expected contents of guest page `gpa_page` (zero in holes).
    pub fn expected_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        if self
            .ranges
            .iter()
            .any(|r| gpa_page >= r.gpa_page_start && gpa_page < r.gpa_page_end())
        {
            self.pages.read_page(gpa_page, buf);
        } else {
            buf.fill(0);
        }
    }
}
