//! The command line: the commands and their options.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "vm2dmp",
    version,
    about = "Convert Hyper-V saved states and checkpoints, QEMU/KVM and VirtualBox cores, VMware suspended and snapshot state and raw memory images into Windows kernel crash dumps",
    after_help = "Examples:\n  vm2dmp info vm.vmrs\n  vm2dmp info vm.vsv --json\n  vm2dmp convert vm.vmrs vm.dmp\n  vm2dmp convert vm.vsv vm.dmp --format bitmap --skip-zero\n  vm2dmp list 'D:/VMs/Web01'\n  vm2dmp convert 'D:/VMs/Web01' --checkpoint 'Before update' web01.dmp\n  vm2dmp convert --out-dir dumps --jobs 2 --report report.json 'D:/Hyper-V' '/cases/*.vmrs'\n  vm2dmp convert guest.elf guest.dmp\n  vm2dmp convert vm-Snapshot1.vmsn vm.dmp\n  vm2dmp convert --raw --memory-map 0x0-0xbfffffff,0x100000000-0x13fffffff mem.raw mem.dmp\n  vm2dmp keys vm.vmcx --prefix /configuration/properties\n  vm2dmp completions bash > /etc/bash_completion.d/vm2dmp\n\nExit codes: 0 success, 1 failure writing output or some inputs failed, 2 bad usage or unreadable input, 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).\nNO_COLOR in the environment turns colours off."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by commands that open a saved state.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct InputArgs {
    /// The input: a Hyper-V .vmrs, .vsv (its .bin is found beside it) or .bin; a QEMU ELF core
    /// or kdump-compressed file; a VMware .vmss/.vmsn (its .vmem beside it); a raw image with
    /// --raw; for convert also a VM folder, a Hyper-V root, a .vmcx/.xml configuration, an
    /// .avhdx or a glob
    pub input: PathBuf,
    /// The memory file of a .vsv (its .bin) or of a .vmss/.vmsn (its .vmem), when it is not
    /// beside it with the same name
    #[arg(long, visible_alias = "vmem", value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Read a dirty .vmrs as it is, without replaying its pending log entries in memory
    #[arg(long)]
    pub no_replay: bool,
    /// Read the input as a raw physical memory image (no header, no registers): guest-physical
    /// memory from address 0, or the ranges --memory-map gives
    #[arg(long)]
    pub raw: bool,
    /// With --raw: the guest-physical ranges the image holds, in file order
    /// (START-END[,START-END...], e.g. 0x0-0x9ffff,0x100000-0xbfffffff,0x100000000-0x13fffffff)
    #[arg(long, value_name = "RANGES", requires = "raw")]
    pub memory_map: Option<String>,
    /// With --raw: the kernel's page-table root (CR3), e.g. 0x1aa000; by default found by
    /// scanning memory
    #[arg(long, value_name = "ADDR", requires = "raw")]
    pub cr3: Option<String>,
    /// With --raw: the guest's paging mode
    #[arg(long, value_enum, requires = "raw", default_value = "x64")]
    pub paging: PagingArg,
}

/// Paging mode of a raw image's guest.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub(crate) enum PagingArg {
    /// 64-bit (long mode, 4-level paging)
    X64,
    /// 32-bit with PAE
    Pae,
    /// 32-bit without PAE
    X86,
}

impl InputArgs {
    /// How to open the input file; a usage error for a bad --memory-map or --cr3.
    pub fn open_options(&self) -> Result<vm2dmp::input::OpenOptions, String> {
        let raw = if self.raw {
            let map = match &self.memory_map {
                Some(spec) => Some(
                    vm2dmp::raw::MemoryMap::parse(spec)
                        .map_err(|e| format!("--memory-map: {e}"))?,
                ),
                None => None,
            };
            let cr3 = match &self.cr3 {
                Some(s) => Some(vm2dmp::raw::parse_number(s).ok_or_else(|| {
                    format!("--cr3 {s}: not a number (hexadecimal with 0x, or decimal)")
                })?),
                None => None,
            };
            Some(vm2dmp::raw::RawOptions {
                map,
                cr3,
                paging: Some(match self.paging {
                    PagingArg::X64 => vm2dmp::source::PagingMode::Long,
                    PagingArg::Pae => vm2dmp::source::PagingMode::Pae,
                    PagingArg::X86 => vm2dmp::source::PagingMode::Bit32,
                }),
            })
        } else {
            None
        };
        Ok(vm2dmp::input::OpenOptions {
            memory_file: self.bin.clone(),
            no_replay: self.no_replay,
            raw,
        })
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Write a Windows kernel crash dump of a saved state, a checkpoint, or (--out-dir) of many
    Convert(ConvertArgs),
    /// Compare every guest page of a saved state with a dump (exit 1 on any difference)
    Verify(VerifyArgs),
    /// Show what a saved state (or a kernel dump) holds: format, processors, memory map, registers
    Info {
        #[command(flatten)]
        input: InputArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// The kernel's PDB (ntkrnlmp.pdb) or a local symbol-store folder, used when it matches
        #[arg(long, value_name = "PATH")]
        symbols: Option<PathBuf>,
    },
    /// List the VMs, checkpoints and saved states of a folder and whether their memory converts
    #[command(
        after_help = "Examples:\n  vm2dmp list 'D:/VMs/Web01'\n  vm2dmp list 'C:/ProgramData/Microsoft/Windows/Hyper-V' --json\n  vm2dmp list web01_6C1F....avhdx"
    )]
    List(ListArgs),
    /// Print every key of a saved-state or configuration file (.vmrs, .vmcx, .vsv, .bin)
    #[command(
        after_help = "Examples:\n  vm2dmp keys 'Virtual Machines/5A7C....vmcx' --prefix /configuration/properties\n  vm2dmp keys vm.vmrs --json"
    )]
    Keys(KeysArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. vm2dmp manpage > vm2dmp.1
    Manpage,
    /// Work with the JSON reports of `convert --report`
    #[command(subcommand)]
    Report(ReportCommand),
}

/// `vm2dmp report ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum ReportCommand {
    /// Merge the reports of shards (`convert --shard K/N --report ...`) into one
    #[command(
        after_help = "Example:\n  vm2dmp report merge report-1.json report-2.json report-3.json -o report.json\n\nFails (exit 1) when two reports name the same output: shards never share one."
    )]
    Merge {
        /// The reports to merge
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// The merged report to write (replaced atomically); standard output when not given
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `--shard K/N`: this process takes the K-th of N parts of the inputs (K from 1 to N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// 1..=count.
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `K/N` with 1 <= K <= N.
pub(crate) fn parse_shard(s: &str) -> Result<Shard, String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s}: expected K/N, e.g. 1/4"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("{s}: expected K/N with whole numbers, e.g. 1/4"))
    };
    let (index, count) = (parse(k)?, parse(n)?);
    if count == 0 || index == 0 || index > count {
        return Err(format!(
            "{s}: K counts from 1 to N (a 0-based job index I is --shard $((I+1))/N)"
        ));
    }
    Ok(Shard { index, count })
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  vm2dmp convert vm.vmrs vm.dmp
  vm2dmp convert vm.vsv vm.dmp --bin /elsewhere/vm.bin
  vm2dmp convert 'D:/VMs/Web01' --checkpoint 'Before update' web01.dmp
  vm2dmp convert 'D:/VMs/Web01/Virtual Hard Disks/web01_6C1F....avhdx' web01.dmp
  vm2dmp convert --out-dir dumps --jobs 2 --report report.json 'D:/Hyper-V' '/cases/*.vmrs'

With --out-dir every input may be a saved-state file, a VM folder, a Hyper-V root folder, a
virtual disk or a glob; folders give every VM state and checkpoint with memory. A failing input
does not stop the others. Dumps already complete in the output folder are kept (--force writes
them again). Exit code 1 when any input failed. --shard K/N splits the images among N
processes (K from 1 to N), each with its own --report; `vm2dmp report merge` joins the reports.")]
pub(crate) struct ConvertArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The dump file to write; with --out-dir, more inputs
    #[arg(value_name = "OUTPUT|MORE")]
    pub more: Vec<PathBuf>,
    /// Write one dump per memory image into this folder (named after VM and checkpoint)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// In a VM folder, the checkpoint (or VM) to convert, by name or GUID
    #[arg(long, value_name = "NAME|GUID")]
    pub checkpoint: Option<String>,
    /// Inputs converted at the same time with --out-dir (pages are always converted in parallel)
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Write a JSON report of every input (input, output, status, pages, bytes, seconds, error)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Page layout: auto (full dump unless the memory map needs a bitmap), full, or bitmap
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Leave out all-zero pages (bitmap dump; readers then show those pages as missing)
    #[arg(long)]
    pub skip_zero: bool,
    /// Overwrite the output file if it exists
    #[arg(long)]
    pub force: bool,
    /// No progress bar and no notes
    #[arg(short, long)]
    pub quiet: bool,
    /// Say which files and checkpoints are read, and every note
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print the result as JSON on standard output
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: one per core)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The kernel's PDB (ntkrnlmp.pdb) or a local symbol-store folder, used when it matches
    #[arg(long, value_name = "PATH")]
    pub symbols: Option<PathBuf>,
    /// Compute the SHA-256 of every input file and of every dump (in --json and --report)
    #[arg(long)]
    pub hash: bool,
    /// With --out-dir: convert only the K-th of N parts of the memory images (K from 1 to N),
    /// so that N processes given the same inputs convert each image exactly once
    #[arg(long, value_name = "K/N", value_parser = parse_shard, requires = "out_dir")]
    pub shard: Option<Shard>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub(crate) enum FormatArg {
    Auto,
    Full,
    Bitmap,
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
    /// Also check that the dump's SHA-256 is HEX (checked first; exit 1 when it differs)
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// A VM folder, a Hyper-V root folder, or one file (.vmrs, .vsv, .bin, .vmcx, .xml, .avhdx)
    pub path: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Read dirty .vmrs files as they are, without replaying pending log entries in memory
    #[arg(long)]
    pub no_replay: bool,
    /// Also show configuration files, vCPU counts and notes
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct KeysArgs {
    /// A .vmrs, .vmcx, .vsv or .bin file (with or without memory in it)
    pub file: PathBuf,
    /// Only keys whose path starts with this (e.g. /configuration/properties)
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<String>,
    /// Read a dirty .vmrs/.vmcx as it is, without replaying its pending log entries
    #[arg(long)]
    pub no_replay: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}
