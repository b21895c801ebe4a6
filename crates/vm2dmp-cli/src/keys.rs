//! `vm2dmp keys`: every key of a saved-state or configuration file.

use std::fmt::Write as _;

use vm2dmp::hyperv::KeyData;

use crate::args::KeysArgs;
use crate::shared::{print_stdout, to_json};
use crate::CliError;

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
        print_stdout(&(to_json(&listing)? + "\n"));
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
    print_stdout(&o);
    Ok(())
}
