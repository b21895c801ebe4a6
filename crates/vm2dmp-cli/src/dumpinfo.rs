//! `vm2dmp info` on a kernel dump, and `vm2dmp verify`.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use vm2dmp::kdump::consts::{dump_type_name, machine_name};
use vm2dmp::kdump::{Arch, ContextRecord, KernelDump};
use vm2dmp::{DumpFile, NoProgress};

use crate::args::VerifyArgs;
use crate::shared::{hex, to_json};
use crate::CliError;

#[derive(Serialize)]
struct DumpReport {
    file: PathBuf,
    header: &'static str,
    dump_type: u32,
    dump_type_name: &'static str,
    /// False for dump types whose physical memory is not read (triage, summary, ...).
    page_data: bool,
    machine_image_type: String,
    machine: &'static str,
    pae_enabled: Option<bool>,
    major_version: u32,
    minor_version: u32,
    directory_table_base: String,
    pfn_database: String,
    ps_loaded_module_list: String,
    ps_active_process_head: String,
    kd_debugger_data_block: String,
    number_processors: u32,
    bugcheck_code: String,
    bugcheck_parameters: Vec<String>,
    system_time: u64,
    /// `SystemTime` as UTC, ISO 8601 (null when it is not a plausible FILETIME).
    system_time_utc: Option<String>,
    comment: String,
    runs: Vec<(String, u64)>,
    bitmap_pages: Option<u64>,
    present_pages: u64,
    required_dump_space: u64,
    file_size: u64,
    /// Registers of the header's CONTEXT (null for machines whose CONTEXT is not decoded).
    context_rip: Option<String>,
    context_rsp: Option<String>,
    context_cs: Option<String>,
    context_ss: Option<String>,
}

/// A FILETIME (100 ns units since 1601-01-01 UTC) as `YYYY-MM-DD HH:MM:SS UTC`, for
/// 1980..=9999.
fn filetime_utc(ft: u64) -> Option<String> {
    let t = vm2dmp::folders::filetime_rfc3339(ft)?; // YYYY-MM-DDTHH:MM:SSZ
    let year: i64 = t.get(..4)?.parse().ok()?;
    let (date, time) = (t.get(..10)?, t.get(11..19)?);
    (year >= 1980).then(|| format!("{date} {time} UTC"))
}

/// A few bug check names users meet in dumps of virtual machines.
fn bugcheck_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0x0A => "IRQL_NOT_LESS_OR_EQUAL",
        0x1E => "KMODE_EXCEPTION_NOT_HANDLED",
        0x3B => "SYSTEM_SERVICE_EXCEPTION",
        0x50 => "PAGE_FAULT_IN_NONPAGED_AREA",
        0x7E => "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED",
        0x1000007E => "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M",
        0x9F => "DRIVER_POWER_STATE_FAILURE",
        0xD1 => "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
        0xE2 => "MANUALLY_INITIATED_CRASH",
        0xEF => "CRITICAL_PROCESS_DIED",
        0x133 => "DPC_WATCHDOG_VIOLATION",
        0x161 => "LIVE_SYSTEM_DUMP",
        _ => return None,
    })
}

fn report(f: &DumpFile) -> DumpReport {
    let d: &KernelDump = f.dump();
    let i = d.info();
    let decoded = !matches!(d.context(), ContextRecord::Other { .. });
    DumpReport {
        file: f.path().to_path_buf(),
        header: match d.arch() {
            Arch::X64 => "DUMP_HEADER64",
            Arch::X86 { .. } => "DUMP_HEADER32",
        },
        dump_type: d.dump_type(),
        dump_type_name: dump_type_name(d.dump_type()),
        page_data: d.has_page_data(),
        machine_image_type: hex(u64::from(d.machine_image_type())),
        machine: machine_name(d.machine_image_type()),
        pae_enabled: d
            .pae_enabled()
            .filter(|_| d.machine_image_type() == vm2dmp::kdump::consts::IMAGE_FILE_MACHINE_I386),
        major_version: i.major_version,
        minor_version: i.minor_version,
        directory_table_base: hex(i.directory_table_base),
        pfn_database: hex(i.pfn_database),
        ps_loaded_module_list: hex(i.ps_loaded_module_list),
        ps_active_process_head: hex(i.ps_active_process_head),
        kd_debugger_data_block: hex(i.kd_debugger_data_block),
        number_processors: i.number_processors,
        bugcheck_code: hex(u64::from(i.bugcheck_code)),
        bugcheck_parameters: i.bugcheck_parameters.iter().map(|&p| hex(p)).collect(),
        system_time: i.system_time,
        system_time_utc: filetime_utc(i.system_time),
        comment: i.comment.clone(),
        runs: d
            .runs()
            .iter()
            .map(|r| (hex(r.base_page), r.page_count))
            .collect(),
        bitmap_pages: d.bitmap().map(|b| b.pages),
        present_pages: d.present_page_count(),
        required_dump_space: d.required_dump_space(),
        file_size: d.file_size(),
        context_rip: decoded.then(|| hex(i.context.rip)),
        context_rsp: decoded.then(|| hex(i.context.rsp)),
        context_cs: decoded.then(|| hex(u64::from(i.context.cs))),
        context_ss: decoded.then(|| hex(u64::from(i.context.ss))),
    }
}

pub(crate) fn info(path: &PathBuf, json: bool) -> Result<(), CliError> {
    let f = DumpFile::open(path)?;
    let r = report(&f);
    if json {
        println!("{}", to_json(&r)?);
        return Ok(());
    }
    let mut o = String::new();
    let _ = writeln!(o, "File:                 {}", r.file.display());
    let _ = writeln!(
        o,
        "Header:               {} (DumpType {}: {})",
        r.header, r.dump_type, r.dump_type_name
    );
    let _ = writeln!(
        o,
        "Machine:              {} ({}){}, {} processor(s)",
        r.machine_image_type,
        r.machine,
        r.pae_enabled.map_or(String::new(), |p| format!(
            ", PAE {}",
            if p { "on" } else { "off" }
        )),
        r.number_processors
    );
    let _ = writeln!(
        o,
        "Version:              {:#x}.{} ({}{})",
        r.major_version,
        r.minor_version,
        match r.major_version {
            0xF => "free ",
            0xC => "checked ",
            _ => "",
        },
        match r.minor_version {
            0 => "build unknown".to_string(),
            b => format!("build {b}"),
        }
    );
    let _ = writeln!(o, "DirectoryTableBase:   {}", r.directory_table_base);
    let _ = writeln!(o, "KdDebuggerDataBlock:  {}", r.kd_debugger_data_block);
    let _ = writeln!(o, "PsLoadedModuleList:   {}", r.ps_loaded_module_list);
    let _ = writeln!(o, "PsActiveProcessHead:  {}", r.ps_active_process_head);
    let _ = writeln!(o, "PfnDataBase:          {}", r.pfn_database);
    let _ = writeln!(
        o,
        "BugCheck:             {}{} ({})",
        r.bugcheck_code,
        u32::from_str_radix(r.bugcheck_code.trim_start_matches("0x"), 16)
            .ok()
            .and_then(bugcheck_name)
            .map_or(String::new(), |n| format!(" {n}")),
        r.bugcheck_parameters.join(", ")
    );
    let _ = writeln!(
        o,
        "SystemTime:           {}{}",
        r.system_time_utc.as_deref().unwrap_or("-"),
        format_args!(" (FILETIME {:#x})", r.system_time)
    );
    let _ = writeln!(
        o,
        "Comment:              {}",
        if r.comment.is_empty() {
            "(none)"
        } else {
            &r.comment
        }
    );
    match (&r.context_rip, &r.context_rsp, &r.context_cs, &r.context_ss) {
        (Some(rip), Some(rsp), Some(cs), Some(ss)) => {
            let _ = writeln!(
                o,
                "Context:              rip {rip} rsp {rsp} cs {cs} ss {ss}"
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "Context:              {} CONTEXT, not decoded",
                r.machine
            );
        }
    }
    if r.page_data {
        let _ = writeln!(
            o,
            "Pages:                {} present{}",
            r.present_pages,
            r.bitmap_pages
                .map_or(String::new(), |b| format!(" of {b} bitmap bits"))
        );
    } else {
        let _ = writeln!(
            o,
            "Pages:                not read (DumpType {} holds no complete physical memory; verify and page reads need DumpType 1, 5 or 6)",
            r.dump_type
        );
    }
    for (base, count) in &r.runs {
        let _ = writeln!(o, "  run  PFN {base:>12}  {count:>10} pages");
    }
    let _ = writeln!(
        o,
        "Size:                 {} bytes (RequiredDumpSpace {}{})",
        r.file_size,
        r.required_dump_space,
        if r.required_dump_space == r.file_size {
            ""
        } else {
            ", DIFFERENT"
        }
    );
    print!("{o}");
    Ok(())
}

/// `--sha256 HEX`: the dump's SHA-256 when it is `want`; a failure (exit 1) with one line
/// saying both when it is not.
fn check_sha256(args: &VerifyArgs, cancel: &vm2dmp::Cancel) -> Result<Option<String>, CliError> {
    let Some(want) = &args.sha256 else {
        return Ok(None);
    };
    let want = want.trim().to_ascii_lowercase();
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::Usage(format!(
            "--sha256 {want}: expected 64 hexadecimal digits"
        )));
    }
    let got = vm2dmp::hash::sha256_file(&args.dump, cancel)?;
    if got != want {
        return Err(CliError::Failed(format!(
            "{}: SHA-256 mismatch: the file's is {got}, expected {want}",
            args.dump.display()
        )));
    }
    Ok(Some(got))
}

pub(crate) fn verify(args: &VerifyArgs, cancel: &vm2dmp::Cancel) -> Result<bool, CliError> {
    let sha256 = check_sha256(args, cancel)?;
    let f = DumpFile::open(&args.dump)?;
    let opts = args.input.open_options().map_err(CliError::Usage)?;
    let state = vm2dmp::input::Input::open(&args.input.input, &opts)?;
    let r = vm2dmp::verify(&f, &state, args.symbols.as_deref(), &NoProgress, cancel)?;
    if args.json {
        let mut v = serde_json::to_value(&r).map_err(|e| CliError::Failed(e.to_string()))?;
        if let (Some(hex), Some(obj)) = (&sha256, v.as_object_mut()) {
            obj.insert("sha256".into(), serde_json::Value::String(hex.clone()));
        }
        println!("{}", to_json(&v)?);
    } else {
        if let Some(hex) = &sha256 {
            println!("SHA-256 OK: {hex}");
        }
        println!(
            "{}: {} guest pages compared: {} differ, {} absent and all zero, {} absent with data, {} outside guest RAM, {} patched by the converter{}",
            if r.ok() { "OK" } else { "MISMATCH" },
            r.pages_compared,
            r.mismatched_pages,
            r.absent_zero_pages,
            r.absent_nonzero_pages,
            r.extra_pages,
            r.patched_pages,
            if r.first_bad_pages.is_empty() {
                String::new()
            } else {
                let l: Vec<String> = r.first_bad_pages.iter().map(|p| format!("{p:#x}")).collect();
                format!("; first bad pages: {}", l.join(" "))
            }
        );
    }
    Ok(r.ok())
}
