//! The real Hyper-V sample (testdata/hyperv-sample) must give every answer in expected.json:
//! what Microsoft's saved-state DLL returns, and facts derived from the bytes.

use std::path::PathBuf;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use vm2dmp::{
    hyperv::InputFormat, hyperv::BLOCK_SIZE, source::Architecture, source::PagingMode, CpuState,
    SavedState,
};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}

fn expected() -> Json {
    let text = std::fs::read_to_string(sample("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex_u64(v: &Json) -> u64 {
    let s = v.as_str().unwrap();
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn open_vmrs() -> SavedState {
    SavedState::open(sample("test_file.VMRS")).unwrap()
}

fn open_vsv() -> SavedState {
    SavedState::open(sample("test_file.vsv")).unwrap()
}

#[test]
fn dll_answers_on_both_file_sets() {
    let exp = expected();
    let dll = &exp["dll_known_answers"];
    for (state, format) in [
        (open_vmrs(), InputFormat::Vmrs),
        (open_vsv(), InputFormat::VsvBin),
    ] {
        assert_eq!(state.format(), format);
        assert_eq!(
            state.vcpus().len() as u64,
            dll["vp_count"]["expected"].as_u64().unwrap()
        );
        for vp in state.vcpus() {
            // The DLL reports X86 / Bit32 for every VP.
            assert_eq!(vp.architecture(), Architecture::X86);
            assert_eq!(vp.paging_mode(), PagingMode::Bit32);
            let ecx = dll["register_ecx"]["vp_iterator_vmrs_only"][vp.index.to_string()]
                .as_u64()
                .unwrap();
            assert_eq!(vp.rcx & 0xFFFF_FFFF, ecx, "ECX of VP {}", vp.index);
        }
        assert_eq!(
            state.vcpus()[0].rcx as u32,
            dll["register_ecx"]["vp0"].as_u64().unwrap() as u32
        );
        let chunks = dll["guest_physical_memory_chunks"]["chunks"]
            .as_array()
            .unwrap();
        assert_eq!(state.memory_ranges().len(), chunks.len());
        for (r, c) in state.memory_ranges().iter().zip(chunks) {
            assert_eq!(
                r.gpa_page_start,
                c["guest_physical_start_page_index"].as_u64().unwrap()
            );
            assert_eq!(r.page_count, c["page_count"].as_u64().unwrap());
        }
        let raw = &dll["guest_raw_saved_memory"];
        let summary = state.summary().unwrap();
        assert_eq!(
            summary.raw_saved_memory_size,
            raw["size_bytes"].as_u64().unwrap()
        );
        assert_eq!(
            state.gpa_to_raw_offset(0xC0FFE),
            Some(hex_u64(&raw["gpa_0xC0FFE_to_raw_offset"]))
        );
        let read = &dll["read_guest_physical_address"];
        let mut buf = [0u8; 12];
        state.read_phys(hex_u64(&read["gpa"]), &mut buf).unwrap();
        let got: Vec<u64> = buf
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
            .collect();
        let want: Vec<u64> = read["u32_le_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(got, want);
    }
}

fn check_registers(vp: &CpuState, e: &Json) {
    let fields: [(&str, u64); 20] = [
        ("rax", vp.rax),
        ("rcx", vp.rcx),
        ("rdx", vp.rdx),
        ("rbx", vp.rbx),
        ("rsp", vp.rsp),
        ("rbp", vp.rbp),
        ("rsi", vp.rsi),
        ("rdi", vp.rdi),
        ("rip", vp.rip),
        ("rflags", vp.rflags),
        ("cr0", vp.cr0),
        ("cr2", vp.cr2),
        ("cr3", vp.cr3),
        ("cr4", vp.cr4),
        ("cr8", vp.cr8),
        ("efer", vp.efer),
        ("dr6", vp.dr6),
        ("dr7", vp.dr7),
        ("ldtr_attributes", vp.ldtr.attributes as u64),
        ("tr_attributes", vp.tr.attributes as u64),
    ];
    for (name, got) in fields {
        assert_eq!(got, hex_u64(&e[name]), "VP {} {name}", vp.index);
    }
    for (name, seg) in [("cs", vp.cs), ("ss", vp.ss)] {
        assert_eq!(seg.base, hex_u64(&e[name]["base"]), "{name}.base");
        assert_eq!(seg.limit as u64, hex_u64(&e[name]["limit"]), "{name}.limit");
        assert_eq!(
            seg.selector as u64,
            hex_u64(&e[name]["selector"]),
            "{name}.selector"
        );
        assert_eq!(
            seg.attributes as u64,
            hex_u64(&e[name]["attributes"]),
            "{name}.attributes"
        );
    }
    for (name, t) in [("idtr", vp.idtr), ("gdtr", vp.gdtr)] {
        assert_eq!(t.base, hex_u64(&e[name]["base"]), "{name}.base");
        assert_eq!(t.limit as u64, hex_u64(&e[name]["limit"]), "{name}.limit");
    }
    assert_eq!(vp.cpl as u64, e["cpl"].as_u64().unwrap());
    assert!(!vp.paging_enabled(), "the sample's VPs are in real mode");
}

#[test]
fn derived_registers_of_every_vp() {
    let exp = expected();
    for (state, key) in [(open_vmrs(), "vmrs"), (open_vsv(), "vsv")] {
        let want = exp["derived"]["registers"][key].as_array().unwrap();
        assert_eq!(state.vcpus().len(), want.len());
        for (vp, e) in state.vcpus().iter().zip(want) {
            assert_eq!(vp.index as u64, e["vp"].as_u64().unwrap());
            check_registers(vp, e);
        }
        assert!(state.higher_vtl_vcpus().is_empty());
        let ps = state.partition_state();
        let chunks = exp["derived"]["partition_state"][key]["chunks"]
            .as_u64()
            .unwrap();
        assert_eq!(ps.chunks as u64, chunks);
        assert_eq!(ps.boot_vp, Some(0));
        assert_eq!(ps.vp_indices_count, Some(4));
        assert_eq!(
            ps.vendor,
            exp["derived"]["partition_state"]["prolog_vendor"]
                .as_u64()
                .map(|v| v as u32)
        );
    }
}

/// SHA-256 of the concatenated decoded RAM blocks.
fn raw_memory_sha256(state: &SavedState) -> (String, Vec<u8>) {
    let mut h = Sha256::new();
    let mut block = vec![0u8; BLOCK_SIZE];
    let mut page_hashes = Vec::new();
    for n in 0..state.ram_block_count() {
        state.decode_block(n, &mut block).unwrap();
        h.update(&block);
        for p in block.chunks_exact(4096) {
            page_hashes.extend_from_slice(&Sha256::digest(p)[..8]);
        }
    }
    (format!("{:x}", h.finalize()), page_hashes)
}

#[test]
fn decoded_ram_hashes_token_counts_and_differences() {
    let exp = expected();
    let ram = &exp["derived"]["ram"];
    let vmrs = open_vmrs();
    let vsv = open_vsv();
    let (vmrs_sha, vmrs_pages) = raw_memory_sha256(&vmrs);
    let (bin_sha, bin_pages) = raw_memory_sha256(&vsv);
    assert_eq!(
        vmrs_sha,
        ram["vmrs_raw_saved_memory_sha256"].as_str().unwrap()
    );
    assert_eq!(
        bin_sha,
        ram["bin_raw_saved_memory_sha256"].as_str().unwrap()
    );
    assert_eq!(
        vmrs.ram_block_count() * BLOCK_SIZE,
        ram["decoded_size_bytes"].as_u64().unwrap() as usize
    );

    let differing: Vec<String> = (0..vmrs_pages.len() / 8)
        .filter(|i| vmrs_pages[i * 8..i * 8 + 8] != bin_pages[i * 8..i * 8 + 8])
        .map(|i| format!("{i:#x}"))
        .collect();
    let want: Vec<String> = ram["pages_differing_between_vmrs_and_bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(differing, want);

    for (state, key) in [(&vmrs, "vmrs_token_counts"), (&vsv, "bin_token_counts")] {
        let s = state.encoding_stats().unwrap();
        let c = &ram[key];
        assert_eq!(s.compressed_pages, c["page_lz77"].as_u64().unwrap());
        assert_eq!(s.fill_zero_pages, c["fill1_zero"].as_u64().unwrap());
        assert_eq!(s.fill_pattern_pages, c["fill1_nonzero"].as_u64().unwrap());
        assert_eq!(s.raw_pages, c["page_raw"].as_u64().unwrap());
        assert_eq!((s.raw_blocks, s.sized_tokens, s.trailing_bytes), (0, 0, 0));
    }

    let mut page = vec![0u8; 4096];
    vmrs.read_phys(0xC0000, &mut page).unwrap();
    assert_eq!(
        format!("{:x}", Sha256::digest(&page)),
        ram["page_0xC0_sha256"].as_str().unwrap()
    );
    let mut twelve = [0u8; 12];
    vmrs.read_phys(0xC0FFE, &mut twelve).unwrap();
    let hex: Vec<String> = twelve.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex.join(" "),
        ram["bytes_at_gpa_0xC0FFE_len12_hex"].as_str().unwrap()
    );
    let nonzero = {
        let mut n = 0u64;
        let mut it = vmrs.pages();
        while let Some(p) = it.next() {
            let (_, bytes) = p.unwrap();
            n += bytes.iter().any(|&b| b != 0) as u64;
        }
        n
    };
    assert_eq!(nonzero, ram["vmrs_nonzero_pages"].as_u64().unwrap());
}

#[test]
fn summary_and_metadata() {
    let exp = expected();
    let s = open_vmrs().summary().unwrap();
    let c = &exp["derived"]["vmrs_container"];
    assert_eq!(
        s.vm_version,
        Some(
            c["vm_version_key"]["/savedstate/VmVersion"]
                .as_u64()
                .unwrap() as u32
        )
    );
    assert_eq!(s.saved_state_type.as_deref(), c["savedstate_type"].as_str());
    assert_eq!(
        s.worker_process_version.as_deref(),
        c["vmwp_version"].as_str()
    );
    assert_eq!(s.low_mmio_gap_mb, c["topology"]["low_mmio_gap_mb"].as_i64());
    assert_eq!(
        s.high_mmio_gap_mb,
        c["topology"]["high_mmio_gap_mb"].as_i64()
    );
    assert_eq!(s.ram_blocks, 252);
    assert_eq!(s.ram_bytes, 264_241_152);
    assert_eq!(s.replay_log.pending_entries, 0);
    assert_eq!(s.guest_crash_msrs, None);
    let l = open_vsv().summary().unwrap();
    assert_eq!(l.vm_version, None);
    assert_eq!(l.files.len(), 2);
    assert_eq!(l.low_mmio_gap_mb, Some(128));
}

#[test]
fn a_bin_finds_its_vsv_and_holes_are_errors() {
    let state = SavedState::open(sample("test_file.bin")).unwrap();
    assert_eq!(state.format(), InputFormat::VsvBin);
    let mut b = [0u8; 16];
    // The last 8 bytes of RAM, then past it.
    state.read_phys(252 * 1024 * 1024 - 8, &mut b[..8]).unwrap();
    let e = state.read_phys(252 * 1024 * 1024 - 8, &mut b).unwrap_err();
    assert!(
        matches!(e, vm2dmp::Error::Hole { gpa } if gpa == 252 * 1024 * 1024),
        "{e}"
    );
    assert!(state.read_phys(u64::MAX - 3, &mut b).is_err());
}

#[test]
fn missing_files_are_clear_errors() {
    let e = SavedState::open(sample("no_such_file.vmrs")).unwrap_err();
    assert!(e.to_string().contains("no_such_file.vmrs"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let vsv = dir.path().join("lonely.vsv");
    std::fs::copy(sample("test_file.vsv"), &vsv).unwrap();
    let e = SavedState::open(&vsv).unwrap_err();
    assert!(matches!(e, vm2dmp::Error::MissingBin { .. }), "{e}");
    assert!(e.is_input_error());
    // Any case of the extension is found.
    std::fs::copy(sample("test_file.bin"), dir.path().join("lonely.BIN")).unwrap();
    assert_eq!(SavedState::open(&vsv).unwrap().vcpus().len(), 4);
}
