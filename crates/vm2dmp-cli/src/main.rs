//! `vm2dmp`: convert Hyper-V saved states and checkpoints, QEMU/KVM and VirtualBox cores, VMware state and raw memory images into Windows kernel crash dumps.

#![forbid(unsafe_code)]

use std::sync::Arc;

use clap::{CommandFactory, Parser};

mod args;
mod batch;
mod convert;
mod dumpinfo;
mod exit;
mod info;
mod keys;
mod list;
mod shared;

use args::{Cli, Command};

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

/// A library error as one line, with the command-line option that resolves it where there is
/// one (the library's own messages name no options).
pub(crate) fn describe(e: &vm2dmp::Error) -> String {
    use vm2dmp::source::Ambiguity;
    match e {
        vm2dmp::Error::OutputExists { .. } => format!("{e} (use --force to overwrite)"),
        vm2dmp::Error::MissingBin { .. } => format!("{e} (give it with --bin)"),
        vm2dmp::Error::TooManyFiles { .. } => format!("{e}; give a VM folder instead"),
        vm2dmp::Error::Ambiguous { path, kind, found } => {
            let hint = match kind {
                Ambiguity::Name { .. } => "give the GUID instead",
                Ambiguity::SeveralImages { .. } => {
                    "choose one with --checkpoint NAME|GUID, or convert all with --out-dir DIR"
                }
                _ => "convert the VM folder with --checkpoint NAME|GUID",
            };
            format!("{}: {kind}; {hint}{found}", path.display())
        }
        other => other.to_string(),
    }
}

impl CliError {
    /// The one-line message.
    pub fn message(&self) -> String {
        match self {
            CliError::Lib(vm2dmp::Error::Cancelled) => "interrupted".into(),
            CliError::Lib(e) => describe(e),
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

/// A panic is a bug: one line saying so, where and why, instead of Rust's report. Panics the
/// library catches and turns into errors (a malformed PDB) are not reported twice.
fn set_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if vm2dmp::guest::panic_is_handled() {
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
}

/// `convert` and `verify` (`cancellable`) stop at the next block on Ctrl-C, SIGTERM or SIGHUP:
/// the temporary output is removed and the exit code is 130. The other commands, and a second
/// signal (work between blocks, e.g. opening a large state, does not look at the flag), end
/// the process at once with 130; a temporary output is then left under its hidden name, never
/// under the target name. Without a handler a signal still stops the process the same way.
/// This handler and the end of `main` both end the process through `exit::finish`: whichever
/// comes first prints the one final line and gives the exit code, the other prints nothing.
fn handle_signals(cancellable: bool, cancel: Arc<vm2dmp::Cancel>) {
    let signals = std::sync::atomic::AtomicUsize::new(0);
    let _ = ctrlc::set_handler(move || {
        let earlier = signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if !cancellable || earlier > 0 {
            exit::finish(Some("interrupted"), exit::INTERRUPTED);
        }
        cancel.cancel();
    });
}

/// Runs a command; the exit code when it did its work (`verify` gives 1 for differences).
fn run(command: Command, cancel: Arc<vm2dmp::Cancel>) -> Result<u8, CliError> {
    match command {
        Command::Info { input, json, .. } if vm2dmp::dump::is_kernel_dump(&input.input) => {
            dumpinfo::info(&input.input, json)?
        }
        Command::Info {
            input,
            json,
            symbols,
        } => info::run(&input, json, symbols.as_deref())?,
        Command::Verify(args) => {
            if !dumpinfo::verify(&args, &cancel)? {
                return Ok(exit::FAILED);
            }
        }
        Command::Convert(args) => convert::run(&args, cancel)?,
        Command::List(args) => list::run(&args)?,
        Command::Keys(args) => keys::run(&args)?,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vm2dmp", &mut script);
            shared::print_stdout(&String::from_utf8_lossy(&script));
        }
        Command::Manpage => shared::print_stdout(&manpage()?),
        Command::Report(args::ReportCommand::Merge { reports, output }) => {
            batch::merge_reports(&reports, output.as_deref())?
        }
    }
    Ok(exit::OK)
}

/// The manual page, generated from the command-line definition: the options of `vm2dmp`
/// and a SUBCOMMANDS section naming each command.
fn manpage() -> Result<String, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| CliError::Failed(format!("cannot write the manual page: {e}")))?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

fn main() {
    set_panic_hook();
    let cli = Cli::parse();
    let cancel = Arc::new(vm2dmp::Cancel::new());
    let cancellable = matches!(cli.command, Command::Convert(_) | Command::Verify(_));
    handle_signals(cancellable, Arc::clone(&cancel));
    match run(cli.command, cancel) {
        Ok(code) => exit::finish(None, code),
        Err(e) => exit::finish(Some(&e.message()), exit_code(&e)),
    }
}
