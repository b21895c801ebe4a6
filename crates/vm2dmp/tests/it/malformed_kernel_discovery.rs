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

/// The guest of the `convert` fuzz seed (a minimal `ntoskrnl.exe` in an x64 address space:
/// PML4 at 0x1000, page directory at 0x3000 whose entry 0 points to the image's page table,
/// IDT at 0xD000), its header bytes `clear` zeroed (registers: 9..17 IDTR base, 17..25 GS
/// base, 25..33 kernel GS base), its memory changed by `edit` and grown to `ram_mib` MiB (at
/// least the seed's 56 KiB).
fn seed_guest(
    clear: std::ops::Range<usize>,
    ram_mib: usize,
    edit: impl FnOnce(&mut [u8]),
) -> vm2dmp_fuzz_harness::FlatGuest {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/convert/x64-ntoskrnl");
    let mut input = std::fs::read(&seed).unwrap();
    input[clear].fill(0);
    let tiny = vm2dmp_fuzz_harness::tiny_guest(&input).unwrap();
    let mut mem = input.split_off(vm2dmp_fuzz_harness::TINY_GUEST_HEADER);
    edit(&mut mem);
    mem.resize(mem.len().max(ram_mib << 20), 0);
    vm2dmp_fuzz_harness::FlatGuest::new(vec![(0, mem)], tiny.vcpus().to_vec()).unwrap()
}

/// The seed's guest with no IDT and no KPCR, so that only the scan of kernel space can find
/// the image, and `aliases` 2 MiB pages (onto guest-physical 2 MiB, no image there) mapped
/// before it; and where the image then is.
fn image_behind_aliases(aliases: u64, ram_mib: usize) -> (vm2dmp_fuzz_harness::FlatGuest, u64) {
    let guest = seed_guest(9..33, ram_mib, |mem| {
        let pd = 0x3000;
        let pt = mem[pd..pd + 8].to_vec();
        for i in 0..aliases as usize {
            mem[pd + i * 8..pd + i * 8 + 8].copy_from_slice(&(0x20_0000 | P | LARGE).to_le_bytes());
        }
        let at = pd + aliases as usize * 8;
        mem[at..at + 8].copy_from_slice(&pt);
    });
    (guest, KERNEL + (aliases << 21))
}

/// The kernel found (by the scan of kernel space) in `guest`, if any.
fn scanned_kernel(guest: &dyn MemorySource) -> Option<u64> {
    let k = vm2dmp::guest::find_kernel(guest, None);
    if k.image.is_some() {
        assert!(
            k.kernel_base.how.contains("scan of kernel space"),
            "{}",
            k.kernel_base.how
        );
    }
    k.kernel_base.value
}

/// The scan of kernel space looks at four times the guest's RAM in pages (at least 4 MiB's
/// worth, 1,024 pages; at most 2 GiB's): in a 1 MiB guest, 2 aliased 2 MiB pages (1,024
/// pages) before the image hide it; in a 4 MiB guest (4,096 pages) they do not, 8 do; in a
/// 32 MiB guest (32,768 pages) 64 do.
#[test]
fn kernel_space_scan_is_bounded_by_guest_ram() {
    for (aliases, ram_mib, found) in [
        (0, 1, true),
        (1, 1, true),
        (2, 1, false),
        (2, 4, true),
        (7, 4, true),
        (8, 4, false),
        (63, 32, true),
        (64, 32, false),
    ] {
        let (guest, base) = image_behind_aliases(aliases, ram_mib);
        assert_eq!(
            scanned_kernel(&guest),
            found.then_some(base),
            "{aliases} aliased 2 MiB pages before the image, {ram_mib} MiB of RAM"
        );
    }
}

/// How the kernel of the seed's guest is found when every IDT handler lies `above` bytes
/// above the image base (no KPCR: the GS bases are cleared), in a guest of `ram_mib` MiB.
fn kernel_found_below_handlers(above: u64, ram_mib: usize) -> String {
    let guest = seed_guest(17..33, ram_mib, |mem| {
        for v in 0..48u64 {
            let h = KERNEL + above + v * 16;
            let gate = 0xD000 + v as usize * 16;
            mem[gate..gate + 2].copy_from_slice(&(h as u16).to_le_bytes());
            mem[gate + 6..gate + 8].copy_from_slice(&((h >> 16) as u16).to_le_bytes());
            mem[gate + 8..gate + 12].copy_from_slice(&((h >> 32) as u32).to_le_bytes());
        }
    });
    let k = vm2dmp::guest::find_kernel(&guest, None);
    assert_eq!(k.kernel_base.value, Some(KERNEL), "{:?}", k.notes);
    k.kernel_base.how
}

/// Walks down from interrupt handlers take at most eight times the guest's RAM in page steps
/// (at least 1,024, at most 65,536), a handler N pages above the image taking N + 1 steps:
/// in the seed's own 56 KiB a handler 1,023 pages above the image leads to it and one 1,024
/// pages above does not (the scan of kernel space finds it); in 1 MiB (2,048 steps) it does,
/// and so on.
#[test]
fn walk_down_from_handlers_is_bounded_by_guest_ram() {
    for (pages_above, ram_mib, via_idt) in [
        (1, 0, true),
        (1023, 0, true),
        (1024, 0, false),
        (1024, 1, true),
        (2047, 1, true),
        (2048, 1, false),
        (4095, 2, true),
        (4096, 2, false),
    ] {
        let how = kernel_found_below_handlers(pages_above << 12, ram_mib);
        let expected = if via_idt {
            "IDT of VP"
        } else {
            "scan of kernel space"
        };
        assert!(
            how.contains(expected),
            "handlers {pages_above} pages above the image, {ram_mib} MiB of RAM: {how}"
        );
    }
}
