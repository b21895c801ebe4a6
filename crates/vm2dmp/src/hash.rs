//! SHA-256 of input files and dumps: what shows which input made which dump.
//!
//! A conversion asked to hash ([`ConvertOptions::hash`](crate::ConvertOptions::hash)) reads
//! each input file once more from start to end on a thread of its own, while the pages are
//! being converted: the conversion reads its inputs out of order (and copies stored-as-is
//! pages file to file without them entering this process), so a digest, which needs the bytes
//! in order, cannot be taken from its reads; the extra pass mostly finds the bytes in the page
//! cache the conversion fills. The dump is hashed right after it is written and before it is
//! flushed and renamed: its pages are then still in the page cache, so the file is read back
//! from memory, not from the disk (`cargo bench -p vm2dmp-benches --bench hash` measures it
//! against `sha256sum`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vm2dmp_source::{Cancel, Error, Result};

/// Bytes read at a time.
const BLOCK: usize = 1 << 20;

/// `bytes` as lowercase hexadecimal.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The SHA-256 of the whole file at `path`, as 64 lowercase hexadecimal digits. Stops with
/// [`Error::Cancelled`] at the next MiB once `cancel` is set.
pub fn sha256_file(path: &Path, cancel: &Cancel) -> Result<String> {
    sha256_until(path, &|| cancel.is_cancelled())
}

/// [`sha256_file`], stopping with [`Error::Cancelled`] when `stop` says so.
pub(crate) fn sha256_until(path: &Path, stop: &dyn Fn() -> bool) -> Result<String> {
    let io = |action: &'static str| {
        move |source| Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let mut file = std::fs::File::open(path).map_err(io("cannot open"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        if stop() {
            return Err(Error::Cancelled);
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("cannot read")(e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(to_hex(&hasher.finalize()))
}

/// The SHA-256 of each of `files`, keyed by the path as given.
pub(crate) fn sha256_files(
    files: &[PathBuf],
    stop: &dyn Fn() -> bool,
) -> Result<BTreeMap<PathBuf, String>> {
    files
        .iter()
        .map(|f| Ok((f.clone(), sha256_until(f, stop)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let abc = dir.path().join("abc");
        std::fs::write(&abc, b"abc").unwrap();
        let big = dir.path().join("big");
        let data: Vec<u8> = (0..3 * BLOCK + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &data).unwrap();
        let c = Cancel::new();
        assert_eq!(
            sha256_file(&empty, &c).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_file(&abc, &c).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_file(&big, &c).unwrap(),
            to_hex(&Sha256::digest(&data))
        );
        c.cancel();
        assert!(matches!(sha256_file(&abc, &c), Err(Error::Cancelled)));
        let missing = sha256_file(&dir.path().join("missing"), &Cancel::new()).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
    }
}
