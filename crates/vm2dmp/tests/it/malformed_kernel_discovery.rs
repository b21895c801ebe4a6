//! Guest memory is written by the guest: kernel discovery (run by `convert` and `verify`) must
//! cost a bounded amount of work whatever the page tables, IDTs and PE headers in it say.
//!
//! (Tests marked `#[ignore]` would describe limits not enforced yet; there are none at present.)

use std::sync::atomic::{AtomicU64, Ordering};

use vm2dmp::source::{ChunkSpan, MachineInfo, PageMask, RamRange};
use vm2dmp::{MemorySource, SavedState};
use vm2dmp_synth::{SparsePages, SynthVm, SynthVp};

const P: u64 = 0x3; // present, writable
const LARGE: u64 = 0x80;
const KERNEL: u64 = 0xFFFF_F800_0000_0000;
/// Where the IDT is mapped (a 2 MiB page onto guest-physical 0).
const IDT_VA: u64 = KERNEL + (16 << 21) + 0x10000;

/// A 4 MiB x64 guest whose kernel space is 32 MiB of 2 MiB pages, every 4 KiB page of which
/// starts with "MZ" but is no PE image, and `vps` vCPUs whose IDTs list 48 handlers at the top
/// of that range. Discovery walks down from each handler page by page looking for the image
/// headers (up to 32 MiB), parsing every "MZ" page, and does so again for every vCPU: nothing
/// remembers that a page holds no image. With `own_roots`, every vCPU has its own (identical)
/// PML4, and the whole search is repeated for each of those roots too.
fn mz_everywhere(vps: u32, own_roots: bool) -> Vec<u8> {
    let mut mem = SparsePages::new();
    let mut put = |gpa: u64, v: u64| {
        mem.write(gpa, &v.to_le_bytes());
    };
    // PML4 at 0x1000 (copies at 0x100000 + 4 KiB * vCPU): kernel space, and
    // KUSER_SHARED_DATA (needed for a valid root).
    let root = |i: u32| {
        if own_roots {
            0x10_0000 + u64::from(i) * 0x1000
        } else {
            0x1000
        }
    };
    for i in 0..vps {
        put(root(i) + 0x1F0 * 8, 0x2000 | P);
        put(root(i) + 0x1EF * 8, 0x5000 | P);
    }
    put(0x5000, 0x6000 | P);
    put(0x6000, 0x7000 | P);
    put(0x7000, 0x8000 | P);
    put(0x2000, 0x3000 | P);
    for i in 0..16 {
        put(0x3000 + i * 8, 0x20_0000 | P | LARGE);
    }
    put(0x3000 + 16 * 8, P | LARGE);
    for v in 0..48u64 {
        let h = KERNEL + (32 << 20) - 0x1000 - v * 0x2_0000;
        let mut gate = [0u8; 16];
        gate[0..2].copy_from_slice(&(h as u16).to_le_bytes());
        gate[2..4].copy_from_slice(&0x10u16.to_le_bytes());
        gate[5] = 0x8E;
        gate[6..8].copy_from_slice(&((h >> 16) as u16).to_le_bytes());
        gate[8..12].copy_from_slice(&((h >> 32) as u32).to_le_bytes());
        mem.write(0x10000 + v * 16, &gate);
    }
    for page in 0x200..0x400u64 {
        mem.write(page << 12, b"MZ");
    }
    let vps = (0..vps)
        .map(|i| {
            let mut vp = SynthVp::x64_long_mode(i, root(i), KERNEL, KERNEL);
            vp.vtl0.tables.idtr.base = IDT_VA;
            vp
        })
        .collect();
    let mut vm = SynthVm::with_ram_mib(4).with_pages(mem).with_vps(vps);
    vm.vmrs.device_keys = false;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mz.vmrs");
    vm2dmp_synth::write_vmrs(&vm, &p).unwrap();
    std::fs::read(&p).unwrap()
}

/// A source that counts the guest bytes read through it (reads and decoded chunks): the work
/// kernel discovery does, measured without a clock.
pub(crate) struct Counted<'a> {
    pub inner: &'a SavedState,
    pub bytes: AtomicU64,
    /// Chunks decoded through the trait.
    pub decodes: AtomicU64,
}

impl<'a> Counted<'a> {
    pub fn new(inner: &'a SavedState) -> Self {
        Self {
            inner,
            bytes: AtomicU64::new(0),
            decodes: AtomicU64::new(0),
        }
    }
}

impl MemorySource for Counted<'_> {
    fn files(&self) -> Vec<std::path::PathBuf> {
        self.inner.files()
    }
    fn ram_ranges(&self) -> &[RamRange] {
        MemorySource::ram_ranges(self.inner)
    }
    fn chunk_count(&self) -> usize {
        self.inner.chunk_count()
    }
    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        self.inner.chunk_spans(n)
    }
    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> vm2dmp::Result<PageMask> {
        self.bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
        self.decodes.fetch_add(1, Ordering::Relaxed);
        self.inner.decode_chunk(n, out)
    }
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> vm2dmp::Result<()> {
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_phys(gpa, buf)
    }
    fn vcpus(&self) -> &[vm2dmp::CpuState] {
        MemorySource::vcpus(self.inner)
    }
    fn machine(&self) -> MachineInfo {
        self.inner.machine()
    }
}

/// Guest bytes kernel discovery reads in a guest of `vps` vCPUs.
fn discovery_work(vps: u32, own_roots: bool) -> (u64, usize) {
    let data = mz_everywhere(vps, own_roots);
    let len = data.len();
    let state = SavedState::from_bytes("mz.vmrs".as_ref(), data, None).unwrap();
    let counted = Counted::new(&state);
    let k = vm2dmp::guest::find_kernel(&counted, None);
    assert!(k.image.is_none());
    (counted.bytes.load(Ordering::Relaxed), len)
}

#[test]
fn one_vcpu_construction_is_a_valid_kernel_space_without_a_kernel() {
    let (work, _) = discovery_work(1, false);
    assert!(work > 0);
}

#[test]
fn discovery_cost_does_not_grow_with_vcpus() {
    let (one, len) = discovery_work(1, false);
    let (shared, _) = discovery_work(16, false);
    let (own, _) = discovery_work(8, true);
    eprintln!(
        "{len} bytes: guest bytes read with 1 vCPU {one}; 16 vCPUs sharing a root {shared}; 8 vCPUs with their own roots {own}"
    );
    // The page-step budget is shared by all vCPUs and roots: more vCPUs may not multiply the
    // work (a small allowance for each vCPU's own registers and KPCR probes).
    let budget = one * 3 + (1 << 20);
    assert!(shared < budget, "16 vCPUs: {shared} bytes, 1 vCPU: {one}");
    assert!(
        own < budget,
        "8 roots x 8 vCPUs: {own} bytes, 1 vCPU: {one}"
    );
}
