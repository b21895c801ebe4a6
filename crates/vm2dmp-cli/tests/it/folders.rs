//! `vm2dmp list` and `vm2dmp convert <folder>` on VM folder trees of both Hyper-V layouts,
//! built from synthetic saved states: several VMs, nested checkpoints, a production checkpoint,
//! a damaged file, a missing .bin, guest-state files and differencing disks; and the real
//! sample laid out as a 2012 R2 checkpoint.

use crate::common::*;

use std::path::Path;

use serde_json::Value;
use vm2dmp_synth::{corrupt, write_vmrs, write_vsv_bin, KeyValue, SparsePages, SynthVm, SynthVp};

const DISK_C2: &str = "web01_6C1F2E3D-0000-4000-8000-000000000099.avhdx";

/// FILETIME of 2024-01-`day` 10:00:00 UTC.
fn filetime(day: u64) -> u64 {
    let unix = 1_704_067_200 + (day - 1) * 86_400 + 10 * 3600;
    116_444_736_000_000_000 + unix * 10_000_000
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A small guest whose page 0 says `tag`.
fn guest(tag: &str, mib: u64) -> SynthVm {
    let mut pages = SparsePages::new();
    pages.write(0, tag.as_bytes());
    pages.write(0x5000, b"second page");
    SynthVm::with_ram_mib(mib).with_pages(pages).with_vps(vec![
        SynthVp::x64_long_mode(0, 0x1AA000, 0xFFFF_F800_0000_1000, 0xFFFF_F800_0010_0000),
        SynthVp::x64_long_mode(1, 0x1AA000, 0xFFFF_F800_0000_2000, 0xFFFF_F800_0020_0000),
    ])
}

/// A `.vmrs` holding memory.
fn vmrs(path: &Path, tag: &str, mib: u64) -> vm2dmp_synth::SynthLayout {
    write_vmrs(&guest(tag, mib), path).unwrap()
}

/// A `.vmrs` without memory (a production checkpoint, a running VM's runtime state).
fn vmrs_without_memory(path: &Path) {
    let mut vm = SynthVm::with_ram_mib(1);
    vm.vmrs.omit_keys = vec!["/savedstate".into()];
    write_vmrs(&vm, path).unwrap();
}

/// A `.vmcx` configuration: an HVS file with `/configuration/...` keys only.
fn vmcx(path: &Path, keys: &[(&str, KeyValue)]) {
    let mut vm = SynthVm::with_ram_mib(1);
    vm.vmrs.omit_keys = vec!["/savedstate".into()];
    vm.vmrs.device_keys = false;
    vm.vmrs.extra_keys = keys
        .iter()
        .map(|(k, v)| (format!("/configuration/{k}"), v.clone()))
        .collect();
    write_vmrs(&vm, path).unwrap();
}

fn s(v: &str) -> KeyValue {
    KeyValue::String(v.into())
}

fn ft(day: u64) -> KeyValue {
    KeyValue::Binary(filetime(day).to_le_bytes().to_vec())
}

/// An `.xml` configuration of 2008 to 2012 R2; `utf16` writes it as Hyper-V does (UTF-16LE
/// with a byte-order mark).
fn xml(path: &Path, fields: &[(&str, &str, &str)], utf16: bool) {
    let mut x = String::from(if utf16 {
        "<?xml version=\"1.0\" encoding=\"UTF-16\" standalone=\"yes\"?>\n"
    } else {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    });
    x.push_str("<configuration>\n  <properties>\n");
    for (name, ty, value) in fields {
        x.push_str(&format!("    <{name} type=\"{ty}\">{value}</{name}>\n"));
    }
    x.push_str("  </properties>\n  <settings><devices type=\"integer\">3</devices></settings>\n</configuration>\n");
    let bytes = if utf16 {
        let mut b = vec![0xFF, 0xFE];
        for u in x.encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        b
    } else {
        x.into_bytes()
    };
    std::fs::write(path, bytes).unwrap();
}

/// Builds the test tree under `root`:
///
/// ```text
/// web01/ (2016+ layout, VM "Web01")
///   Virtual Machines/<A>.vmcx, <A>.vmrs (saved, 3 MiB), <A>.vmgs
///   Snapshots/<C1>.vmcx "Base" (memory), <C1>.vmgs
///   Snapshots/<C2>.vmcx "Patched" (parent C1, memory, names disk DISK_C2)
///   Snapshots/<C3>.vmcx "Broken" (parent C2, damaged .vmrs)
///   Snapshots/<P>.vmcx "Production" (parent C1, .vmrs without memory)
///   Virtual Hard Disks/web01.vhdx, DISK_C2, orphan.avhdx
/// legacy/ (2008-2012 R2 layout, VM "Legacy 2012")
///   Virtual Machines/<B>.xml (UTF-16), Virtual Machines/<B>/ (empty: VM off)
///   Snapshots/<S1>.xml "First" + <S1>/<S1>.vsv + .bin
///   Snapshots/<S2>.xml "Second" (parent S1) + <S2>/<S2>.vsv (the .bin is missing)
///   Snapshots/<S3>.xml "Third" (parent S2), no memory (VM was off)
/// ```
/// The host's `data.vmcx` (its list of registered VMs: root `/Configurations`, no
/// `/configuration`), trimmed after its header area the way real copies are seen: the replay
/// log region runs past the end of the file. Not a VM: `list` leaves it out.
fn host_data_vmcx(path: &Path) {
    let mut vm = SynthVm::with_ram_mib(1);
    vm.vmrs.omit_keys = vec!["/savedstate".into(), "/configuration".into()];
    vm.vmrs.device_keys = false;
    vm.vmrs.extra_keys = vec![
        ("/Configurations/FormatVersion".into(), KeyValue::Int(2)),
        (
            format!("/Configurations/VirtualMachines/_{VM_A}_"),
            s(&format!("D:\\VMs\\web01\\Virtual Machines\\{VM_A}.vmcx")),
        ),
    ];
    let layout = write_vmrs(&vm, path).unwrap();
    let log = layout.replay_log.expect("a replay log");
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(
        log.offset + log.size,
        len,
        "the log is the file's last region"
    );
    corrupt::truncate(path, log.offset + log.header_size + 0x40).unwrap();
}

fn build_tree(root: &Path) {
    host_data_vmcx(&root.join("data.vmcx"));
    let a = root.join("web01");
    let vms = mkdir(&a.join("Virtual Machines"));
    let snaps = mkdir(&a.join("Snapshots"));
    let disks = mkdir(&a.join("Virtual Hard Disks"));
    vmcx(
        &vms.join(format!("{VM_A}.vmcx")),
        &[
            ("properties/name", s("Web01")),
            ("properties/creation_time", ft(1)),
        ],
    );
    vmrs(&vms.join(format!("{VM_A}.vmrs")), "web01 saved state", 3);
    std::fs::write(vms.join(format!("{VM_A}.vmgs")), vec![0x5A; 8192]).unwrap();

    vmcx(
        &snaps.join(format!("{CP_1}.vmcx")),
        &[
            ("properties/name", s("Base")),
            ("properties/creation_time", ft(2)),
            ("properties/vm_id", s(VM_A)),
        ],
    );
    vmrs(&snaps.join(format!("{CP_1}.VMRS")), "checkpoint Base", 2);
    std::fs::write(snaps.join(format!("{CP_1}.vmgs")), vec![0x5A; 4096]).unwrap();

    vmcx(
        &snaps.join(format!("{CP_2}.vmcx")),
        &[
            ("properties/name", s("Patched")),
            ("properties/creation_time", ft(3)),
            ("properties/parent_snapshot_id", s(&format!("{{{CP_1}}}"))),
            ("properties/vm_id", s(VM_A)),
            (
                "_83f8638b-8dca-4152-9eda-2ca8b33039b4_/controller0/drive0/pathname",
                s(&format!("D:\\VMs\\web01\\Virtual Hard Disks\\{DISK_C2}")),
            ),
        ],
    );
    vmrs(&snaps.join(format!("{CP_2}.vmrs")), "checkpoint Patched", 2);

    vmcx(
        &snaps.join(format!("{CP_3}.vmcx")),
        &[
            ("properties/name", s("Broken")),
            ("properties/creation_time", ft(4)),
            ("properties/parent_snapshot_id", s(CP_2)),
            ("properties/vm_id", s(VM_A)),
        ],
    );
    let broken = snaps.join(format!("{CP_3}.vmrs"));
    let layout = vmrs(&broken, "checkpoint Broken", 2);
    let k = layout.key("/savedstate/savedVM/partition_state");
    corrupt::flip_byte(&broken, k.entry_offset + 12).unwrap();

    vmcx(
        &snaps.join(format!("{CP_PROD}.vmcx")),
        &[
            ("properties/name", s("Production")),
            ("properties/creation_time", ft(5)),
            ("properties/parent_snapshot_id", s(CP_1)),
            ("properties/vm_id", s(VM_A)),
        ],
    );
    vmrs_without_memory(&snaps.join(format!("{CP_PROD}.vmrs")));

    std::fs::write(disks.join("web01.vhdx"), b"vhdxfile").unwrap();
    std::fs::write(disks.join(DISK_C2), b"vhdxfile differencing").unwrap();
    std::fs::write(disks.join("orphan.avhdx"), b"vhdxfile differencing").unwrap();

    let b = root.join("legacy");
    let vms = mkdir(&b.join("Virtual Machines"));
    mkdir(&vms.join(VM_B));
    let snaps = mkdir(&b.join("Snapshots"));
    let created = |day| base64(&filetime(day).to_le_bytes());
    xml(
        &vms.join(format!("{VM_B}.xml")),
        &[
            ("name", "string", "Legacy 2012"),
            ("global_id", "string", VM_B),
            ("version", "integer", "1280"),
            ("creation_time", "bytes", &created(1)),
        ],
        true,
    );
    let s1 = mkdir(&snaps.join(SN_1));
    xml(
        &snaps.join(format!("{SN_1}.xml")),
        &[
            ("name", "string", "First"),
            ("creation_time", "bytes", &created(6)),
        ],
        false,
    );
    let mut vm = guest("legacy First", 2);
    vm.legacy.vram_bytes = 0;
    write_vsv_bin(
        &vm,
        s1.join(format!("{SN_1}.vsv")),
        s1.join(format!("{SN_1}.bin")),
    )
    .unwrap();
    let s2 = mkdir(&snaps.join(SN_2));
    xml(
        &snaps.join(format!("{SN_2}.xml")),
        &[
            ("name", "string", "Second"),
            ("creation_time", "bytes", &created(7)),
            ("parent_snapshot_id", "string", SN_1),
        ],
        true,
    );
    write_vsv_bin(
        &vm,
        s2.join(format!("{SN_2}.vsv")),
        s2.join(format!("{SN_2}.bin")),
    )
    .unwrap();
    std::fs::remove_file(s2.join(format!("{SN_2}.bin"))).unwrap();
    xml(
        &snaps.join(format!("{SN_3}.xml")),
        &[
            ("name", "string", "Third"),
            ("creation_time", "bytes", &created(8)),
            ("parent_snapshot_id", "string", SN_2),
        ],
        false,
    );
}

fn list_json(path: &Path) -> Value {
    let out = vm2dmp()
        .arg("list")
        .arg("--json")
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The entry of checkpoint (or VM) `name`.
fn entry<'a>(j: &'a Value, kind: &str, name: &str) -> &'a Value {
    let key = if kind == "vm" {
        "vm_name"
    } else {
        "checkpoint_name"
    };
    j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind && e[key] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {j:#}"))
}

fn lower(g: &str) -> String {
    g.to_ascii_lowercase()
}

#[test]
fn list_json_of_a_hyperv_root_with_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path());
    let j = list_json(dir.path());
    let entries = j["entries"].as_array().unwrap();

    // The host's data.vmcx is read (keys shows its trimmed log) but is not a VM.
    assert!(!entries.iter().any(|e| e["configuration"]
        .as_str()
        .is_some_and(|c| c.ends_with("data.vmcx"))));
    let out = vm2dmp()
        .args(["keys", "--json"])
        .arg(dir.path().join("data.vmcx"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(k["replay_log"]["region_past_end"], true);
    assert!(k["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "/Configurations/FormatVersion" && e["value"] == 2));

    // Web01: its saved state, four checkpoints, two guest-state files.
    let a = entry(&j, "vm", "Web01");
    assert_eq!(a["status"], "ok");
    assert_eq!(a["layout"], "vmcx");
    assert_eq!(a["vm_id"], lower(VM_A));
    assert_eq!(a["memory_bytes"], 3 << 20);
    assert_eq!(a["vcpus"], 2);
    assert_eq!(a["created"], "2024-01-01T10:00:00Z");
    assert!(a["files"][0].as_str().unwrap().ends_with(".vmrs"));

    let c1 = entry(&j, "checkpoint", "Base");
    assert_eq!(c1["status"], "ok");
    assert_eq!(c1["convertible"], true);
    assert_eq!(c1["vm_name"], "Web01");
    assert_eq!(c1["checkpoint_id"], lower(CP_1));
    assert_eq!(c1["parent_id"], Value::Null);
    assert_eq!(c1["depth"], 0);
    assert_eq!(c1["created"], "2024-01-02T10:00:00Z");
    assert_eq!(c1["memory_bytes"], 2 << 20);
    assert!(c1["configuration"].as_str().unwrap().ends_with(".vmcx"));

    let c2 = entry(&j, "checkpoint", "Patched");
    assert_eq!(c2["status"], "ok");
    assert_eq!(c2["parent_id"], lower(CP_1));
    assert_eq!(c2["parent_name"], "Base");
    assert_eq!(c2["depth"], 1);

    let c3 = entry(&j, "checkpoint", "Broken");
    assert_eq!(c3["status"], "corrupt");
    assert_eq!(c3["convertible"], false);
    assert_eq!(c3["parent_name"], "Patched");
    assert_eq!(c3["depth"], 2);
    let reason = c3["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{CP_3}.vmrs")) && reason.contains("offset 0x"),
        "{reason}"
    );

    let p = entry(&j, "checkpoint", "Production");
    assert_eq!(p["status"], "no-memory");
    assert_eq!(p["parent_name"], "Base");
    assert!(
        p["reason"]
            .as_str()
            .unwrap()
            .contains("production checkpoint"),
        "{p}"
    );

    let guest_states: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "guest-state")
        .collect();
    assert_eq!(guest_states.len(), 2);
    for g in &guest_states {
        assert_eq!(g["status"], "not-memory");
        assert_eq!(g["vm_name"], "Web01");
        assert!(g["reason"].as_str().unwrap().contains(".vmgs"));
    }

    // Legacy 2012: VM off, three checkpoints.
    let b = entry(&j, "vm", "Legacy 2012");
    assert_eq!(b["layout"], "xml");
    assert_eq!(b["status"], "no-memory");
    assert_eq!(b["vm_id"], lower(VM_B));
    let s1 = entry(&j, "checkpoint", "First");
    assert_eq!(s1["status"], "ok");
    assert_eq!(s1["vm_name"], "Legacy 2012");
    assert_eq!(s1["format"], "vsv+bin");
    assert_eq!(s1["files"].as_array().unwrap().len(), 2);
    assert_eq!(s1["created"], "2024-01-06T10:00:00Z");
    let s2 = entry(&j, "checkpoint", "Second");
    assert_eq!(s2["status"], "missing-file");
    assert!(
        s2["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{SN_2}.bin")),
        "{s2}"
    );
    assert_eq!(s2["parent_name"], "First");
    let s3 = entry(&j, "checkpoint", "Third");
    assert_eq!(s3["status"], "no-memory");
    assert_eq!(s3["depth"], 2);

    // Nothing else: disks and the empty VM folder are not entries.
    assert_eq!(entries.len(), 11, "{j:#}");
    assert_eq!(j["convertible"], 4);

    // Order: VMs by name, each VM's own state first, then its checkpoint tree.
    let order: Vec<String> = entries
        .iter()
        .filter(|e| e["kind"] != "guest-state")
        .map(|e| {
            e["checkpoint_name"]
                .as_str()
                .or(e["vm_name"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        order,
        [
            "Legacy 2012",
            "First",
            "Second",
            "Third",
            "Web01",
            "Base",
            "Patched",
            "Broken",
            "Production"
        ]
    );
}

#[test]
fn list_text_of_a_vm_folder_and_of_single_files() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path());
    let out = vm2dmp()
        .arg("list")
        .arg(dir.path().join("web01"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("1 VM, 4 checkpoints, 3 memory images to convert"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "VM \"Web01\" {{{}}} (2016+ layout, .vmcx)",
            lower(VM_A)
        )),
        "{text}"
    );
    assert!(text.contains("checkpoint \"Patched\""), "{text}");
    assert!(text.contains("parent \"Base\""), "{text}");
    assert!(text.contains("no-memory"), "{text}");
    assert!(text.contains("corrupt"), "{text}");
    assert!(text.contains("--checkpoint NAME|GUID"), "{text}");
    assert!(!text.contains('\x1b'), "NO_COLOR: {text}");

    // One memory file: named from its configuration.
    let j = list_json(&dir.path().join(format!("web01/Snapshots/{CP_2}.vmrs")));
    let e = j["entries"].as_array().unwrap();
    assert_eq!(e.len(), 1, "{j:#}");
    assert_eq!(e[0]["checkpoint_name"], "Patched");
    assert_eq!(e[0]["vm_name"], "Web01");
    // One configuration file.
    let j = list_json(&dir.path().join(format!("legacy/Snapshots/{SN_1}.xml")));
    assert_eq!(j["entries"][0]["checkpoint_name"], "First");
    assert_eq!(j["entries"][0]["status"], "ok");
    // A differencing disk: the checkpoint whose configuration names it.
    let j = list_json(&dir.path().join("web01/Virtual Hard Disks").join(DISK_C2));
    assert_eq!(j["entries"][0]["checkpoint_name"], "Patched");
    let j = list_json(&dir.path().join("web01/Virtual Hard Disks/orphan.avhdx"));
    assert_eq!(j["entries"][0]["kind"], "disk");
    assert_eq!(j["entries"][0]["status"], "not-memory");
    // A bare saved state without any configuration.
    let j = list_json(&sample("test_file.VMRS"));
    assert_eq!(j["entries"][0]["kind"], "saved-state");
    assert_eq!(j["entries"][0]["memory_bytes"], 64512 * 4096);
    // The sample folder: the .VMRS and the .vsv/.bin pair share a name and are two states.
    let j = list_json(&sample(""));
    let e = j["entries"].as_array().unwrap();
    assert_eq!(e.len(), 2, "{j:#}");
    assert_eq!(e[0]["format"], "vmrs");
    assert_eq!(e[1]["format"], "vsv+bin");
    assert_eq!(e[1]["files"].as_array().unwrap().len(), 2);

    // A path that does not exist: exit 2, one line.
    let out = vm2dmp()
        .arg("list")
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn convert_a_vm_folder_by_checkpoint_name_guid_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path());
    let web01 = dir.path().join("web01");
    let out_dir = mkdir(&dir.path().join("out"));

    // Several memory images: a choice is needed.
    let out = vm2dmp()
        .arg("convert")
        .arg(&web01)
        .arg(out_dir.join("x.dmp"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--checkpoint") && err.contains("\"Web01 / Patched\""),
        "{err}"
    );
    assert!(!out_dir.join("x.dmp").exists());

    // By name.
    let dump = out_dir.join("patched.dmp");
    vm2dmp()
        .arg("convert")
        .arg(&web01)
        .args(["--checkpoint", "Patched"])
        .arg(&dump)
        .assert()
        .success();
    vm2dmp()
        .arg("verify")
        .arg(&dump)
        .arg(web01.join(format!("Snapshots/{CP_2}.vmrs")))
        .assert()
        .success();
    // By GUID, with braces, any case: the VM's own saved state.
    let dump_vm = out_dir.join("vm.dmp");
    vm2dmp()
        .arg("convert")
        .arg(&web01)
        .args(["--checkpoint", &format!("{{{}}}", VM_A.to_lowercase())])
        .arg(&dump_vm)
        .assert()
        .success();
    vm2dmp()
        .arg("verify")
        .arg(&dump_vm)
        .arg(web01.join(format!("Virtual Machines/{VM_A}.vmrs")))
        .assert()
        .success();

    // No memory, damaged, unknown: exit 2 with one line each.
    for (sel, want) in [
        ("Production", "production checkpoint"),
        ("Broken", "offset 0x"),
        ("Nope", "no VM or checkpoint named \"Nope\""),
    ] {
        let out = vm2dmp()
            .arg("convert")
            .arg(&web01)
            .args(["--checkpoint", sel])
            .arg(out_dir.join("y.dmp"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{sel}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{sel}: {err}");
    }
    assert!(!out_dir.join("y.dmp").exists());

    // A differencing disk: the memory of the checkpoint whose configuration names it.
    let dump_disk = out_dir.join("disk.dmp");
    vm2dmp()
        .arg("convert")
        .arg(web01.join("Virtual Hard Disks").join(DISK_C2))
        .arg(&dump_disk)
        .assert()
        .success()
        .stderr(predicates::str::contains("Web01 / Patched"));
    assert_eq!(
        std::fs::read(&dump_disk).unwrap(),
        std::fs::read(&dump).unwrap(),
        "the same checkpoint gives the same dump"
    );
    vm2dmp()
        .arg("verify")
        .arg(&dump_disk)
        .arg(web01.join(format!("Snapshots/{CP_2}.vmrs")))
        .assert()
        .success();
    // A disk no configuration names: one line saying a disk holds no memory and where it is.
    let out = vm2dmp()
        .arg("convert")
        .arg(web01.join("Virtual Hard Disks/orphan.avhdx"))
        .arg(out_dir.join("z.dmp"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("orphan.avhdx")
            && err.contains("disk contents, never memory")
            && err.contains("Snapshots/<GUID>.vmrs"),
        "{err}"
    );

    // 2012 R2 layout: by name; the checkpoint whose .bin is missing fails with exit 2.
    let legacy = dir.path().join("legacy");
    let dump_first = out_dir.join("first.dmp");
    vm2dmp()
        .arg("convert")
        .arg(&legacy)
        .args(["--checkpoint", "first", "-q"])
        .arg(&dump_first)
        .assert()
        .success()
        .stderr("");
    let out = vm2dmp()
        .arg("convert")
        .arg(&legacy)
        .args(["--checkpoint", "Second"])
        .arg(out_dir.join("second.dmp"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{SN_2}.bin")), "{err}");
}

/// The real sample pair laid out as a 2012 R2 checkpoint of a VM, converted by folder path.
#[test]
fn real_sample_as_a_2012_r2_checkpoint_folder() {
    let dir = tempfile::tempdir().unwrap();
    let vm = dir.path().join("Sample VM");
    let vms = mkdir(&vm.join("Virtual Machines"));
    let snap_dir = mkdir(&vm.join("Snapshots").join(SN_1));
    std::fs::copy(
        sample("test_file.vsv"),
        snap_dir.join(format!("{SN_1}.vsv")),
    )
    .unwrap();
    std::fs::copy(
        sample("test_file.bin"),
        snap_dir.join(format!("{SN_1}.bin")),
    )
    .unwrap();
    xml(
        &vms.join(format!("{VM_B}.xml")),
        &[("name", "string", "Sample"), ("version", "integer", "1280")],
        true,
    );
    xml(
        &vm.join("Snapshots").join(format!("{SN_1}.xml")),
        &[
            ("name", "string", "In the BIOS"),
            (
                "creation_time",
                "bytes",
                &base64(&filetime(9).to_le_bytes()),
            ),
        ],
        true,
    );
    let j = list_json(&vm);
    let cp = entry(&j, "checkpoint", "In the BIOS");
    assert_eq!(cp["status"], "ok");
    assert_eq!(cp["vm_name"], "Sample");
    assert_eq!(cp["memory_bytes"], 64512 * 4096);
    assert_eq!(cp["vcpus"], 4);

    let dump = dir.path().join("sample.dmp");
    let out = vm2dmp()
        .args(["convert", "--json"])
        .arg(&vm)
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["pages_written"], 64512);
    assert_eq!(r["bytes"], 0x1000 + 64512 * 4096);
    assert!(r["input"][0]
        .as_str()
        .unwrap()
        .ends_with(&format!("{SN_1}.vsv")));
    vm2dmp()
        .arg("verify")
        .arg(&dump)
        .arg(sample("test_file.vsv"))
        .assert()
        .success();
}

/// Damaged, hostile and unexpected files never stop a listing.
#[test]
fn hostile_files_in_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let vms = mkdir(&root.join("Virtual Machines"));
    let snaps = mkdir(&root.join("Snapshots"));
    // A .vmcx that is not HVS, a truncated one, XML that is not a configuration, broken XML,
    // XML with a DTD (entity expansion refused), an empty .vmrs, a .vmrs of random bytes.
    std::fs::write(vms.join(format!("{VM_A}.vmcx")), b"not an hvs file at all").unwrap();
    let trunc = snaps.join(format!("{CP_1}.vmcx"));
    vmcx(&trunc, &[("properties/name", s("Truncated"))]);
    corrupt::truncate(&trunc, 9000).unwrap();
    vmrs(&snaps.join(format!("{CP_1}.vmrs")), "cp1", 1);
    std::fs::write(root.join("notes.xml"), "<notes><a>1</a></notes>").unwrap();
    std::fs::write(
        snaps.join(format!("{CP_2}.xml")),
        "<configuration><properties><name>",
    )
    .unwrap();
    std::fs::write(
        snaps.join(format!("{CP_3}.xml")),
        "<?xml version=\"1.0\"?><!DOCTYPE c [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><configuration><properties><name>&b;</name></properties></configuration>",
    )
    .unwrap();
    std::fs::write(snaps.join(format!("{CP_PROD}.vmrs")), b"").unwrap();
    std::fs::write(
        snaps.join(format!("{SN_1}.vmrs")),
        (0..20000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(root.join("random.bin"), vec![7u8; 5000]).unwrap();
    // A checkpoint whose .vsv is fine and whose .bin is garbage: one entry naming the .bin.
    let pair = mkdir(&snaps.join(SN_2));
    write_vsv_bin(
        &guest("pair", 1),
        pair.join(format!("{SN_2}.vsv")),
        pair.join(format!("{SN_2}.bin")),
    )
    .unwrap();
    std::fs::write(pair.join(format!("{SN_2}.bin")), vec![0x11u8; 9000]).unwrap();
    // A checkpoint whose configuration asks for encrypted state, with unreadable memory.
    vmcx(
        &snaps.join(format!("{SN_3}.vmcx")),
        &[
            ("properties/name", s("Shielded")),
            (
                "security/settings/shielding_requested",
                KeyValue::Bool(true),
            ),
        ],
    );
    std::fs::write(snaps.join(format!("{SN_3}.vmrs")), vec![0xA5u8; 12288]).unwrap();

    let j = list_json(root);
    let entries = j["entries"].as_array().unwrap();
    let cp1 = entries
        .iter()
        .find(|e| e["checkpoint_id"] == lower(CP_1))
        .unwrap();
    // The checkpoint's memory is fine; its configuration could not be read.
    assert_eq!(cp1["status"], "ok");
    assert!(
        cp1["notes"][0]
            .as_str()
            .unwrap()
            .contains("could not be read"),
        "{cp1}"
    );
    let cp2 = entries
        .iter()
        .find(|e| e["checkpoint_id"] == lower(CP_2))
        .unwrap();
    assert_eq!(cp2["status"], "unreadable");
    let cp3 = entries
        .iter()
        .find(|e| e["checkpoint_id"] == lower(CP_3))
        .unwrap();
    assert_eq!(cp3["status"], "unreadable", "{cp3}");
    for id in [CP_PROD, SN_1] {
        let e = entries
            .iter()
            .find(|e| e["checkpoint_id"] == lower(id))
            .unwrap_or_else(|| panic!("{id}: {j:#}"));
        assert_eq!(e["status"], "unreadable", "{e}");
        assert!(e["reason"].as_str().unwrap().contains("signature"), "{e}");
    }
    // A .vmcx that is not an HVS file: the VM is listed with the reason.
    let vm = entries
        .iter()
        .find(|e| e["vm_id"] == lower(VM_A) && e["kind"] == "vm")
        .unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(vm["status"], "unreadable");
    assert!(
        vm["reason"].as_str().unwrap().contains("could not be read"),
        "{vm}"
    );
    let pair: Vec<&Value> = entries
        .iter()
        .filter(|e| e["checkpoint_id"] == lower(SN_2))
        .collect();
    assert_eq!(pair.len(), 1, "{j:#}");
    assert_eq!(pair[0]["status"], "corrupt", "{}", pair[0]);
    assert!(
        pair[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{SN_2}.bin")),
        "{}",
        pair[0]
    );
    let shielded = entry(&j, "checkpoint", "Shielded");
    assert_eq!(shielded["status"], "encrypted", "{shielded}");
    assert!(
        shielded["reason"].as_str().unwrap().contains("encrypted"),
        "{shielded}"
    );
    // random.bin has no GUID name and no .vsv: not a saved state, not listed.
    assert!(!entries
        .iter()
        .any(|e| e["files"].to_string().contains("random.bin")));
}

/// A configuration given where a saved state is expected: `info` says what it is and where
/// the memory would be; `keys` shows its keys.
#[test]
fn info_and_keys_of_a_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join(format!("{VM_A}.vmcx"));
    vmcx(
        &cfg,
        &[
            ("properties/name", s("Web01")),
            ("properties/creation_time", ft(3)),
        ],
    );
    let out = vm2dmp().arg("info").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("is a VM or checkpoint configuration (.vmcx), not a saved state")
            && err.contains("vm2dmp keys"),
        "{err}"
    );
    let out = vm2dmp()
        .args(["keys", "--prefix", "/configuration/properties/"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("/configuration/properties/creation_time [binary, 8 bytes at "));
    assert!(lines[0].ends_with(&hex8(filetime(3))), "{text}");
    assert!(lines[1].starts_with("/configuration/properties/name [string, 10 bytes at "));
    assert!(lines[1].ends_with(" \"Web01\""), "{text}");
    // The synthetic writer's own version key (0x900).
    assert!(
        lines[2].starts_with("/configuration/properties/version [int, 8 bytes at ")
            && lines[2].ends_with(" 2304"),
        "{text}"
    );
}

fn hex8(v: u64) -> String {
    v.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A tree with more files than discovery reads (200,000) in a sub-folder: an error naming
/// the folder, not a listing that silently leaves out what comes after it.
#[test]
fn too_many_files_below_a_sub_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    vmcx(
        &mkdir(&root.join("a/Virtual Machines")).join(format!("{VM_A}.vmcx")),
        &[("properties/name", s("First"))],
    );
    let many = mkdir(&root.join("m"));
    for i in 0..200_001 {
        std::fs::File::create(many.join(format!("{i}"))).unwrap();
    }
    vmcx(
        &mkdir(&root.join("z/Virtual Machines")).join(format!("{VM_B}.vmcx")),
        &[("properties/name", s("Last"))],
    );
    let out = vm2dmp()
        .args(["list", "--json"])
        .arg(root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("more than 200000 files"), "{err}");
}
