//! `vm2dmp info`: what a saved state holds.

use std::fmt::Write as _;

use vm2dmp::info::InfoReport;
use vm2dmp::input::Input;
use vm2dmp::{hyperv::EncodingStats, hyperv::Summary, CpuState, MemorySource, SavedState};

use crate::args::InputArgs;
use crate::shared::to_json;
use crate::CliError;

pub(crate) fn run(
    args: &InputArgs,
    json: bool,
    symbols: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let opts = args.open_options().map_err(CliError::Usage)?;
    let input = Input::open(&args.input, &opts).map_err(|e| match e {
        // A configuration or a running VM's state: say where to look instead.
        vm2dmp::Error::NoMemoryImage { path, detail } => vm2dmp::Error::NoMemoryImage {
            detail: format!(
                "{detail}; `vm2dmp keys {}` lists what it holds",
                path.display()
            ),
            path,
        },
        e => e,
    })?;
    let kernel = vm2dmp::guest::find_kernel(&input, symbols);
    if json {
        println!("{}", to_json(&InfoReport::new(&input, &kernel)?)?);
        return Ok(());
    }
    let Some(state) = input.as_hyperv() else {
        render_source(&input, &kernel);
        return Ok(());
    };
    let summary = state.summary()?;
    let encoding = state.encoding_stats()?;
    print!("{}", render(&summary, &encoding, state));
    print!("{}", render_kernel(&kernel));
    Ok(())
}

/// `info` (text) of any input that is not a Hyper-V saved state: format, files, RAM ranges,
/// processors, what the reader inferred, and the kernel.
fn render_source(input: &Input, kernel: &vm2dmp::guest::KernelInfo) {
    let machine = input.machine();
    let ranges = input.ram_ranges();
    // A raw image's one processor is an assumption for kernel discovery, not saved state.
    let vcpus: &[CpuState] = if machine.processors_from_kernel {
        &[]
    } else {
        input.vcpus()
    };
    let mut o = String::new();
    let files: Vec<String> = input
        .files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(o, "Format:        {}", machine.kind);
    let _ = writeln!(o, "Files:         {}", files.join(" + "));
    let _ = writeln!(
        o,
        "Guest RAM:     {} in {} range{}",
        mib(input.ram_pages() << 12),
        ranges.len(),
        if ranges.len() == 1 { "" } else { "s" }
    );
    for r in ranges {
        let _ = writeln!(
            o,
            "  {:#014x} - {:#014x}  {:>10}",
            r.gpa_start(),
            r.gpa_end(),
            mib(r.page_count << 12)
        );
    }
    if let Some((code, p)) = machine.guest_bugcheck {
        let _ = writeln!(
            o,
            "Bug check:     {code:#x} ({:#x}, {:#x}, {:#x}, {:#x})",
            p[0], p[1], p[2], p[3]
        );
    }
    if vcpus.is_empty() {
        let _ = writeln!(o, "Processors:    none saved");
    } else {
        let _ = writeln!(o, "Processors:    {}", vcpus.len());
        for v in vcpus {
            let _ = writeln!(
                o,
                "  VP {:<3} {:<34} RIP {:#018x} RSP {:#018x} CR3 {:#x}",
                v.index,
                v.mode_description(),
                v.rip,
                v.rsp,
                v.cr3
            );
        }
    }
    for n in &machine.notes {
        let _ = writeln!(o, "note: {n}");
    }
    print!("{o}");
    print!("{}", render_kernel(kernel));
}

/// The "Kernel:" section: each field, its value and how it was found.
fn render_kernel(k: &vm2dmp::guest::KernelInfo) -> String {
    let mut o = String::new();
    match (&k.image, k.found()) {
        (Some(img), true) => {
            let _ = writeln!(
                o,
                "Kernel:        {} at {:#x}, {} bytes{}{}",
                img.export_name.as_deref().unwrap_or("?"),
                img.base,
                img.size,
                k.version
                    .as_ref()
                    .map_or(String::new(), |v| format!(", version {v}")),
                match &k.symbols {
                    Some(p) => format!(", symbols {p}"),
                    None => ", no symbols".into(),
                }
            );
            if let Some(p) = &img.pdb {
                let _ = writeln!(o, "  PDB           {} {}", p.name, p.store_key());
            }
            if let Some(d) = k.dtb {
                let _ = writeln!(o, "  Paging        {:?}, root {:#x}", d.paging, d.root);
            }
        }
        _ => {
            let _ = writeln!(o, "Kernel:        not found");
            for n in &k.notes {
                let _ = writeln!(o, "  {n}");
            }
            return o;
        }
    }
    for (name, f) in k.fields() {
        let method = match f.method {
            vm2dmp::guest::Method::Symbols => "symbols",
            vm2dmp::guest::Method::Heuristic => "heuristic",
            vm2dmp::guest::Method::NotFound => "not found",
        };
        let value = match (name, f.value) {
            ("Build" | "NumberProcessors", Some(v)) => v.to_string(),
            (_, Some(v)) => format!("{v:#x}"),
            (_, None) => "-".into(),
        };
        let _ = writeln!(o, "  {name:<20} {value:>18}  {method}: {}", f.how);
    }
    if k.kdbg_encoded {
        if let Some(keys) = &k.kdbg_keys {
            let _ = writeln!(
                o,
                "  KDBG encoded: KiWaitNever {:#x}, KiWaitAlways {:#x}, KdpDataBlockEncoded at {:#x}",
                keys.ki_wait_never, keys.ki_wait_always, keys.kdp_data_block_encoded
            );
        }
    }
    for n in &k.notes {
        let _ = writeln!(o, "  note: {n}");
    }
    o
}

fn mib(bytes: u64) -> String {
    if bytes < (1 << 20) {
        format!("{} KiB", bytes >> 10)
    } else if bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

fn render(s: &Summary, e: &EncodingStats, state: &SavedState) -> String {
    let mut o = String::new();
    let files: Vec<String> = s.files.iter().map(|p| p.display().to_string()).collect();
    let _ = writeln!(o, "Files:         {}", files.join(", "));
    let container = match s.format {
        vm2dmp::hyperv::InputFormat::Vmrs => format!(
            "vmrs (HVS container {}.{})",
            s.container_version >> 8,
            s.container_version & 0xFF
        ),
        vm2dmp::hyperv::InputFormat::VsvBin => {
            format!("vsv+bin (legacy container {:#x})", s.container_version)
        }
    };
    let vm_version = s.vm_version.map_or_else(
        || "not recorded".to_string(),
        |v| format!("{}.{}", v >> 8, v & 0xFF),
    );
    let _ = writeln!(o, "Format:        {container}, VM version {vm_version}");
    if let Some(t) = &s.saved_state_type {
        let _ = writeln!(o, "Saved state:   {t}");
    }
    if let Some(w) = &s.worker_process_version {
        let _ = writeln!(o, "Written by:    vmwp {w}");
    }
    let replay = match (s.replay_log.pending_entries, s.replay_log.replayed) {
        (0, _) => "clean (no pending entries)".to_string(),
        (n, true) => format!("dirty: {n} pending entries, replayed in memory"),
        (n, false) => format!("dirty: {n} pending entries, NOT replayed (--no-replay)"),
    };
    if s.format == vm2dmp::hyperv::InputFormat::Vmrs {
        let _ = writeln!(
            o,
            "Replay log:    {replay}{}",
            if s.replay_log.region_past_end {
                "; its region runs past the end of the file (a trimmed or truncated copy)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        o,
        "Architecture:  {:?}, paging mode {:?}",
        s.architecture, s.paging_mode
    );
    let _ = writeln!(
        o,
        "Processors:    {} (boot VP {}){}",
        s.vp_count,
        s.boot_vp.map_or("?".into(), |b| b.to_string()),
        s.processor_vendor
            .map_or(String::new(), |v| format!(", vendor {v}"))
    );
    let _ = writeln!(
        o,
        "RAM:           {} ({} pages) in {} range{}, {} RAM blocks ({} saved)",
        mib(s.ram_bytes),
        s.ram_pages,
        s.ranges.len(),
        if s.ranges.len() == 1 { "" } else { "s" },
        s.ram_blocks,
        mib(s.raw_saved_memory_size)
    );
    for r in &s.ranges {
        let _ = writeln!(
            o,
            "  GPA {:#014x}..{:#014x}  {:>9} pages  saved page {:#x}{}",
            r.gpa_start(),
            r.gpa_end(),
            r.page_count,
            r.raw_page_start,
            if r.flags != 0 {
                format!("  flags {:#x}", r.flags)
            } else {
                String::new()
            }
        );
    }
    if let (Some(l), Some(h)) = (s.low_mmio_gap_mb, s.high_mmio_gap_mb) {
        let _ = writeln!(o, "MMIO gaps:     low {l} MiB, high {h} MiB");
    }
    let _ = writeln!(
        o,
        "Page encoding: {} compressed, {} raw, {} zero-filled, {} pattern-filled, {} in multi-page tokens, {} raw blocks",
        e.compressed_pages, e.raw_pages, e.fill_zero_pages, e.fill_pattern_pages, e.sized_pages, e.raw_blocks
    );
    if let Some(m) = s.guest_crash_msrs {
        let _ = writeln!(
            o,
            "Guest crash:   {:#x} ({:#x}, {:#x}, {:#x}, {:#x})",
            m[0], m[1], m[2], m[3], m[4]
        );
    }
    let _ = writeln!(o, "vCPUs:");
    let _ = writeln!(
        o,
        "  {:>3}  {:>18}  {:>18}  {:>18}  {:>10}  {:>10}  mode",
        "VP", "RIP", "CR0", "CR3", "CR4", "EFER"
    );
    for v in state.vcpus() {
        let _ = writeln!(
            o,
            "  {:>3}  {:>#18x}  {:>#18x}  {:>#18x}  {:>#10x}  {:>#10x}  {}",
            v.index,
            v.rip,
            v.cr0,
            v.cr3,
            v.cr4,
            v.efer,
            v.mode_description()
        );
    }
    if !state.higher_vtl_vcpus().is_empty() {
        let _ = writeln!(
            o,
            "  ({} register sets of higher VTLs are saved and not used)",
            state.higher_vtl_vcpus().len()
        );
    }
    o
}
