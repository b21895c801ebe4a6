//! `vm2dmp info` on a kernel dump, and `vm2dmp verify`.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use vm2dmp::kdump::{Arch, KernelDump};
use vm2dmp::{DumpFile, NoProgress, SavedState};

use crate::{CliError, InputArgs};

#[derive(Serialize)]
struct DumpReport {
    file: PathBuf,
    header: &'static str,
    dump_type: u32,
    machine_image_type: String,
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
    comment: String,
    runs: Vec<(String, u64)>,
    bitmap_pages: Option<u64>,
    present_pages: u64,
    required_dump_space: u64,
    file_size: u64,
    context_rip: String,
    context_rsp: String,
    context_cs: String,
    context_ss: String,
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

fn report(f: &DumpFile) -> DumpReport {
    let d: &KernelDump = f.dump();
    let i = d.info();
    DumpReport {
        file: f.path().to_path_buf(),
        header: match d.arch() {
            Arch::X64 => "DUMP_HEADER64",
            Arch::X86 { .. } => "DUMP_HEADER32",
        },
        dump_type: d.dump_type(),
        machine_image_type: hex(u64::from(d.machine_image_type())),
        pae_enabled: d.pae_enabled(),
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
        context_rip: hex(i.context.rip),
        context_rsp: hex(i.context.rsp),
        context_cs: hex(u64::from(i.context.cs)),
        context_ss: hex(u64::from(i.context.ss)),
    }
}

pub(crate) fn info(path: &PathBuf, json: bool) -> Result<(), CliError> {
    let f = DumpFile::open(path)?;
    let r = report(&f);
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    let mut o = String::new();
    let _ = writeln!(o, "File:                 {}", r.file.display());
    let _ = writeln!(
        o,
        "Header:               {} (DumpType {}: {})",
        r.header,
        r.dump_type,
        match r.dump_type {
            1 => "full",
            5 => "bitmap full",
            6 => "bitmap kernel",
            _ => "other",
        }
    );
    let _ = writeln!(
        o,
        "Machine:              {}{}, {} processor(s)",
        r.machine_image_type,
        r.pae_enabled.map_or(String::new(), |p| format!(
            ", PAE {}",
            if p { "on" } else { "off" }
        )),
        r.number_processors
    );
    let _ = writeln!(
        o,
        "Version:              {:#x}.{}",
        r.major_version, r.minor_version
    );
    let _ = writeln!(o, "DirectoryTableBase:   {}", r.directory_table_base);
    let _ = writeln!(o, "KdDebuggerDataBlock:  {}", r.kd_debugger_data_block);
    let _ = writeln!(o, "PsLoadedModuleList:   {}", r.ps_loaded_module_list);
    let _ = writeln!(o, "PsActiveProcessHead:  {}", r.ps_active_process_head);
    let _ = writeln!(o, "PfnDataBase:          {}", r.pfn_database);
    let _ = writeln!(
        o,
        "BugCheck:             {} ({})",
        r.bugcheck_code,
        r.bugcheck_parameters.join(", ")
    );
    let _ = writeln!(o, "SystemTime:           {} (FILETIME)", r.system_time);
    let _ = writeln!(o, "Comment:              {}", r.comment);
    let _ = writeln!(
        o,
        "Context:              rip {} rsp {} cs {} ss {}",
        r.context_rip, r.context_rsp, r.context_cs, r.context_ss
    );
    let _ = writeln!(
        o,
        "Pages:                {} present{}",
        r.present_pages,
        r.bitmap_pages
            .map_or(String::new(), |b| format!(" of {b} bitmap bits"))
    );
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

#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The dump to check
    pub dump: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    /// The symbols the dump was converted with (an ntkrnlmp.pdb or a symbol-store folder)
    #[arg(long, value_name = "PATH")]
    pub symbols: Option<PathBuf>,
}

pub(crate) fn verify(args: &VerifyArgs, cancel: &vm2dmp::Cancel) -> Result<bool, CliError> {
    let f = DumpFile::open(&args.dump)?;
    let state = SavedState::open_with(&args.input.input, &args.input.open_options())?;
    let r = vm2dmp::verify(&f, &state, args.symbols.as_deref(), &NoProgress, cancel)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
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
