//! Input files: opened read-only, with an optional in-memory overlay of patches (the replayed
//! entries of a dirty HVS file). The file itself is never written.
//!
//! Structures and values are read with positioned reads into owned buffers ([`InputFile::bytes`]),
//! not through a memory map: a file that shrinks while it is open (a copy still being written,
//! a saved state the host rewrites) then gives an error naming the file, the structure and the
//! offset, where a read through a map would raise SIGBUS and kill the process. A read costs one
//! system call and one copy, small next to decoding what was read (a RAM block read is at most
//! 1 MiB and decodes to 1 MiB). The length is the one the file had when it was opened; bytes a
//! file gains afterwards are never read.
//! Kernel dumps given to `info` and `verify` are read the same way.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, FileCtx, Result};

/// What [`InputFile::copy_to`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The bytes were copied.
    Done,
    /// Not this range (patched by the replay log, or the copy failed for a reason the read
    /// and write path will name): read and write it.
    Skipped,
    /// Not between these files at all (another platform, file system or an in-memory
    /// input): read and write this and every later range.
    Unsupported,
}

/// Bytes replacing part of the file, as a pending replay-log entry would write them.
#[derive(Debug, Clone)]
pub struct Patch {
    /// Byte offset in the file of the first byte replaced.
    pub offset: u64,
    /// The replacement bytes.
    pub data: Vec<u8>,
}

enum Backing {
    /// A file on disk, read with positioned reads.
    Disk { file: File, len: u64 },
    /// Bytes handed over by the caller (in-memory inputs, fuzzing).
    Owned(Vec<u8>),
}

/// A read-only input file.
pub struct InputFile {
    /// Error context naming the file.
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
    /// Opens the file at `path` read-only and records its length. [`Error::Input`] when it
    /// cannot be opened or is a directory.
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
        Ok(Self {
            ctx: FileCtx::new(path),
            backing: Backing::Disk {
                file,
                len: meta.len(),
            },
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

    /// The file's path (for an in-memory input, the name it was given).
    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    /// True when the file was empty when opened.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the file when it was opened.
    pub fn len(&self) -> u64 {
        match &self.backing {
            Backing::Disk { len, .. } => *len,
            Backing::Owned(v) => v.len() as u64,
        }
    }

    /// Replaces the overlay: later reads see `patches` applied in order (a later patch wins
    /// where two overlap). The file itself is not written.
    pub fn set_patches(&mut self, patches: Vec<Patch>) {
        self.patches = patches;
    }

    /// `len` bytes at `offset` with patches applied, or a corruption error naming `structure`
    /// when the range is not inside the file (or no longer is: a file that shrank since it
    /// was opened).
    pub fn bytes(&self, offset: u64, len: u64, structure: &'static str) -> Result<Cow<'_, [u8]>> {
        let end = self.end_of(offset, len, structure)?;
        let mut data = match &self.backing {
            Backing::Owned(v) => {
                // Both fit in usize: they are bounded by the vector's length.
                let slice = &v[offset as usize..end as usize];
                if !self.patched(offset, end) {
                    return Ok(Cow::Borrowed(slice));
                }
                slice.to_vec()
            }
            Backing::Disk { file, .. } => {
                // Bounded by the file's length; a length the address space cannot hold is
                // refused rather than allocated.
                let n = usize::try_from(len).map_err(|_| {
                    self.ctx.corrupt(
                        structure,
                        offset,
                        format!("{len} bytes cannot be held in memory"),
                    )
                })?;
                let mut buf = vec![0u8; n];
                read_exact_at(file, &mut buf, offset)
                    .map_err(|e| self.read_error(structure, offset, len, e))?;
                buf
            }
        };
        self.apply_patches(offset, &mut data);
        Ok(Cow::Owned(data))
    }

    /// Fills `buf` with the bytes at `offset` (patches applied): [`InputFile::bytes`] into
    /// the caller's buffer, without an allocation.
    pub fn read_into(&self, offset: u64, buf: &mut [u8], structure: &'static str) -> Result<()> {
        let len = buf.len() as u64;
        let end = self.end_of(offset, len, structure)?;
        match &self.backing {
            // Both fit in usize: they are bounded by the vector's length.
            Backing::Owned(v) => buf.copy_from_slice(&v[offset as usize..end as usize]),
            Backing::Disk { file, .. } => read_exact_at(file, buf, offset)
                .map_err(|e| self.read_error(structure, offset, len, e))?,
        }
        self.apply_patches(offset, buf);
        Ok(())
    }

    /// Overlays the patches on `data`, the bytes at `offset`.
    fn apply_patches(&self, offset: u64, data: &mut [u8]) {
        let end = offset + data.len() as u64;
        for p in &self.patches {
            let p_end = p.offset + p.data.len() as u64;
            if p.offset >= end || p_end <= offset {
                continue;
            }
            let from = p.offset.max(offset);
            let to = p_end.min(end);
            data[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&p.data[(from - p.offset) as usize..(to - p.offset) as usize]);
        }
    }

    /// Copies `len` bytes at `offset` into `out` at `out_offset` inside the kernel, without
    /// passing them through a user-space buffer (Linux `copy_file_range`; a file system
    /// that supports it may share the blocks). When it is not done ([`CopyOutcome::Skipped`],
    /// [`CopyOutcome::Unsupported`]) the caller reads and writes the range instead; that also
    /// names the failing file precisely when the copy failed for a reason other than a full
    /// output (an `Err` here is a truncated input or a full output).
    pub fn copy_to(
        &self,
        offset: u64,
        len: u64,
        out: &File,
        out_offset: u64,
        structure: &'static str,
    ) -> Result<CopyOutcome> {
        let Backing::Disk { file, .. } = &self.backing else {
            return Ok(CopyOutcome::Unsupported);
        };
        let end = self.end_of(offset, len, structure)?;
        if self.patched(offset, end) {
            return Ok(CopyOutcome::Skipped);
        }
        match copy_range(file, offset, len, out, out_offset) {
            Ok(true) => Ok(CopyOutcome::Done),
            Ok(false) => Ok(CopyOutcome::Unsupported),
            Err(CopyError::Read(e)) => Err(self.read_error(structure, offset, len, e)),
            Err(CopyError::OutputFull(e)) => Err(Error::Io {
                path: self.ctx.path.to_path_buf(),
                action: "cannot copy to the output",
                source: e,
            }),
            Err(CopyError::Other) => Ok(CopyOutcome::Skipped),
        }
    }

    /// `offset + len`, or a corruption error naming `structure` when the range is not
    /// inside the file.
    fn end_of(&self, offset: u64, len: u64, structure: &'static str) -> Result<u64> {
        let file_len = self.len();
        offset
            .checked_add(len)
            .filter(|&e| e <= file_len)
            .ok_or_else(|| {
                self.ctx.corrupt(
                    structure,
                    offset,
                    format!("{len} bytes run past the end of the file ({file_len} bytes)"),
                )
            })
    }

    fn patched(&self, offset: u64, end: u64) -> bool {
        self.patches
            .iter()
            .any(|p| p.offset < end && p.offset + p.data.len() as u64 > offset)
    }

    fn read_error(
        &self,
        structure: &'static str,
        offset: u64,
        len: u64,
        e: std::io::Error,
    ) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            let now = match &self.backing {
                Backing::Disk { file, .. } => file
                    .metadata()
                    .map(|m| format!("{} bytes now", m.len()))
                    .unwrap_or_else(|_| "shorter now".into()),
                Backing::Owned(_) => "shorter now".into(),
            };
            return self.ctx.corrupt(
                structure,
                offset,
                format!(
                    "{len} bytes cannot be read: the file was {} bytes when opened and is {now} (truncated or rewritten while being read)",
                    self.len()
                ),
            );
        }
        Error::Input {
            path: self.ctx.path.to_path_buf(),
            action: "cannot read",
            source: std::io::Error::new(
                e.kind(),
                format!("{structure} at offset {offset:#x} ({len} bytes): {e}"),
            ),
        }
    }
}

/// Fills `buf` from `file` at `offset`; `UnexpectedEof` if the file ends first.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Fills `buf` from `file` at `offset`; `UnexpectedEof` if the file ends first.
#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                let rest = buf;
                buf = &mut rest[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from `file` at `offset`; `UnexpectedEof` if the file ends first. Platforms
/// without positioned reads: a seek and a read under a process-wide lock.
#[cfg(not(any(unix, windows)))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    allow(dead_code, reason = "only the Linux copy produces errors")
)]
enum CopyError {
    /// The input ended early.
    Read(std::io::Error),
    /// The output's file system is full, or the output may not grow.
    OutputFull(std::io::Error),
    /// Any other failure, on either side: the read-and-write path tells which.
    Other,
}

/// In-kernel copy of `len` bytes; `Ok(false)` when the first call reports the pair of files
/// unsupported (nothing copied, the caller falls back to read and write).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn copy_range(
    input: &File,
    mut offset: u64,
    len: u64,
    out: &File,
    mut out_offset: u64,
) -> std::result::Result<bool, CopyError> {
    use rustix::io::Errno;
    let mut left = len;
    let mut first = true;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        match rustix::fs::copy_file_range(
            input,
            Some(&mut offset),
            out,
            Some(&mut out_offset),
            chunk,
        ) {
            // Some file systems (procfs, overlayfs) answer 0 instead of an error: as the
            // standard library's copy does, read and write instead.
            Ok(0) if first => return Ok(false),
            Ok(0) => {
                return Err(CopyError::Read(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(n) => left -= n as u64,
            Err(Errno::INTR) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP | Errno::PERM)
                if first =>
            {
                return Ok(false);
            }
            Err(e @ (Errno::NOSPC | Errno::DQUOT | Errno::FBIG)) => {
                return Err(CopyError::OutputFull(e.into()));
            }
            Err(_) => return Err(CopyError::Other),
        }
        first = false;
    }
    Ok(true)
}

/// Other platforms: no in-kernel copy; the caller reads and writes.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn copy_range(
    _input: &File,
    _offset: u64,
    _len: u64,
    _out: &File,
    _out_offset: u64,
) -> std::result::Result<bool, CopyError> {
    Ok(false)
}

/// The file beside `path` with the same stem and extension `ext` (any case): a `.vsv`'s
/// `.bin`, a `.bin`'s `.vsv`, a `.vmss`'s `.vmem`.
pub fn sibling_file(path: &Path, ext: &str) -> Option<PathBuf> {
    let stem = path.file_stem()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let exact = dir.join(Path::new(stem).with_extension(ext));
    if exact.is_file() {
        return Some(exact);
    }
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let p = e.path();
        let same_stem = p.file_stem() == Some(stem);
        let same_ext = p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case(ext));
        (same_stem && same_ext && p.is_file()).then_some(p)
    })
}
