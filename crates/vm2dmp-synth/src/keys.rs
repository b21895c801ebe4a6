//! The standard key set of a saved state, shared by both containers.

use crate::common::{memory_block_bytes, utf16};
use crate::model::SynthVm;
use crate::options::KeyValue;

/// A key value as the writers see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Int(i64),
    Uint(u64),
    Double(f64),
    Bool(bool),
    /// UTF-16LE bytes.
    Str(Vec<u8>),
    Bin(Vec<u8>),
    /// Placeholder for RAM block `n`, encoded while writing.
    RamBlock(u64),
}

impl From<&KeyValue> for Val {
    fn from(v: &KeyValue) -> Self {
        match v {
            KeyValue::Int(x) => Val::Int(*x),
            KeyValue::Uint(x) => Val::Uint(*x),
            KeyValue::Double(x) => Val::Double(*x),
            KeyValue::String(s) => Val::Str(utf16(s)),
            KeyValue::Binary(b) => Val::Bin(b.clone()),
            KeyValue::Bool(b) => Val::Bool(*b),
        }
    }
}

/// One key: full path (HVS) or name (legacy).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub path: String,
    pub val: Val,
    /// HVS entry flag 0x02.
    pub subcomponent: bool,
}

fn k(path: impl Into<String>, val: Val) -> Key {
    Key {
        path: path.into(),
        val,
        subcomponent: false,
    }
}

fn sub(path: impl Into<String>, s: &str) -> Key {
    Key {
        path: path.into(),
        val: Val::Str(utf16(s)),
        subcomponent: true,
    }
}

/// Deterministic filler bytes for device-state values.
pub(crate) fn filler(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(31).wrapping_add(seed as u32) % 251) as u8)
        .collect()
}

fn crash_msrs(vm: &SynthVm) -> Vec<u8> {
    vm.guest_crash_msrs
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

fn omitted(path: &str, omit: &[String]) -> bool {
    omit.iter().any(|o| {
        path == o || (path.starts_with(o.as_str()) && path[o.len()..].starts_with(['/', '#']))
    })
}

/// The keys of a `.VMRS`, in insertion order; RAM blocks in `block_order`.
pub(crate) fn vmrs_keys(vm: &SynthVm, partition_state: Vec<u8>, block_order: &[u64]) -> Vec<Key> {
    let o = &vm.vmrs;
    let mut v = Vec::new();
    v.push(k(
        "/configuration/properties/version",
        Val::Int(vm.vm_version as i64),
    ));
    if o.device_keys {
        let m = "/configuration/global_settings/metrics";
        v.push(sub(
            format!("{m}/devicetype/guid"),
            "B637F346-6A0E-4DEC-AF52-BD70CB80A21D",
        ));
        v.push(sub(
            format!("{m}/devicetype/deviceinstance/guid"),
            "B637F346-6A0E-4DEC-AF52-BD70CB80A21D",
        ));
        let mt = format!("{m}/devicetype/deviceinstance/metric");
        v.push(sub(
            format!("{mt}/typecode"),
            "3F6F1051-C8FC-47EF-9821-C07240848748;0",
        ));
        v.push(k(format!("{mt}/value"), Val::Int(0)));
        v.push(k(format!("{mt}/enabled"), Val::Bool(false)));
        v.push(k(format!("{mt}/poolid"), Val::Str(Vec::new())));
        // A second sibling node with the same name.
        v.push(sub(
            format!("{m}/devicetype#2/guid"),
            "4764334D-E001-4176-82EE-5594EC9B530E",
        ));
        v.push(sub(
            format!("{m}/devicetype#2/deviceinstance/guid"),
            "4764334D-E001-4176-82EE-5594EC9B530E",
        ));
        v.push(k(
            "/configuration/_ac6b8dc1-3257-4a70-b1b2-a9c9215659ad_/VDEVVersion",
            Val::Int(2048),
        ));
    }
    v.push(k(
        "/savedstate/VmwpVersion",
        Val::Str(utf16(&vm.vmwp_version)),
    ));
    v.push(k("/savedstate/type", Val::Str(utf16(&o.savedstate_type))));
    v.push(k("/savedstate/VmVersion", Val::Int(vm.vm_version as i64)));
    for (d, p) in vm.placed_ranges().iter().enumerate() {
        v.push(k(
            format!("/savedstate/RamMemoryBlock{d}"),
            Val::Bin(memory_block_bytes(p)),
        ));
    }
    if o.device_keys {
        let d = "/savedstate/configuration/_aeb61479-a2cc-4127-8a15-67cfd0091aec_";
        v.push(k(format!("{d}/VDEVVersion"), Val::Int(768)));
        v.push(k(format!("{d}/DataBlock0000"), Val::Bin(filler(1368, 1))));
        v.push(k(format!("{d}/DataBlock0001"), Val::Bin(vec![0, 0])));
        v.push(k(format!("{d}/NumDataBlocks"), Val::Int(2)));
        let d = "/savedstate/configuration/_655bc5c5-a784-46b7-81bc-e26328f7eb0e_";
        v.push(k(format!("{d}/VDEVVersion"), Val::Int(512)));
        v.push(k(format!("{d}/Ps2Keyboard"), Val::Bin(filler(8422, 2))));
        v.push(k(format!("{d}/Ps2Mouse"), Val::Bin(filler(224, 3))));
        let d = "/savedstate/configuration/_8f0d2762-0b00-4e04-af4f-19010527cb93_";
        v.push(k(format!("{d}/VDEVVersion"), Val::Int(256)));
        v.push(k(format!("{d}/DelayedInterruptPeriod"), Val::Int(5000)));
        v.push(k(format!("{d}/DelayedInterruptEnabled"), Val::Bool(false)));
    }
    let s = "/savedstate/savedVM";
    v.push(k(
        format!("{s}/topology/low_mmio_gap_mb"),
        Val::Int(vm.low_mmio_gap_mb),
    ));
    v.push(k(
        format!("{s}/topology/high_mmio_gap_mb"),
        Val::Int(vm.high_mmio_gap_mb),
    ));
    v.push(k(
        format!("{s}/topology/vnode_pnode_map"),
        Val::Bin(vec![0]),
    ));
    v.push(k(format!("{s}/hw_threads_per_core_realized"), Val::Uint(2)));
    v.push(k(format!("{s}/guest_stop"), Val::Int(0)));
    v.push(k(format!("{s}/partition_state"), Val::Bin(partition_state)));
    v.push(k(
        format!("{s}/processor_attribute"),
        Val::Bin(vec![0, 0xFF, 0, 0xFF, 1, 0, 0, 0]),
    ));
    v.push(k(
        format!("{s}/processor/vendor"),
        Val::Uint(vm.vendor.code() as u64),
    ));
    v.push(k(
        format!("{s}/processor/features/general"),
        Val::Uint(vm.processor_features),
    ));
    v.push(k(format!("{s}/processor/features/xsave"), Val::Uint(0)));
    v.push(k(
        format!("{s}/processor/features/cache/line_flush_size"),
        Val::Uint(8),
    ));
    v.push(k(
        format!("{s}/implemented_physical_address_bits"),
        Val::Uint(vm.implemented_physical_address_bits),
    ));
    v.push(k(
        format!("{s}/non_architectural_core_sharing"),
        Val::Uint(1),
    ));
    v.push(k(format!("{s}/guest_crash_msrs"), Val::Bin(crash_msrs(vm))));
    for &b in block_order {
        v.push(k(format!("/savedstate/RamBlock{b}"), Val::RamBlock(b)));
    }
    for (p, val) in &o.extra_keys {
        v.push(k(p.clone(), val.into()));
    }
    v.retain(|key| !omitted(&key.path, &o.omit_keys));
    v
}

/// The keys of a `.vsv` (without the `InternalDataTable*` integers, added by the writer).
pub(crate) fn vsv_keys(vm: &SynthVm, partition_state: Vec<u8>) -> Vec<Key> {
    let o = &vm.legacy;
    let mut v = Vec::new();
    v.push(k(
        "/savedstate/VmwpVersion",
        Val::Str(utf16(&vm.vmwp_version)),
    ));
    for (d, p) in vm.placed_ranges().iter().enumerate() {
        v.push(k(
            format!("RamMemoryBlock/{d}/"),
            Val::Bin(memory_block_bytes(p)),
        ));
    }
    if o.device_keys {
        let d = "/configuration/_10f6fae5-756a-4065-ba9b-52c425e24e22_";
        v.push(k(format!("{d}/VDEVVersion"), Val::Int(256)));
        v.push(k(format!("{d}/DataBlock0000"), Val::Bin(filler(1360, 4))));
        v.push(k(format!("{d}/DataBlock0001"), Val::Bin(vec![0, 0])));
        v.push(k(format!("{d}/DataBlock0003"), Val::Bin(Vec::new())));
        v.push(k(format!("{d}/NumDataBlocks"), Val::Int(4)));
        let d = "/configuration/_58f75a6d-d949-4320-99e1-a2a2576d581c_";
        v.push(k(
            format!("{d}/MouseDeviceSynth/Hid/Version"),
            Val::Bin(vec![1, 0, 2, 0]),
        ));
        v.push(k(
            format!("{d}/MouseDeviceSynth/State"),
            Val::Bin(filler(12, 5)),
        ));
        let d = "/configuration/_83f8638b-8dca-4152-9eda-2ca8b33039b4_";
        v.push(k(format!("{d}/MediaChanged2"), Val::Bool(false)));
        v.push(k(format!("{d}/Drive0"), Val::Bin(filler(152, 6))));
        if o.vram_bytes > 0 {
            let d = "/configuration/_ba8735ef-e3a9-4f1b-badd-dbf3a5909915_";
            v.push(k(format!("{d}/VDEVVersion"), Val::Int(512)));
            v.push(k(
                format!("{d}/VideoMonitor/VramContents"),
                Val::Bin(filler(o.vram_bytes, 7)),
            ));
            v.push(k(
                format!("{d}/VideoMonitor/State"),
                Val::Bin(filler(20, 8)),
            ));
        }
    }
    let s = "/savedVM";
    v.push(k(
        format!("{s}/topology/low_mmio_gap_mb"),
        Val::Int(vm.low_mmio_gap_mb),
    ));
    v.push(k(
        format!("{s}/topology/high_mmio_gap_mb"),
        Val::Int(vm.high_mmio_gap_mb),
    ));
    v.push(k(
        format!("{s}/topology/vnode_pnode_map"),
        Val::Bin(vec![0]),
    ));
    v.push(k(format!("{s}/hw_threads_per_core_realized"), Val::Int(1)));
    v.push(k(format!("{s}/guest_stop"), Val::Int(0)));
    v.push(k(format!("{s}/partition_state"), Val::Bin(partition_state)));
    v.push(k(
        format!("{s}/processor_attribute"),
        Val::Bin(vec![0, 0xFF, 0, 0xFF, 1, 0, 0, 0]),
    ));
    v.push(k(
        format!("{s}/processor/vendor"),
        Val::Int(vm.vendor.code() as i64),
    ));
    v.push(k(
        format!("{s}/processor/features/general"),
        Val::Int(vm.processor_features as i64),
    ));
    v.push(k(format!("{s}/processor/features/xsave"), Val::Int(0)));
    v.push(k(
        format!("{s}/processor/features/cache/line_flush_size"),
        Val::Int(8),
    ));
    v.push(k(
        format!("{s}/implemented_physical_address_bits"),
        Val::Int(vm.implemented_physical_address_bits as i64),
    ));
    v.push(k(
        format!("{s}/non_architectural_core_sharing"),
        Val::Int(1),
    ));
    v.push(k(format!("{s}/guest_crash_msrs"), Val::Bin(crash_msrs(vm))));
    for (p, val) in &o.extra_vsv_keys {
        v.push(k(p.clone(), val.into()));
    }
    v.retain(|key| !omitted(&key.path, &o.omit_vsv_keys));
    v
}
