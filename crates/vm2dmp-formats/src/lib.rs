//! On-disk structures of Hyper-V saved-state files.
//!
//! Plain little-endian structures parsed from byte slices, each with its size as a constant and a
//! doc line naming where the layout comes from. Parsing here only checks that the bytes are there;
//! what the values mean and whether they are consistent with the file is checked by the reader
//! (`vm2dmp` crate), which knows the file and the offset to report.
//!
//! The layouts are described in detail, with what was verified on real files, in
//! `docs/hyperv-saved-state.md` of the repository.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hvs;
/// Little-endian field readers: the ones every vm2dmp reader uses.
pub use vm2dmp_source::le;
pub mod legacy;
pub mod memory;
pub mod partition;

/// CRC-32 (reflected, polynomial 0xEDB88320) of `bytes` with the 4-byte field at `crc_at`
/// taken as zero: the checksum convention of every HVS structure.
pub fn crc32_with_zeroed_field(bytes: &[u8], crc_at: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let split = crc_at.min(bytes.len());
    h.update(&bytes[..split]);
    let after = split.saturating_add(4).min(bytes.len());
    h.update(&[0u8; 4][..after - split]);
    h.update(&bytes[after..]);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_with_zeroed_field_matches_manual() {
        let mut b = *b"0123456789abcdef";
        let want = {
            let mut z = b;
            z[4..8].copy_from_slice(&[0; 4]);
            crc32fast::hash(&z)
        };
        b[4..8].copy_from_slice(&[0xAA; 4]);
        assert_eq!(crc32_with_zeroed_field(&b, 4), want);
    }
}
