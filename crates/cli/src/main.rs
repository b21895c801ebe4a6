//! `vm2dmp`: convert Hyper-V saved states and checkpoints into Windows kernel crash dumps.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod info;

/// Exit codes (documented in README).
pub(crate) mod exit {
    /// Some inputs failed, or the output could not be written.
    pub const FAILED: u8 = 1;
    /// Bad usage, or an input that cannot be read.
    pub const BAD_INPUT: u8 = 2;
}

#[derive(Parser, Debug)]
#[command(
    name = "vm2dmp",
    version,
    about = "Convert Hyper-V saved states and checkpoints into Windows kernel crash dumps",
    after_help = "Examples:\n  vm2dmp info vm.vmrs\n  vm2dmp info vm.vsv --json\n\nExit codes: 0 success, 1 failure writing output or some inputs failed, 2 bad usage or unreadable input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by commands that open a saved state.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct InputArgs {
    /// The saved state: a .vmrs, a .vsv (its .bin is found beside it) or a .bin
    pub input: PathBuf,
    /// The .bin memory file of a .vsv, when it is not beside it with the same name
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Read a dirty .vmrs as it is, without replaying its pending log entries in memory
    #[arg(long)]
    pub no_replay: bool,
}

impl InputArgs {
    pub fn open_options(&self) -> vm2dmp::OpenOptions {
        vm2dmp::OpenOptions {
            bin: self.bin.clone(),
            no_replay: self.no_replay,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what a saved state holds: format, processors, memory map, registers
    Info {
        #[command(flatten)]
        input: InputArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

/// Prints one error line and gives the exit code for it.
pub(crate) fn report(e: &vm2dmp::Error) -> ExitCode {
    eprintln!("vm2dmp: error: {e}");
    ExitCode::from(if e.is_input_error() {
        exit::BAD_INPUT
    } else {
        exit::FAILED
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { input, json } => info::run(&input, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}
