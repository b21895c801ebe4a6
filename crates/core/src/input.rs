//! Input files: opened read-only and memory-mapped, with an optional in-memory overlay of
//! patches (the replayed entries of a dirty HVS file). The file itself is never written.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

use crate::error::{Error, FileCtx, Result};

/// Bytes replacing part of the file, as a pending replay-log entry would write them.
#[derive(Debug, Clone)]
pub(crate) struct Patch {
    pub offset: u64,
    pub data: Vec<u8>,
}

enum Backing {
    Map(memmap2::Mmap),
    /// Bytes handed over by the caller (in-memory inputs, fuzzing).
    Owned(Vec<u8>),
    /// Empty files cannot be mapped.
    Empty,
}

/// A read-only input file.
pub(crate) struct InputFile {
    pub ctx: FileCtx,
    backing: Backing,
    patches: Vec<Patch>,
}

impl std::fmt::Debug for InputFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputFile")
            .field("path", &self.ctx.path)
            .field("len", &self.len())
            .field("patches", &self.patches.len())
            .finish()
    }
}

impl InputFile {
    pub fn open(path: &Path) -> Result<Self> {
        let io = |action, source| Error::Input {
            path: path.to_path_buf(),
            action,
            source,
        };
        let file = File::open(path).map_err(|e| io("cannot open", e))?;
        let meta = file.metadata().map_err(|e| io("cannot stat", e))?;
        if meta.is_dir() {
            return Err(io(
                "cannot open",
                std::io::Error::other("is a directory, not a saved-state file"),
            ));
        }
        let backing = if meta.len() == 0 {
            Backing::Empty
        } else {
            Backing::Map(crate::mmap::map_read_only(&file).map_err(|e| io("cannot map", e))?)
        };
        Ok(Self {
            ctx: FileCtx::new(path),
            backing,
            patches: Vec::new(),
        })
    }

    /// An input held in memory; `name` stands for its path in messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Self {
        Self {
            ctx: FileCtx::new(name),
            backing: Backing::Owned(bytes),
            patches: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    /// The file's bytes as they are on disk (patches not applied).
    pub fn raw(&self) -> &[u8] {
        match &self.backing {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
            Backing::Empty => &[],
        }
    }

    pub fn len(&self) -> u64 {
        self.raw().len() as u64
    }

    pub fn set_patches(&mut self, patches: Vec<Patch>) {
        self.patches = patches;
    }

    /// `len` bytes at `offset` with patches applied, or a corruption error naming `structure`
    /// when the range is not inside the file.
    pub fn bytes(&self, offset: u64, len: u64, structure: &'static str) -> Result<Cow<'_, [u8]>> {
        let raw = self.raw();
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= raw.len() as u64)
            .ok_or_else(|| {
                self.ctx.corrupt(
                    structure,
                    offset,
                    format!(
                        "{len} bytes run past the end of the file ({} bytes)",
                        raw.len()
                    ),
                )
            })?;
        // Both fit in usize: they are bounded by the mapped length.
        let slice = &raw[offset as usize..end as usize];
        if !self
            .patches
            .iter()
            .any(|p| p.offset < end && p.offset + p.data.len() as u64 > offset)
        {
            return Ok(Cow::Borrowed(slice));
        }
        let mut owned = slice.to_vec();
        for p in &self.patches {
            let p_end = p.offset + p.data.len() as u64;
            if p.offset >= end || p_end <= offset {
                continue;
            }
            let from = p.offset.max(offset);
            let to = p_end.min(end);
            owned[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&p.data[(from - p.offset) as usize..(to - p.offset) as usize]);
        }
        Ok(Cow::Owned(owned))
    }
}
