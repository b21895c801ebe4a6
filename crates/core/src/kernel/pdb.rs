//! Kernel symbols from a PDB file or a local symbol store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::pe::PdbId;

/// Global symbols of a kernel PDB, by name, as image-relative addresses.
#[derive(Debug, Clone)]
pub struct Symbols {
    /// The PDB file read.
    pub path: PathBuf,
    names: HashMap<String, u32>,
}

impl Symbols {
    /// Loads the PDB at `path`, or from the symbol store folder `path`
    /// (`<path>/<pdb name>/<GUID><age>/<pdb name>`), and checks it against `want`.
    pub fn load(path: &Path, want: Option<&PdbId>) -> Result<Symbols, String> {
        let _ = want;
        Err(format!(
            "{}: reading PDB files is not supported yet",
            path.display()
        ))
    }

    /// Image-relative address of `name`.
    pub fn rva(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }
}
