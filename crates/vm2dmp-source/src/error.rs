//! The error type of every vm2dmp crate: each variant about a file names it, and corruption
//! names the structure and the byte offset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading a saved state or writing a dump.
///
/// Each variant that concerns a file names it; corruption names the structure and the byte
/// offset in the file, so one line tells the user where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation on a file.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed, in words (`cannot list folder`, ...).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An input file could not be opened or mapped.
    #[error("{}: {action}: {source}", path.display())]
    Input {
        /// The input file.
        path: PathBuf,
        /// What failed, in words (`cannot open`, `cannot read`, ...).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A structure in the file is inconsistent or truncated.
    #[error("{}: {structure} at offset {offset:#x}: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The structure's name.
        structure: &'static str,
        /// Byte offset of the structure in the file.
        offset: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// The file is valid as far as we can tell but uses a variant we do not read.
    #[error("{}: unsupported: {detail}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The variant not read.
        detail: String,
    },
    /// A well-formed file that holds no guest memory (running VM, production checkpoint, ...).
    #[error("{}: no memory image in this file: {detail}", path.display())]
    NoMemoryImage {
        /// The file.
        path: PathBuf,
        /// Why it holds none.
        detail: String,
    },
    /// The companion `.bin` of a `.vsv` could not be found.
    #[error("{}: memory file not found: looked for {tried} beside it", vsv.display())]
    MissingBin {
        /// The `.vsv`.
        vsv: PathBuf,
        /// The names looked for.
        tried: String,
    },
    /// A guest-physical read touched an address with no RAM behind it.
    #[error("guest-physical address {gpa:#x} is not backed by guest RAM (MMIO hole or beyond the end of RAM)")]
    Hole {
        /// The guest-physical address.
        gpa: u64,
    },
    /// The caller asked for something that does not exist (e.g. a chunk index).
    #[error("{0}")]
    InvalidArgument(String),
    /// No VM or checkpoint of a folder has the name or GUID asked for.
    #[error("{}: no VM or checkpoint named \"{name}\"{found}", path.display())]
    NoMatch {
        /// The folder searched.
        path: PathBuf,
        /// The name or GUID asked for.
        name: String,
        /// What the folder holds, as `; found: ...` (empty when nothing).
        found: String,
    },
    /// More than one entry fits where one is needed.
    #[error("{}: {kind}{found}", path.display())]
    Ambiguous {
        /// The folder or file the entries were found from.
        path: PathBuf,
        /// Which choice is ambiguous.
        kind: Ambiguity,
        /// What the folder holds, as `; found: ...` (empty when nothing).
        found: String,
    },
    /// A folder holds more files than a search looks at.
    #[error("{}: more than {limit} files below this folder", path.display())]
    TooManyFiles {
        /// The folder.
        path: PathBuf,
        /// Most files looked at.
        limit: usize,
    },
    /// The output file exists and overwriting was not asked for.
    #[error("{}: output exists", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// Not enough free space for the output.
    #[error("{}: not enough free disk space: need {needed} bytes, {available} available", path.display())]
    NoSpace {
        /// The output file.
        path: PathBuf,
        /// Bytes the output needs.
        needed: u64,
        /// Bytes the file system reports available.
        available: u64,
    },
    /// A kernel dump could not be parsed or read.
    #[error("{}: {source}", path.display())]
    Dump {
        /// The dump file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: vm2dmp_kdump::DumpError,
    },
    /// The operation was cancelled (e.g. by Ctrl-C).
    #[error("cancelled")]
    Cancelled,
}

/// Which choice an [`Error::Ambiguous`] is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ambiguity {
    /// A name matches several entries (a GUID would not).
    #[error("\"{name}\" names {count} entries")]
    Name {
        /// The name asked for.
        name: String,
        /// Entries it matches.
        count: usize,
    },
    /// A folder holds several memory images and none was chosen.
    #[error("{count} memory images found")]
    SeveralImages {
        /// Memory images found.
        count: usize,
    },
    /// Several configurations name one virtual disk.
    #[error("several configurations name this disk ({names})")]
    SharedDisk {
        /// The entries' names, quoted and comma-separated.
        names: String,
    },
}

impl Error {
    /// True when the error is about the input files (exit code 2 territory), as opposed to an
    /// output or environment problem.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::Input { .. }
                | Error::Corrupt { .. }
                | Error::Unsupported { .. }
                | Error::NoMemoryImage { .. }
                | Error::MissingBin { .. }
                | Error::Dump { .. }
        )
    }
}

/// Error context for one input file: builds errors that name it.
#[derive(Debug, Clone)]
pub struct FileCtx {
    /// The file the errors name.
    pub path: Arc<Path>,
}

impl FileCtx {
    /// Context for the file at `path`.
    pub fn new(path: &Path) -> Self {
        Self {
            path: Arc::from(path),
        }
    }

    /// [`Error::Corrupt`]: `structure` at byte `offset` of this file is wrong as `detail` says.
    pub fn corrupt(
        &self,
        structure: &'static str,
        offset: u64,
        detail: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: self.path.to_path_buf(),
            structure,
            offset,
            detail: detail.into(),
        }
    }

    /// [`Error::Unsupported`] naming this file.
    pub fn unsupported(&self, detail: impl Into<String>) -> Error {
        Error::Unsupported {
            path: self.path.to_path_buf(),
            detail: detail.into(),
        }
    }

    /// [`Error::NoMemoryImage`] naming this file.
    pub fn no_memory(&self, detail: impl Into<String>) -> Error {
        Error::NoMemoryImage {
            path: self.path.to_path_buf(),
            detail: detail.into(),
        }
    }
}
