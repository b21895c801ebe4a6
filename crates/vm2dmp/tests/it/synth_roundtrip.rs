//! Synthetic saved states (crates/synth) that cover what the real sample lacks: several RAM
//! ranges with MMIO holes, RAM above 4 GiB, every token kind including XPRESS-compressed pages,
//! raw 1 MiB blocks, 1..64 vCPUs in x64 long mode, VTL-1 state. Every page read back must equal
//! the page the file was written from, through both containers.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use vm2dmp::{hyperv::InputFormat, source::Architecture, source::PagingMode, Error, SavedState};
use vm2dmp_synth::{
    write_vmrs, write_vsv_bin, BlockEncoding, MixedContent, PagePolicy, PageSource, SynthRange,
    SynthVm, SynthVp,
};

const MIB_PAGES: u64 = 256;

/// Three ranges: 0..2 MiB, a hole, 16 MiB..19 MiB (not a whole number of blocks at the end:
/// 3 MiB + 5 pages), a hole up to 4 GiB, then 4 GiB..4 GiB + 2 MiB.
fn ranges() -> Vec<SynthRange> {
    vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 2 * MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: 16 * MIB_PAGES,
            page_count: 3 * MIB_PAGES + 5,
        },
        SynthRange {
            gpa_page_start: 0x10_0000,
            page_count: 2 * MIB_PAGES,
        },
    ]
}

fn vps(n: u32) -> Vec<SynthVp> {
    (0..n)
        .map(|i| {
            let mut vp = SynthVp::x64_long_mode(
                i,
                0x1AA000,
                0xFFFF_F800_0000_1000 + u64::from(i) * 0x10,
                0xFFFF_F800_0010_0000 + u64::from(i) * 0x1000,
            );
            vp.vtl0.gp.rax = 0xAAAA_0000 + u64::from(i);
            vp.vtl0.gp.r15 = 0x1515_0000 + u64::from(i);
            vp.vtl0.debug.dr7 = 0x400 + u64::from(i);
            vp.vtl0.fp.mxcsr = 0x1F80;
            vp.vtl0.fp.xmm[3] = 0x0123_4567_89AB_CDEF_0011_2233_4455_6677 + u128::from(i);
            vp
        })
        .collect()
}

fn mixed_vm(nvps: u32) -> SynthVm {
    let mut vm = SynthVm::new(ranges())
        .with_pages(MixedContent { seed: 7 })
        .with_vps(vps(nvps))
        .with_encoding(BlockEncoding::Tokens(PagePolicy::Mixed));
    // One raw 1 MiB block, one block of compressed pages, one of multi-page tokens.
    vm.block_encoding.insert(1, BlockEncoding::RawBlock);
    vm.block_encoding
        .insert(2, BlockEncoding::Tokens(PagePolicy::Compressed));
    vm.block_encoding.insert(
        3,
        BlockEncoding::Tokens(PagePolicy::MultiPage {
            pages: 8,
            compress: true,
        }),
    );
    vm.block_encoding
        .insert(4, BlockEncoding::Tokens(PagePolicy::FillRun));
    vm
}

fn source_page(src: &dyn PageSource, pfn: u64) -> [u8; 4096] {
    let mut p = [0u8; 4096];
    src.read_page(pfn, &mut p);
    p
}

fn in_ram(pfn: u64) -> bool {
    ranges()
        .iter()
        .any(|r| pfn >= r.gpa_page_start && pfn < r.gpa_page_start + r.page_count)
}

fn check_state(state: &SavedState, vm: &SynthVm) {
    let want: Vec<(u64, u64)> = ranges()
        .iter()
        .map(|r| (r.gpa_page_start, r.page_count))
        .collect();
    let got: Vec<(u64, u64)> = state
        .memory_ranges()
        .iter()
        .map(|r| (r.gpa_page_start, r.page_count))
        .collect();
    assert_eq!(got, want);
    let mut it = state.pages();
    let mut n = 0u64;
    let mut last = None;
    while let Some(p) = it.next() {
        let (pfn, bytes) = p.unwrap();
        assert!(last.is_none_or(|l| pfn > l), "ascending");
        last = Some(pfn);
        assert!(in_ram(pfn));
        assert_eq!(
            bytes,
            &source_page(vm.pages.as_ref(), pfn)[..],
            "page {pfn:#x}"
        );
        n += 1;
    }
    assert_eq!(n, state.ram_pages());
    // Reads across page and block boundaries, and into the holes.
    let mut buf = vec![0u8; 3 * 4096 + 100];
    let gpa = (MIB_PAGES - 1) * 4096 + 50; // crosses from block 0 into block 1 (raw block)
    state.read_phys(gpa, &mut buf).unwrap();
    let mut flat = Vec::new();
    for pfn in (gpa >> 12)..=((gpa + buf.len() as u64) >> 12) {
        flat.extend_from_slice(&source_page(vm.pages.as_ref(), pfn));
    }
    let off = (gpa & 0xFFF) as usize;
    assert_eq!(buf, flat[off..off + buf.len()]);
    let e = state
        .read_phys(2 * MIB_PAGES * 4096 - 10, &mut buf)
        .unwrap_err();
    assert!(
        matches!(e, Error::Hole { gpa } if gpa == 2 * MIB_PAGES * 4096),
        "{e}"
    );
    assert!(state.read_phys(0xFFFF_F000, &mut buf[..10]).is_err());
    state.read_phys(0x1_0000_0000, &mut buf).unwrap();
}

fn check_vps(state: &SavedState, n: u32) {
    assert_eq!(state.vcpus().len(), n as usize);
    for (i, v) in state.vcpus().iter().enumerate() {
        let i = i as u64;
        assert_eq!(v.index as u64, i);
        assert_eq!(v.architecture(), Architecture::X64);
        assert_eq!(v.paging_mode(), PagingMode::Long);
        assert!(v.paging_enabled());
        assert_eq!(v.rip, 0xFFFF_F800_0000_1000 + i * 0x10);
        assert_eq!(v.rsp, 0xFFFF_F800_0010_0000 + i * 0x1000);
        assert_eq!(v.rax, 0xAAAA_0000 + i);
        assert_eq!(v.r15, 0x1515_0000 + i);
        assert_eq!(v.dr7, 0x400 + i);
        assert_eq!(v.cr3, 0x1AA000);
        assert_eq!(
            (v.cs.selector, v.ss.selector, v.fs.selector),
            (0x10, 0x18, 0x53)
        );
        let fp = v.fp.unwrap();
        assert_eq!(fp.mxcsr, 0x1F80);
        assert_eq!(
            fp.xmm[3],
            0x0123_4567_89AB_CDEF_0011_2233_4455_6677 + u128::from(i as u32)
        );
    }
    assert_eq!(state.boot_vcpu().index, 0);
}

#[test]
fn vmrs_and_vsv_bin_round_trip_with_holes_above_4gib_and_64_vps() {
    let dir = tempfile::tempdir().unwrap();
    let vm = mixed_vm(64);
    let vmrs = dir.path().join("guest.vmrs");
    write_vmrs(&vm, &vmrs).unwrap();
    let state = SavedState::open(&vmrs).unwrap();
    assert_eq!(state.format(), InputFormat::Vmrs);
    check_state(&state, &vm);
    check_vps(&state, 64);
    let stats = state.encoding_stats().unwrap();
    assert_eq!(stats.raw_blocks, 1);
    assert!(stats.compressed_pages > 100, "{stats:?}");
    assert!(
        stats.sized_tokens > 0 && stats.fill_zero_pages > 0 && stats.raw_pages > 0,
        "{stats:?}"
    );

    let (vsv, bin) = (dir.path().join("guest.vsv"), dir.path().join("guest.bin"));
    write_vsv_bin(&vm, &vsv, &bin).unwrap();
    let state = SavedState::open(&vsv).unwrap();
    assert_eq!(state.format(), InputFormat::VsvBin);
    check_state(&state, &vm);
    check_vps(&state, 64);
    assert_eq!(state.encoding_stats().unwrap(), stats);
}

#[test]
fn one_vp_and_vtl1_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = mixed_vm(1);
    let mut vtl1 = vm.vps[0].vtl0;
    vtl1.gp.rip = 0xFFFF_F806_0000_0000;
    vm.vps[0] = vm.vps[0].with_vtl1(vtl1);
    let p = dir.path().join("vtl.vmrs");
    write_vmrs(&vm, &p).unwrap();
    let state = SavedState::open(&p).unwrap();
    check_vps(&state, 1);
    assert_eq!(state.higher_vtl_vcpus().len(), 1);
    assert_eq!(state.higher_vtl_vcpus()[0].cpu.rip, 0xFFFF_F806_0000_0000);
    assert_eq!(state.higher_vtl_vcpus()[0].vtl, 1);
}

/// Shared fixture for the property test: written once.
fn fixture() -> &'static (tempfile::TempDir, SavedState, Arc<dyn PageSource>) {
    static F: std::sync::OnceLock<(tempfile::TempDir, SavedState, Arc<dyn PageSource>)> =
        std::sync::OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let vm = mixed_vm(2);
        let p = dir.path().join("prop.vmrs");
        write_vmrs(&vm, Path::new(&p)).unwrap();
        let state = SavedState::open(&p).unwrap();
        (dir, state, vm.pages.clone())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Reading any (gpa, len) through the block map equals reading the flat image; a read
    /// touching a hole fails with the first hole address.
    #[test]
    fn read_phys_equals_flat_image(
        start in prop_oneof![0u64..(24 << 20), (0x1_0000_0000u64 - (1 << 20))..(0x1_0000_0000 + (3 << 20))],
        len in 0usize..20_000,
    ) {
        let (_, state, src) = fixture();
        let mut buf = vec![0u8; len];
        let r = state.read_phys(start, &mut buf);
        let end = start + len as u64;
        let first_hole = if len == 0 {
            None
        } else {
            ((start >> 12)..=((end - 1) >> 12)).find(|p| !in_ram(*p)).map(|p| (p << 12).max(start))
        };
        match first_hole {
            Some(want) => {
                let hole = matches!(r, Err(Error::Hole { gpa }) if gpa == want);
                prop_assert!(hole, "expected a hole at {:#x}", want);
            }
            None => {
                r.unwrap();
                let mut flat = Vec::with_capacity(len + 8192);
                for pfn in (start >> 12)..=((start + len as u64) >> 12) {
                    flat.extend_from_slice(&source_page(src.as_ref(), pfn));
                }
                let off = (start & 0xFFF) as usize;
                prop_assert_eq!(&buf[..], &flat[off..off + len]);
            }
        }
    }
}

/// Two RAM block keys pointing at one file object: a small file describing more RAM than it
/// stores is refused.
#[test]
fn ram_blocks_sharing_a_file_object_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = SynthVm::with_ram_mib(4);
    vm.vmrs.ram_blocks_always_in_file_objects = true;
    let p = dir.path().join("shared.vmrs");
    let layout = write_vmrs(&vm, &p).unwrap();
    SavedState::open(&p).unwrap();
    let b0 = layout.key("/savedstate/RamBlock0");
    let b1 = layout.key("/savedstate/RamBlock1");
    // The 12-byte pointer of block 1 (u32 size, u64 offset) made to name block 0's object.
    let (obj0, _) = b0.object.unwrap();
    vm2dmp_synth::corrupt::set_u64(&p, b1.stored_offset + 4, obj0).unwrap();
    vm2dmp_synth::corrupt::fix_key_entry_crc(&p, b1.entry_offset).unwrap();
    let e = SavedState::open(&p).unwrap_err().to_string();
    assert!(
        e.contains("key table entry") && e.contains("shares the file object"),
        "{e}"
    );
}
