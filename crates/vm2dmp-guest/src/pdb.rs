//! Kernel symbols from a PDB file or a local symbol store, checked against the kernel's
//! CodeView record (GUID and age) so that a PDB of another build is never used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pdb::FallibleIterator;

use super::pe::{guid_string, PdbId};

/// Global symbols read at most from one PDB.
const MAX_SYMBOLS: usize = 4 << 20;

/// Global symbols of a kernel PDB, by name, as image-relative addresses.
#[derive(Debug, Clone)]
pub struct Symbols {
    /// The PDB file read.
    pub path: PathBuf,
    /// GUID of the PDB, in on-disk byte order (Data1..3 little-endian).
    pub guid: [u8; 16],
    /// Age of the PDB: the DBI stream's, else the information stream's.
    pub age: u32,
    names: HashMap<String, u32>,
}

/// The PDB file to read: `path` itself, or in the symbol-store folder `path`
/// `<path>/<name>/<GUID><age>/<name>` (also `<path>/<name>` and `<path>/ntkrnlmp.pdb`).
fn locate(path: &Path, want: Option<&PdbId>) -> Result<PathBuf, String> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(format!("{}: no such file or folder", path.display()));
    }
    let name = want.map_or("ntkrnlmp.pdb", |w| w.name.as_str());
    // Only the file name of the CodeView record: never a path out of the store.
    let name = name.rsplit(['\\', '/']).next().unwrap_or(name);
    let mut tried = Vec::new();
    if let Some(w) = want {
        tried.push(path.join(name).join(w.store_key()).join(name));
    }
    tried.push(path.join(name));
    tried.push(path.join("ntkrnlmp.pdb"));
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "{}: no {name} for this kernel in the folder (looked for {})",
            path.display(),
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

impl Symbols {
    /// Loads the PDB at `path`, or from the symbol-store folder `path`, and checks its GUID
    /// and age against `want` (the kernel's CodeView record).
    pub fn load(path: &Path, want: Option<&PdbId>) -> Result<Symbols, String> {
        let file_path = locate(path, want)?;
        let shown = file_path.display().to_string();
        let file = std::fs::File::open(&file_path).map_err(|e| format!("{shown}: {e}"))?;
        let len = file.metadata().map_err(|e| format!("{shown}: {e}"))?.len();
        Self::read(Bounded::new(file, len), &file_path, Some(want))
    }

    /// Reads symbols from a PDB held in memory, whatever build it is for (fuzzing).
    pub(crate) fn from_bytes(data: &[u8]) -> Result<Symbols, String> {
        Self::read(
            Bounded::new(std::io::Cursor::new(data), data.len() as u64),
            Path::new("<memory>"),
            None,
        )
    }

    /// Reads the PDB in `source`. `want`: `Some(id)` checks the GUID and age against the
    /// kernel's CodeView record (`Some(None)`: the kernel has none, an error); `None` takes
    /// any PDB.
    fn read<'s, S: pdb::Source<'s> + 's>(
        source: S,
        file_path: &Path,
        want: Option<Option<&PdbId>>,
    ) -> Result<Symbols, String> {
        // The PDB parser is a dependency reading a file the user named: should it panic on a
        // malformed one, the PDB is refused and the conversion goes on without symbols.
        // While it runs, a panic is expected and handled: `crate::panic_is_handled` tells a
        // panic hook not to report it.
        struct Handled(bool);
        impl Drop for Handled {
            fn drop(&mut self) {
                HANDLED_PANIC.with(|h| h.set(self.0));
            }
        }
        let guard = Handled(HANDLED_PANIC.with(|h| h.replace(true)));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::read_unguarded(source, file_path, want)
        }));
        drop(guard);
        result.unwrap_or_else(|_| {
            Err(format!(
                "{}: the PDB parser failed on this file",
                file_path.display()
            ))
        })
    }

    fn read_unguarded<'s, S: pdb::Source<'s> + 's>(
        source: S,
        file_path: &Path,
        want: Option<Option<&PdbId>>,
    ) -> Result<Symbols, String> {
        let shown = file_path.display().to_string();
        let err = |e: pdb::Error| format!("{shown}: {e}");
        let mut pdb = pdb::PDB::open(source).map_err(err)?;
        let info = pdb.pdb_information().map_err(err)?;
        let (d1, d2, d3, d4) = info.guid.as_fields();
        let mut guid = [0u8; 16];
        guid[..4].copy_from_slice(&d1.to_le_bytes());
        guid[4..6].copy_from_slice(&d2.to_le_bytes());
        guid[6..8].copy_from_slice(&d3.to_le_bytes());
        guid[8..].copy_from_slice(d4);
        // The image records the DBI age; the information stream's may be higher.
        let age = pdb
            .debug_information()
            .ok()
            .and_then(|d| d.age())
            .unwrap_or(info.age);
        match want {
            Some(Some(w)) if w.guid != guid || (w.age != age && w.age != info.age) => {
                return Err(format!(
                    "{shown} is for build {} age {age}, the kernel in memory is {} age {}",
                    guid_string(&guid),
                    guid_string(&w.guid),
                    w.age
                ))
            }
            Some(None) => {
                return Err(format!(
                    "{shown}: the kernel in memory has no CodeView record to match the PDB against"
                ))
            }
            _ => {}
        }
        let map = pdb.address_map().map_err(err)?;
        let table = pdb.global_symbols().map_err(err)?;
        let mut names = HashMap::new();
        let mut it = table.iter();
        while let Some(sym) = it.next().map_err(err)? {
            if names.len() >= MAX_SYMBOLS {
                break;
            }
            let (name, offset) = match sym.parse() {
                Ok(pdb::SymbolData::Public(p)) => (p.name, p.offset),
                Ok(pdb::SymbolData::Data(d)) => (d.name, d.offset),
                _ => continue,
            };
            if let Some(rva) = offset.to_rva(&map) {
                names.entry(name.to_string().into_owned()).or_insert(rva.0);
            }
        }
        Ok(Symbols {
            path: file_path.to_path_buf(),
            guid,
            age,
            names,
        })
    }

    /// Image-relative address of `name`.
    pub fn rva(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// Number of symbols read.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no symbol was read.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

thread_local! {
    /// Set on this thread while a panic would be caught and turned into an error.
    pub(crate) static HANDLED_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The PDB file as the `pdb` crate reads it: each view (a stream, gathered from its pages)
/// must lie inside the file and be no larger than it, and all views together at most a few
/// times its size. A stream's page list may name one page over and over; without these
/// bounds a small file could ask for gigabytes.
struct Bounded<T> {
    inner: T,
    len: u64,
    left: u64,
}

impl<T> Bounded<T> {
    fn new(inner: T, len: u64) -> Self {
        Self {
            inner,
            len,
            left: len.saturating_mul(8).saturating_add(1 << 20),
        }
    }
}

impl<T> std::fmt::Debug for Bounded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bounded({} bytes)", self.len)
    }
}

#[derive(Debug)]
struct View(Vec<u8>);

impl<'s> pdb::SourceView<'s> for View {
    fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl<'s, T: std::io::Read + std::io::Seek + 's> pdb::Source<'s> for Bounded<T> {
    fn view(
        &mut self,
        slices: &[pdb::SourceSlice],
    ) -> std::result::Result<Box<dyn pdb::SourceView<'s>>, std::io::Error> {
        let too_big = || std::io::Error::other("a PDB stream larger than the file");
        let mut total = 0u64;
        for s in slices {
            let end = s.offset.checked_add(s.size as u64).ok_or_else(too_big)?;
            if end > self.len {
                return Err(std::io::Error::other(
                    "a PDB stream page past the end of the file",
                ));
            }
            total = total.checked_add(s.size as u64).ok_or_else(too_big)?;
        }
        if total > self.len || total > self.left {
            return Err(too_big());
        }
        self.left -= total;
        let mut bytes = vec![0u8; total as usize];
        let mut at = 0usize;
        for s in slices {
            self.inner.seek(std::io::SeekFrom::Start(s.offset))?;
            self.inner.read_exact(&mut bytes[at..at + s.size])?;
            at += s.size;
        }
        Ok(Box::new(View(bytes)))
    }
}
