//! Little-endian field readers over a byte slice.
//!
//! Each reader takes the slice and a byte offset and returns `None` when the field does not lie
//! entirely inside the slice (including when `off + size` overflows); it never panics and never
//! substitutes a default.

/// The `N` bytes at `off`; `None` unless `off..off + N` lies inside `b`.
#[inline]
pub fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    b.get(off..end)?.try_into().ok()
}
/// The byte at `off`; `None` if `off` is past the end of `b`.
#[inline]
pub fn u8(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}
/// The little-endian u16 at `off`; `None` unless its 2 bytes lie inside `b`.
#[inline]
pub fn u16(b: &[u8], off: usize) -> Option<u16> {
    bytes::<2>(b, off).map(u16::from_le_bytes)
}
/// The little-endian u32 at `off`; `None` unless its 4 bytes lie inside `b`.
#[inline]
pub fn u32(b: &[u8], off: usize) -> Option<u32> {
    bytes::<4>(b, off).map(u32::from_le_bytes)
}
/// The little-endian u64 at `off`; `None` unless its 8 bytes lie inside `b`.
#[inline]
pub fn u64(b: &[u8], off: usize) -> Option<u64> {
    bytes::<8>(b, off).map(u64::from_le_bytes)
}
/// The little-endian i64 at `off`; `None` unless its 8 bytes lie inside `b`.
#[inline]
pub fn i64(b: &[u8], off: usize) -> Option<i64> {
    bytes::<8>(b, off).map(i64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn le_readers_bound_check() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(super::u32(&b, 0), Some(0x0403_0201));
        assert_eq!(super::u32(&b, 2), None);
        assert_eq!(super::u64(&b, usize::MAX), None);
        assert_eq!(super::u8(&b, 4), Some(5));
    }
}
