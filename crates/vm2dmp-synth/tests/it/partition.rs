//! partition_state blob: envelope styles, VP sets, VTL chunks, register helpers.

use crate::common::*;
use vm2dmp_synth::model::{cr0, cr4, efer};
use vm2dmp_synth::partition::{CHUNK_GP, CHUNK_VP, CHUNK_VP_VTL};
use vm2dmp_synth::*;

#[test]
fn items_envelope_like_the_sample() {
    let vm = SynthVm::sample_shape();
    let (blob, l) = partition_state(&vm, false);
    assert_eq!(&blob[0..8], &24u64.to_le_bytes());
    assert_eq!(l.header_size, 0x1040);
    assert_eq!(l.stream_start, 0x1050);
    assert_eq!(blob.len() as u64, l.total_size + 32);
    assert_eq!(&blob[0x18..0x20], b"METIsreV");
    assert_eq!(&blob[0x2C..0x34], b"METItCpV");
    assert_eq!(&blob[0x40..0x48], b"METImSvH");
    assert_eq!(&blob[0x1040..0x1048], b"METItSvH");
    // The summary PROLOG has its flag set, the real one not.
    assert_eq!(blob[0x40 + 16 + 16 + 4], 1);
    assert_eq!(blob[0x1050 + 16 + 4], 0);
    // Same byte count as the real VMRS partition_state (56,112).
    assert_eq!(blob.len(), 56_112);
    let (vsv_blob, _) = partition_state(&vm, true);
    assert_eq!(vsv_blob.len(), 55_440);
    let p = parse_partition(&blob).unwrap();
    assert_eq!(p.total_size, l.total_size);
    assert_eq!(l.chunks.len(), p.chunk_count);
    let gp = l.find(CHUNK_GP, Some(2), 0).unwrap();
    let body = &blob[gp.offset as usize + 16..gp.offset as usize + 16 + 0x90];
    assert_eq!(
        u64::from_le_bytes(body[128..136].try_into().unwrap()),
        vm.vps[2].vtl0.gp.rip
    );
}

#[test]
fn bare_envelope() {
    let mut vm = SynthVm::with_ram_mib(1);
    vm.partition.style = PartitionStyle::Bare;
    vm.partition.trailing_zeros = 0;
    let (blob, l) = partition_state(&vm, false);
    assert_eq!(l.header_size, 24);
    assert_eq!(&blob[24..40], &[0u8; 16]);
    assert_eq!(blob.len() as u64, l.total_size);
    let p = parse_partition(&blob).unwrap();
    assert_eq!(p.vp_count_item, None);
    assert_regs(&p.regs[&(0, 0)], &vm.vps[0].vtl0);
}

#[test]
fn sixty_four_vps_with_sparse_indices() {
    let mut vm = SynthVm::with_ram_mib(1);
    vm.vps = (0..64)
        .map(|i| SynthVp::x64_long_mode(i, 0x1000 * i as u64, 0x1000 + i as u64, 0x2000))
        .collect();
    vm.partition.boot_vp = 5;
    let (blob, _) = partition_state(&vm, false);
    let p = parse_partition(&blob).unwrap();
    assert_eq!(p.vp_bitmap, u64::MAX);
    assert_eq!(p.boot_vp, 5);
    assert_eq!(p.vp_count_item, Some(64));
    for vp in &vm.vps {
        assert_regs(&p.regs[&(vp.index, 0)], &vp.vtl0);
    }
    // Indices need not be contiguous.
    vm.vps = vec![
        SynthVp::real_mode(0, 0xF000, 0xFFF0),
        SynthVp::real_mode(3, 0xF000, 0xFFF0),
    ];
    let (blob, _) = partition_state(&vm, false);
    let p = parse_partition(&blob).unwrap();
    assert_eq!(p.vp_bitmap, 0b1001);
    assert_eq!(p.vp_order, vec![0, 3]);
}

#[test]
fn vtl1_register_sets_in_both_orders() {
    for order in [VtlOrder::Vtl0First, VtlOrder::Vtl1First] {
        let mut vm = SynthVm::with_ram_mib(2);
        let v0 = SynthVp::x64_long_mode(0, 0x1AA000, 0xFFFF_F800_1000_0000, 0x7000);
        let mut vtl1 = v0.vtl0;
        vtl1.control.cr3 = 0x5000;
        vtl1.gp.rip = 0xFFFF_F900_0000_0000;
        vm.vps = vec![
            v0.with_vtl1(vtl1),
            SynthVp::x64_long_mode(1, 0x1AA000, 0x1234, 0x8000),
        ];
        vm.partition.vtl_order = order;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.vmrs");
        let layout = write_vmrs(&vm, &path).unwrap();
        let h = Hvs::parse(&std::fs::read(&path).unwrap()).unwrap();
        let p = parse_partition(&h.value("/savedstate/savedVM/partition_state")).unwrap();
        assert_regs(&p.regs[&(0, 0)], &vm.vps[0].vtl0);
        assert_regs(&p.regs[&(0, 1)], &vtl1);
        assert_regs(&p.regs[&(1, 0)], &vm.vps[1].vtl0);
        assert!(!p.regs.contains_key(&(1, 1)));
        assert!(p.ids.contains(&CHUNK_VP_VTL));
        assert!(layout.partition.find(CHUNK_GP, Some(0), 1).is_some());
        // The layout's chunk offsets point into the file.
        let at = layout.chunk_offset(CHUNK_VP, Some(1)).unwrap();
        assert_eq!(corrupt::get_u32(&path, at).unwrap(), CHUNK_VP);
        assert_eq!(corrupt::get_u32(&path, at + 16).unwrap(), 1);
    }
}

#[test]
fn vp_helpers_set_the_mode_bits() {
    let x64 = SynthVp::x64_long_mode(1, 0x1AA000, 0xFFFF_F800_0000_1000, 0x9000);
    let c = x64.vtl0.control;
    assert!(c.cr0 & cr0::PG != 0 && c.cr0 & cr0::PE != 0);
    assert!(c.cr4 & cr4::PAE != 0);
    assert_eq!(
        c.efer & (efer::LME | efer::LMA | efer::SCE | efer::NXE),
        efer::LME | efer::LMA | efer::SCE | efer::NXE
    );
    assert_eq!(c.cr3, 0x1AA000);
    assert!(x64.vtl0.segments.cs.attributes & (1 << 13) != 0, "CS.L");
    assert_eq!(x64.vtl0.virtual_msrs[2], 0xFEE0_0800);

    let pae = SynthVp::x86_pae(0, 0x39000, 0x8000_1000, 0x8000_2000);
    let c = pae.vtl0.control;
    assert!(c.cr0 & cr0::PG != 0 && c.cr4 & cr4::PAE != 0 && c.efer & efer::LMA == 0);
    assert_eq!(pae.vtl0.virtual_msrs[2], 0xFEE0_0900);

    let x86 = SynthVp::x86_32(0, 0x39000, 0x8000_1000, 0x8000_2000);
    assert!(x86.vtl0.control.cr4 & cr4::PAE == 0 && x86.vtl0.control.cr0 & cr0::PG != 0);

    let rm = SynthVp::real_mode(0, 0xF000, 0x5BA9);
    assert_eq!(rm.vtl0.control.cr0, 0x10);
    assert_eq!(rm.vtl0.segments.cs.base, 0xF0000);
    assert_eq!(rm.vtl0.segments.cs.attributes, 0x9B);
    assert_eq!(
        SynthVp::real_mode(2, 0xF000, 0).vtl0.control.cr0,
        0x6000_0010
    );
}

#[test]
fn vendor_and_extra_chunks() {
    let mut vm = SynthVm::with_ram_mib(1);
    vm.vendor = Vendor::Arm64;
    vm.partition.extra_chunks = vec![(0x3FFF_F000, vec![0xAB; 32])];
    let (blob, l) = partition_state(&vm, false);
    let p = parse_partition(&blob).unwrap();
    assert_eq!(p.vendor, 0x10);
    assert_eq!(p.ids[p.ids.len() - 2], 0x3FFF_F000);
    assert_eq!(l.chunks.last().unwrap().id, 0xF000_0000);
}
