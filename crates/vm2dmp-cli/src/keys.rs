//! `vm2dmp keys`: every key of a saved-state or configuration file.

use std::fmt::Write as _;
use std::path::PathBuf;

use vm2dmp::hyperv::KeyData;

use crate::CliError;

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

fn shown(v: &KeyData) -> String {
    match v {
        KeyData::Int(i) => i.to_string(),
        KeyData::Uint(u) => format!("{u} ({u:#x})"),
        KeyData::Double(d) => d.to_string(),
        KeyData::Bool(b) => b.to_string(),
        KeyData::Text(s) => format!("{s:?}"),
        KeyData::Bytes { hex, truncated } => {
            format!("{hex}{}", if *truncated { "..." } else { "" })
        }
    }
}

pub(crate) fn run(args: &KeysArgs) -> Result<(), CliError> {
    let mut listing = vm2dmp::hyperv::list_keys(&args.file, args.no_replay)?;
    if let Some(p) = &args.prefix {
        listing.keys.retain(|k| k.path.starts_with(p.as_str()));
    }
    if args.json {
        crate::print_stdout(&(crate::to_json(&listing)? + "\n"));
        return Ok(());
    }
    let mut o = String::new();
    for k in &listing.keys {
        let _ = write!(
            o,
            "{} [{}, {} bytes at {:#x}]",
            k.path, k.kind, k.size, k.offset
        );
        if let Some(v) = &k.value {
            let _ = write!(o, " {}", shown(v));
        }
        o.push('\n');
    }
    crate::print_stdout(&o);
    Ok(())
}
