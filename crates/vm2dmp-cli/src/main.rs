//! `vm2dmp`: convert Hyper-V saved states and checkpoints into Windows kernel crash dumps.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};

mod batch;
mod convert;
mod dumpinfo;
mod exit;
mod info;
mod keys;
mod list;

#[derive(Parser, Debug)]
#[command(
    name = "vm2dmp",
    version,
    about = "Convert Hyper-V saved states and checkpoints into Windows kernel crash dumps",
    after_help = "Examples:\n  vm2dmp info vm.vmrs\n  vm2dmp info vm.vsv --json\n  vm2dmp convert vm.vmrs vm.dmp\n  vm2dmp convert vm.vsv vm.dmp --format bitmap --skip-zero\n  vm2dmp list 'D:/VMs/Web01'\n  vm2dmp convert 'D:/VMs/Web01' --checkpoint 'Before update' web01.dmp\n  vm2dmp convert --out-dir dumps --jobs 2 --report report.json 'D:/Hyper-V' '/cases/*.vmrs'\n  vm2dmp keys vm.vmcx --prefix /configuration/properties\n  vm2dmp completions bash > /etc/bash_completion.d/vm2dmp\n\nExit codes: 0 success, 1 failure writing output or some inputs failed, 2 bad usage or unreadable input, 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).\nNO_COLOR in the environment turns colours off."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by commands that open a saved state.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct InputArgs {
    /// The saved state: a .vmrs, a .vsv (its .bin is found beside it) or a .bin; for convert
    /// also a VM folder, a Hyper-V root, a .vmcx/.xml configuration, an .avhdx or a glob
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
    /// Write a Windows kernel crash dump of a saved state, a checkpoint, or (--out-dir) of many
    Convert(convert::ConvertArgs),
    /// Compare every guest page of a saved state with a dump (exit 1 on any difference)
    Verify(dumpinfo::VerifyArgs),
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
    List(list::ListArgs),
    /// Print every key of a saved-state or configuration file (.vmrs, .vmcx, .vsv, .bin)
    #[command(
        after_help = "Examples:\n  vm2dmp keys 'Virtual Machines/5A7C....vmcx' --prefix /configuration/properties\n  vm2dmp keys vm.vmrs --json"
    )]
    Keys(keys::KeysArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `v` as pretty JSON, or the reason it cannot be (paths must be valid UTF-8 in JSON).
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(v).map_err(|e| {
        CliError::Failed(format!(
            "cannot write JSON: {e} (a file name that is not valid UTF-8?)"
        ))
    })
}

/// Writes `text` to standard output; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print_stdout(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// True when colours should be written to a stream: a terminal, and NO_COLOR not set.
pub(crate) fn use_color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CliError {
    Lib(vm2dmp::Error),
    Usage(String),
    /// Some inputs of a batch failed (each already reported).
    Failed(String),
    /// Stopped by a signal; says what was not written.
    Interrupted(String),
}

impl CliError {
    /// The one-line message.
    pub fn message(&self) -> String {
        match self {
            CliError::Lib(vm2dmp::Error::Cancelled) => "interrupted".into(),
            CliError::Lib(e) => e.to_string(),
            CliError::Usage(m) | CliError::Failed(m) => m.clone(),
            CliError::Interrupted(m) => format!("interrupted; {m}"),
        }
    }
}

impl From<vm2dmp::Error> for CliError {
    fn from(e: vm2dmp::Error) -> Self {
        CliError::Lib(e)
    }
}

/// The exit code for an error.
fn exit_code(e: &CliError) -> u8 {
    match e {
        CliError::Usage(_) => exit::BAD_INPUT,
        CliError::Failed(_) => exit::FAILED,
        CliError::Interrupted(_) | CliError::Lib(vm2dmp::Error::Cancelled) => exit::INTERRUPTED,
        CliError::Lib(e) => {
            let usage = matches!(e, vm2dmp::Error::OutputExists { .. });
            if e.is_input_error() || usage {
                exit::BAD_INPUT
            } else {
                exit::FAILED
            }
        }
    }
}

fn main() {
    // A panic is a bug: one line saying so, where and why, instead of Rust's report. Panics
    // the library catches and turns into errors (a malformed PDB) are not reported twice.
    std::panic::set_hook(Box::new(|info| {
        if vm2dmp::panic_is_handled() {
            return;
        }
        let why = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("vm2dmp: internal error{at}: {why} (please report it)");
    }));
    let cli = Cli::parse();
    let cancel = Arc::new(vm2dmp::Cancel::new());
    {
        let cancel = Arc::clone(&cancel);
        // `convert` and `verify` stop at the next block on Ctrl-C, SIGTERM or SIGHUP: the
        // temporary output is removed and the exit code is 130. The other commands, and a
        // second signal (work between blocks, e.g. opening a large state, does not look at
        // the flag), end the process at once with 130; a temporary output is then left under
        // its hidden name, never under the target name. Without a handler a signal still
        // stops the process the same way. This handler and the end of `main` both end the
        // process through `exit::finish`: whichever comes first prints the one final line
        // and gives the exit code, the other prints nothing.
        let cancellable = matches!(cli.command, Command::Convert(_) | Command::Verify(_));
        let signals = std::sync::atomic::AtomicUsize::new(0);
        let _ = ctrlc::set_handler(move || {
            let earlier = signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !cancellable || earlier > 0 {
                exit::finish(Some("interrupted"), exit::INTERRUPTED);
            }
            cancel.cancel();
        });
    }
    let result = match cli.command {
        Command::Info { input, json, .. } if vm2dmp::is_kernel_dump(&input.input) => {
            dumpinfo::info(&input.input, json)
        }
        Command::Info {
            input,
            json,
            symbols,
        } => info::run(&input, json, symbols.as_deref()).map_err(CliError::from),
        Command::Verify(args) => match dumpinfo::verify(&args, &cancel) {
            Ok(true) => Ok(()),
            Ok(false) => exit::finish(None, exit::FAILED),
            Err(e) => Err(e),
        },
        Command::Convert(args) => convert::run(&args, cancel),
        Command::List(args) => list::run(&args).map_err(CliError::from),
        Command::Keys(args) => keys::run(&args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vm2dmp", &mut script);
            print_stdout(&String::from_utf8_lossy(&script));
            Ok(())
        }
    };
    match result {
        Ok(()) => exit::finish(None, exit::OK),
        Err(e) => exit::finish(Some(&e.message()), exit_code(&e)),
    }
}
