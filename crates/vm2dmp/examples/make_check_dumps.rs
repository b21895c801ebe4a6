//! Writes synthetic saved states, converts them, and writes a manifest of what every guest page
//! must read as, for `scripts/check-with-volatility.py` (outside readers: volatility3 and the
//! kdmp-parser Python package).
//!
//! Usage: `cargo run -p vm2dmp --example make_check_dumps -- OUT_DIR [QEMU_DUMPS_DIR]` (the
//! second folder as `scripts/capture-qemu-dumps.sh` writes it; without it the real QEMU
//! inputs are left out)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vm2dmp::input::{Input, OpenOptions};
use vm2dmp::raw::{MemoryMap, RawOptions};
use vm2dmp::{convert, Cancel, ConvertOptions, DumpFormat, MemorySource, NoProgress, SavedState};
use vm2dmp_synth::{
    write_vmrs, write_vsv_bin, BlockEncoding, MixedContent, PagePolicy, SynthRange, SynthVm,
    SynthVp,
};

const MIB_PAGES: u64 = 256;

fn x64_vm() -> SynthVm {
    let vps = (0..4)
        .map(|i| {
            SynthVp::x64_long_mode(
                i,
                0x1AA000,
                0xFFFF_F800_0000_1000 + u64::from(i),
                0xFFFF_F800_0010_0000,
            )
        })
        .collect();
    let mut vm = SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 3 * MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: 8 * MIB_PAGES,
            page_count: 2 * MIB_PAGES,
        },
        // Past 4 GiB, and enough RAM that even the dump without zero pages is over 16 MiB
        // (LeechCore, MemProcFS's reader, refuses smaller files).
        SynthRange {
            gpa_page_start: 0x10_0000,
            page_count: 21 * MIB_PAGES,
        },
    ])
    .with_pages(MixedContent { seed: 11 })
    .with_vps(vps)
    .with_encoding(BlockEncoding::Tokens(PagePolicy::Mixed));
    vm.block_encoding.insert(1, BlockEncoding::RawBlock);
    vm
}

fn x86_vm() -> SynthVm {
    SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 2 * MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: 0x1_0000,
            page_count: 18 * MIB_PAGES,
        },
    ])
    .with_pages(MixedContent { seed: 12 })
    .with_vps(vec![SynthVp::x86_pae(
        0,
        0x1000_0020,
        0x8040_1000,
        0x8080_0000,
    )])
}

/// A VM stopped in its firmware (real mode) with RAM above 4 GiB: a 32-bit dump without PAE
/// whose runs go past 4 GiB.
fn bios_vm() -> SynthVm {
    let mut vm = SynthVm::new(vec![
        SynthRange {
            gpa_page_start: 0,
            page_count: 2 * MIB_PAGES,
        },
        SynthRange {
            gpa_page_start: 0x10_0000,
            page_count: 16 * MIB_PAGES,
        },
    ])
    .with_pages(MixedContent { seed: 13 });
    vm.vps = vec![SynthVp::real_mode(0, 0xF000, 0xFFF0)];
    vm
}

/// One manifest entry: the dump and, for every guest page, its SHA-256 (or null when the
/// dump leaves it out because it is all zero).
fn entry(
    state: &dyn MemorySource,
    dump: &Path,
    arch: &str,
    bitmap: bool,
    skip_zero: bool,
) -> String {
    let mut pages = String::new();
    let mut bytes = vec![0u8; 4096];
    for r in state.ram_ranges() {
        for pfn in r.gpa_page_start..r.gpa_page_end() {
            state.read_phys(pfn << 12, &mut bytes).expect("page");
            if !pages.is_empty() {
                pages.push(',');
            }
            if skip_zero && bytes.iter().all(|&b| b == 0) {
                let _ = write!(pages, "\"{pfn:#x}\":null");
            } else {
                let _ = write!(pages, "\"{pfn:#x}\":\"{:x}\"", Sha256::digest(&bytes));
            }
        }
    }
    let holes: Vec<String> = state
        .ram_ranges()
        .iter()
        .map(|r| format!("\"{:#x}\"", r.gpa_end()))
        .collect();
    let boot = state.boot_vcpu().copied().unwrap_or_default();
    format!(
        "{{\"path\":{:?},\"arch\":\"{arch}\",\"bitmap\":{bitmap},\"dtb\":\"{:#x}\",\"rip\":\"{:#x}\",\"holes\":[{}],\"pages\":{{{pages}}}}}",
        dump.display().to_string(),
        boot.cr3,
        boot.rip,
        holes.join(",")
    )
}

fn main() {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/check-dumps"));
    std::fs::create_dir_all(&out).expect("output folder");
    let mut entries = Vec::new();
    let x64 = x64_vm();
    write_vmrs(&x64, out.join("x64.vmrs")).expect("write x64.vmrs");
    write_vsv_bin(&x64, out.join("x64.vsv"), out.join("x64.bin")).expect("write x64.vsv");
    let x86 = x86_vm();
    write_vmrs(&x86, out.join("x86pae.vmrs")).expect("write x86pae.vmrs");
    write_vmrs(&bios_vm(), out.join("bios.vmrs")).expect("write bios.vmrs");
    let cases: [(&str, &str, &str, DumpFormat, bool); 6] = [
        ("bios.vmrs", "bios-full.dmp", "x86", DumpFormat::Full, false),
        ("x64.vmrs", "x64-full.dmp", "x64", DumpFormat::Full, false),
        (
            "x64.vsv",
            "x64-bitmap.dmp",
            "x64",
            DumpFormat::Bitmap,
            false,
        ),
        (
            "x64.vmrs",
            "x64-skipzero.dmp",
            "x64",
            DumpFormat::Bitmap,
            true,
        ),
        (
            "x86pae.vmrs",
            "x86pae-full.dmp",
            "x86",
            DumpFormat::Full,
            false,
        ),
        (
            "x86pae.vmrs",
            "x86pae-skipzero.dmp",
            "x86",
            DumpFormat::Bitmap,
            true,
        ),
    ];
    for (input, dump, arch, format, skip_zero) in cases {
        let state = SavedState::open(out.join(input)).expect("open input");
        let path = out.join(dump);
        let opts = ConvertOptions {
            format,
            skip_zero,
            force: true,
            ..ConvertOptions::default()
        };
        convert(&state, &path, &opts, &NoProgress, &Cancel::new()).expect("convert");
        entries.push(entry(
            &state,
            &path,
            arch,
            format == DumpFormat::Bitmap,
            skip_zero,
        ));
    }
    // Other input formats: a synthetic VMware checkpoint, and (when captured, as CI does) the
    // real QEMU ELF core, kdump-compressed file and pmemsave raw image of one OVMF guest.
    let vmware = out.join("vmware.vmss");
    vmware_guest()
        .write(&vmware, Some(&out.join("vmware.vmem")))
        .expect("write vmware.vmss");
    let mut others: Vec<(PathBuf, OpenOptions, &str, DumpFormat, bool)> = vec![(
        vmware,
        OpenOptions::default(),
        "vmware-full.dmp",
        DumpFormat::Full,
        false,
    )];
    let qemu = std::env::args_os().nth(2).map(PathBuf::from);
    if let Some(q) = qemu.filter(|q| q.join("ovmf.elf").is_file()) {
        let raw = RawOptions {
            map: Some(
                MemoryMap::parse("0x0-0xfffffff,0x30000000-0x3fffffff,0x100000000-0x11fffffff")
                    .expect("map"),
            ),
            ..RawOptions::default()
        };
        others.extend([
            (
                q.join("ovmf.elf"),
                OpenOptions::default(),
                "qemu-elf-skipzero.dmp",
                DumpFormat::Bitmap,
                true,
            ),
            (
                q.join("ovmf.kdump-zlib"),
                OpenOptions::default(),
                "qemu-kdump-skipzero.dmp",
                DumpFormat::Bitmap,
                true,
            ),
            (
                q.join("ovmf.raw"),
                OpenOptions {
                    raw: Some(raw),
                    ..OpenOptions::default()
                },
                "qemu-raw-skipzero.dmp",
                DumpFormat::Bitmap,
                true,
            ),
        ]);
    }
    for (input, open, dump, format, skip_zero) in others {
        let state = Input::open(&input, &open).expect("open input");
        let path = out.join(dump);
        let opts = ConvertOptions {
            format,
            skip_zero,
            force: true,
            ..ConvertOptions::default()
        };
        let report = convert(&state, &path, &opts, &NoProgress, &Cancel::new()).expect("convert");
        let arch = match report.architecture {
            vm2dmp::source::Architecture::X64 => "x64",
            _ => "x86",
        };
        entries.push(entry(
            &state,
            &path,
            arch,
            format == DumpFormat::Bitmap,
            skip_zero,
        ));
    }

    let manifest = out.join("manifest.json");
    std::fs::write(
        &manifest,
        format!("{{\"dumps\":[{}]}}\n", entries.join(",\n")),
    )
    .expect("write manifest");
    println!("{}", manifest.display());
}

/// A VMware checkpoint of 4 x64 vCPUs with 20 MiB below the hole and 8 MiB above 4 GiB
/// (LeechCore refuses dumps under 16 MiB).
fn vmware_guest() -> vm2dmp_synth::vmware::Guest {
    use vm2dmp_synth::vmware::{Guest, Region};
    let mut g = Guest::small(4);
    g.regions = vec![
        Region {
            gpa_page: 0,
            vmem_page: 0,
            pages: 20 * MIB_PAGES,
        },
        Region {
            gpa_page: 0x10_0000,
            vmem_page: 20 * MIB_PAGES,
            pages: 8 * MIB_PAGES,
        },
    ];
    g
}
