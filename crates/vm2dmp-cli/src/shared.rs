//! Small pieces the commands share: standard output, JSON, colours, sizes, file extensions and
//! progress bars. Each is defined here once.

use std::io::Write as _;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use crate::CliError;

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
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// True when colours should be written to a stream: a terminal, and NO_COLOR not set.
pub(crate) fn use_color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in the ANSI colour `code` (`"31"` red, `"32"` green, ...) when `color` is set.
pub(crate) fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `v` in hexadecimal with `0x`.
pub(crate) fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// A size in bytes with a binary unit: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub(crate) fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The extension of `p` in lower case, or `""`.
pub(crate) fn ext_lower(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// True when `s` holds a glob pattern character (`*`, `?`, `[`).
pub(crate) fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A bar style from an indicatif template (the plain bar should the template not parse).
pub(crate) fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Renders library progress as an indicatif bar; `clear` removes the bar when the operation
/// ends (a single conversion), otherwise the caller decides (a batch's multi-progress display).
pub(crate) struct Bar {
    pub bar: ProgressBar,
    pub clear: bool,
}

impl vm2dmp::Progress for Bar {
    fn start(&self, _phase: &str, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(0);
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn finish(&self) {
        if self.clear {
            self.bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(1023.0), "1023 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(human_bytes(2048.0 * 1024f64.powi(4)), "2048.0 TiB");
    }

    #[test]
    fn extensions() {
        assert_eq!(ext_lower(Path::new("a/VM.VMRS")), "vmrs");
        assert_eq!(ext_lower(Path::new("a/noext")), "");
    }
}
