//! The output file: sized up front, written at fixed offsets from any thread, under a temporary
//! name beside the target, renamed over it only when complete. Dropping an uncommitted output
//! removes the temporary file, so a failed or interrupted run leaves nothing under the target
//! name.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use vm2dmp_source::{CopyOutcome, Error, InputFile, Result};

/// An output file being written.
#[derive(Debug)]
pub struct OutputFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    /// Set once in-kernel copies turn out unsupported for this output: not tried again.
    no_copy: std::sync::atomic::AtomicBool,
}

fn io(path: &Path, action: &'static str, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

impl OutputFile {
    /// Creates a temporary file of `size` bytes beside `target`. Refuses when `target` exists
    /// and `force` is false, and when the file system reports less free space than `needed`.
    pub fn create(target: &Path, size: u64, needed: u64, force: bool) -> Result<Self> {
        if target.exists() && !force {
            return Err(Error::OutputExists {
                path: target.to_path_buf(),
            });
        }
        if target.is_dir() {
            return Err(io(
                target,
                "cannot write",
                std::io::Error::other("is a directory"),
            ));
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Ok(available) = fs4::available_space(&dir) {
            if available < needed {
                return Err(Error::NoSpace {
                    path: target.to_path_buf(),
                    needed,
                    available,
                });
            }
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        // `.NAME.partial-PID`, or `-2`, `-3`... after it when that exists: another conversion
        // to the same target in this process, or a file left by an earlier process with the
        // same pid. Neither is ours to remove; each conversion writes and renames its own.
        let pid = std::process::id();
        let mut n = 1u32;
        let (temp, file) = loop {
            let temp = if n == 1 {
                dir.join(format!(".{name}.partial-{pid}"))
            } else {
                dir.join(format!(".{name}.partial-{pid}-{n}"))
            };
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(f) => break (temp, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(io(&temp, "cannot create", e)),
            }
        };
        let out = Self {
            target: target.to_path_buf(),
            temp,
            file: Some(file),
            no_copy: std::sync::atomic::AtomicBool::new(false),
        };
        out.file()?
            .set_len(size)
            .map_err(|e| io(&out.target, "cannot size the output", e))?;
        Ok(out)
    }

    fn file(&self) -> Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| io(&self.temp, "cannot write", std::io::Error::other("closed")))
    }

    /// Path of the temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Writes `buf` at `offset`. Safe to call from several threads at once.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let f = self.file()?;
        positioned::write_all_at(f, buf, offset).map_err(|e| io(&self.target, "cannot write", e))
    }

    /// Copies `len` bytes of `input` at `offset` to `out_offset`, inside the kernel where
    /// the platform can; `Ok(false)` when it cannot (nothing written: write the bytes).
    pub(crate) fn copy_from(
        &self,
        input: &InputFile,
        offset: u64,
        len: u64,
        out_offset: u64,
        structure: &'static str,
    ) -> Result<bool> {
        use std::sync::atomic::Ordering;
        if self.no_copy.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let copied = input
            .copy_to(offset, len, self.file()?, out_offset, structure)
            .map_err(|e| match e {
                Error::Io { source, .. } => io(&self.target, "cannot write", source),
                e => e,
            })?;
        match copied {
            CopyOutcome::Done => Ok(true),
            CopyOutcome::Skipped => Ok(false),
            CopyOutcome::Unsupported => {
                self.no_copy.store(true, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// The SHA-256 (lowercase hex) of the file as written so far, read back from the start:
    /// right after the pages were written they are still in the page cache, so this reads
    /// memory, not the disk. Stops with [`Error::Cancelled`] when `stop` says so.
    pub fn sha256(&self, stop: &dyn Fn() -> bool) -> Result<String> {
        crate::hash::sha256_until(&self.temp, stop)
    }

    /// Flushes the data to disk and renames the file to its target name.
    pub fn commit(mut self) -> Result<()> {
        let f = self
            .file
            .take()
            .ok_or_else(|| io(&self.temp, "cannot commit", std::io::Error::other("closed")))?;
        f.sync_all()
            .map_err(|e| io(&self.target, "cannot flush", e))?;
        drop(f);
        replace(&self.temp, &self.target).map_err(|e| io(&self.target, "cannot rename", e))?;
        // Renamed: nothing left to clean up.
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        self.file.take();
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Renames `from` over `to`. `std::fs::rename` replaces an existing target on Unix and on
/// Windows (MoveFileExW with MOVEFILE_REPLACE_EXISTING).
fn replace(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)
}

/// Positioned writes: `pwrite` on Unix, `WriteFile` with an offset on Windows, and a
/// seek-and-write fallback (serialised by a lock) elsewhere.
mod positioned {
    use std::fs::File;

    #[cfg(unix)]
    pub fn write_all_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
    }

    #[cfg(windows)]
    pub fn write_all_at(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            let n = f.seek_write(buf, offset)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    #[cfg(not(any(unix, windows)))]
    pub fn write_all_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = f;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.dmp");
        let out = OutputFile::create(&target, 8192, 0, false).unwrap();
        out.write_at(b"PAGE", 0).unwrap();
        out.write_at(b"tail", 8188).unwrap();
        assert!(!target.exists());
        out.commit().unwrap();
        let data = std::fs::read(&target).unwrap();
        assert_eq!(data.len(), 8192);
        assert_eq!(&data[..4], b"PAGE");
        assert_eq!(&data[8188..], b"tail");
        // Exists: refused without force, nothing changed.
        let e = OutputFile::create(&target, 10, 0, false).unwrap_err();
        assert!(matches!(e, Error::OutputExists { .. }));
        // Dropped without commit: the temporary file goes, the target stays as it was.
        let out = OutputFile::create(&target, 100, 0, true).unwrap();
        let temp = out.temp_path().to_path_buf();
        assert!(temp.exists());
        drop(out);
        assert!(!temp.exists());
        assert_eq!(std::fs::read(&target).unwrap().len(), 8192);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Two conversions to one target at once (or a file left by an earlier process with our
    /// pid): each writes its own temporary file; none removes another's.
    #[test]
    fn conversions_to_one_target_do_not_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.dmp");
        let stale = dir
            .path()
            .join(format!(".out.dmp.partial-{}", std::process::id()));
        std::fs::write(&stale, b"left by an earlier process").unwrap();
        let a = OutputFile::create(&target, 4096, 0, false).unwrap();
        let b = OutputFile::create(&target, 4096, 0, false).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
        assert!(a.temp_path() != stale && b.temp_path() != stale);
        a.write_at(b"AAAA", 0).unwrap();
        b.write_at(b"BBBB", 0).unwrap();
        a.commit().unwrap();
        assert_eq!(&std::fs::read(&target).unwrap()[..4], b"AAAA");
        drop(b);
        assert_eq!(&std::fs::read(&target).unwrap()[..4], b"AAAA");
        assert_eq!(
            std::fs::read(&stale).unwrap(),
            b"left by an earlier process"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn free_space_check_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("big.dmp");
        let e = OutputFile::create(&target, 0, u64::MAX, false).unwrap_err();
        assert!(matches!(e, Error::NoSpace { .. }), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
