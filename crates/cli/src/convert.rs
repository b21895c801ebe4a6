//! `vm2dmp convert`: one saved state to one kernel dump, with a progress bar.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use vm2dmp::{Cancel, ConvertOptions, DumpFormat, SavedState};

use crate::InputArgs;

#[derive(clap::Args, Debug)]
pub(crate) struct ConvertArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The dump file to write
    pub output: PathBuf,
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
    /// Print the result as JSON on standard output
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: one per core)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub(crate) enum FormatArg {
    Auto,
    Full,
    Bitmap,
}

/// Renders library progress as an indicatif bar.
struct Bar(ProgressBar);

impl vm2dmp::Progress for Bar {
    fn start(&self, _phase: &str, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

pub(crate) fn run(args: &ConvertArgs, cancel: Arc<Cancel>) -> Result<(), crate::CliError> {
    if args.skip_zero && matches!(args.format, FormatArg::Full) {
        return Err(crate::CliError::Usage(
            "--skip-zero needs a bitmap dump; it cannot be combined with --format full".into(),
        ));
    }
    if let Some(n) = args.threads {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let state = SavedState::open_with(&args.input.input, &args.input.open_options())?;
    let opts = ConvertOptions {
        format: match args.format {
            FormatArg::Auto => DumpFormat::Auto,
            FormatArg::Full => DumpFormat::Full,
            FormatArg::Bitmap => DumpFormat::Bitmap,
        },
        skip_zero: args.skip_zero,
        force: args.force,
        comment: None,
    };
    let show_bar = !args.quiet && std::io::stderr().is_terminal();
    let bar = if show_bar {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        ProgressBar::hidden()
    };
    let report = vm2dmp::convert(&state, &args.output, &opts, &Bar(bar), &cancel)?;
    if !args.quiet {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if !args.quiet {
        eprintln!(
            "wrote {}: {} dump (DumpType {}), {} of {} pages, {} in {:.2} s ({}/s)",
            report.output.display(),
            if report.dump_type == 1 {
                "full"
            } else {
                "bitmap"
            },
            report.dump_type,
            report.pages_written,
            report.guest_pages,
            human_bytes(report.bytes as f64),
            report.seconds,
            human_bytes(report.bytes_per_second)
        );
    }
    Ok(())
}
