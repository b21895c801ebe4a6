//! Little-endian field readers over a byte slice: `None` when the field runs past the slice,
//! never a default value.

/// `N` bytes at `off`.
#[inline]
pub fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    b.get(off..end)?.try_into().ok()
}

/// The byte at `off`.
#[inline]
pub fn u8(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

/// A little-endian `u16` at `off`.
#[inline]
pub fn u16(b: &[u8], off: usize) -> Option<u16> {
    bytes::<2>(b, off).map(u16::from_le_bytes)
}

/// A little-endian `u32` at `off`.
#[inline]
pub fn u32(b: &[u8], off: usize) -> Option<u32> {
    bytes::<4>(b, off).map(u32::from_le_bytes)
}

/// A little-endian `u64` at `off`.
#[inline]
pub fn u64(b: &[u8], off: usize) -> Option<u64> {
    bytes::<8>(b, off).map(u64::from_le_bytes)
}

/// A little-endian `i64` at `off`.
#[inline]
pub fn i64(b: &[u8], off: usize) -> Option<i64> {
    bytes::<8>(b, off).map(i64::from_le_bytes)
}

/// A little-endian `u128` at `off`.
#[inline]
pub fn u128(b: &[u8], off: usize) -> Option<u128> {
    bytes::<16>(b, off).map(u128::from_le_bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_inside_and_refuses_past_the_end() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(super::u16(&b, 0), Some(0x0201));
        assert_eq!(super::u32(&b, 5), Some(0x0908_0706));
        assert_eq!(super::u64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(super::u64(&b, 2), None);
        assert_eq!(super::u32(&b, usize::MAX), None);
        assert_eq!(super::u8(&b, 9), None);
    }
}
