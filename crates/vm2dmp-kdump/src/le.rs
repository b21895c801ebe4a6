//! Little-endian field codec for the on-disk structures.
//!
//! Every structure in [`crate::structs`] is declared once with the byte offset of each
//! field. The declaration produces a `#[repr(C)]` Rust struct (so that `size_of` and
//! `offset_of!` can verify the declared offsets against C layout rules at compile
//! time) and explicit little-endian readers and writers that use the declared offsets
//! only. Nothing is transmuted.

/// A value stored little-endian in a fixed number of bytes.
pub trait LeField: Sized {
    /// Size in bytes on disk.
    const LEN: usize;
    /// The all-zero value.
    fn zero() -> Self;
    /// Decodes from the first [`Self::LEN`] bytes of `src`; `None` if `src` is shorter.
    fn read_le(src: &[u8]) -> Option<Self>;
    /// Encodes into the first [`Self::LEN`] bytes of `dst`; returns `false` (and writes
    /// nothing) if `dst` is shorter.
    fn write_le(&self, dst: &mut [u8]) -> bool;
}

macro_rules! le_int {
    ($($t:ty),*) => {$(
        impl LeField for $t {
            const LEN: usize = core::mem::size_of::<$t>();
            fn zero() -> Self {
                0
            }
            fn read_le(src: &[u8]) -> Option<Self> {
                let bytes: [u8; core::mem::size_of::<$t>()] =
                    src.get(..Self::LEN)?.try_into().ok()?;
                Some(<$t>::from_le_bytes(bytes))
            }
            fn write_le(&self, dst: &mut [u8]) -> bool {
                match dst.get_mut(..Self::LEN) {
                    Some(d) => {
                        d.copy_from_slice(&self.to_le_bytes());
                        true
                    }
                    None => false,
                }
            }
        }
    )*};
}
le_int!(u8, u16, u32, u64);

impl<T: LeField + Copy, const N: usize> LeField for [T; N] {
    const LEN: usize = T::LEN * N;
    fn zero() -> Self {
        [T::zero(); N]
    }
    fn read_le(src: &[u8]) -> Option<Self> {
        let src = src.get(..Self::LEN)?;
        let mut out = [T::zero(); N];
        for (slot, chunk) in out.iter_mut().zip(src.chunks_exact(T::LEN.max(1))) {
            *slot = T::read_le(chunk)?;
        }
        Some(out)
    }
    fn write_le(&self, dst: &mut [u8]) -> bool {
        let Some(dst) = dst.get_mut(..Self::LEN) else {
            return false;
        };
        for (item, chunk) in self.iter().zip(dst.chunks_exact_mut(T::LEN.max(1))) {
            item.write_le(chunk);
        }
        true
    }
}

/// Declares an on-disk structure: `#[repr(C)]` struct, compile-time offset and size
/// checks, and little-endian (de)serialization at the declared offsets.
macro_rules! le_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $sdk:literal, size $size:literal {
            $( $(#[$fmeta:meta])* $off:literal $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* #[doc = concat!("Offset `", stringify!($off), "`.")] pub $field: $ty, )*
        }

        // The declared offsets are exactly the C layout of the field list, the fields
        // tile the structure without gaps, and the total size is the documented one.
        const _: () = {
            assert!(core::mem::size_of::<$name>() == $size);
            let mut _next = 0usize;
            $(
                assert!(core::mem::offset_of!($name, $field) == $off);
                assert!($off == _next);
                assert!(core::mem::size_of::<$ty>() == <$ty as $crate::le::LeField>::LEN);
                _next = $off + <$ty as $crate::le::LeField>::LEN;
            )*
            assert!(_next == $size);
        };

        impl $name {
            /// Size in bytes on disk.
            pub const SIZE: usize = $size;
            /// Name of the structure in the Windows SDK / format reference.
            pub const SDK_NAME: &'static str = $sdk;

            /// Decodes the structure from the start of `src`. `file_offset` is where
            /// `src` starts in the file, used in error messages only.
            pub fn parse(src: &[u8], file_offset: u64) -> Result<Self, $crate::error::DumpError> {
                <Self as $crate::le::LeField>::read_le(src).ok_or($crate::error::DumpError::Truncated {
                    structure: $sdk,
                    offset: file_offset,
                    needed: $size,
                    available: src.len() as u64,
                })
            }

            /// Encodes the structure into exactly [`Self::SIZE`] bytes.
            pub fn to_bytes(&self) -> Vec<u8> {
                let mut out = vec![0u8; $size];
                <Self as $crate::le::LeField>::write_le(self, &mut out);
                out
            }

            /// Encodes the structure into the start of `dst`; returns `false` (writing
            /// nothing) if `dst` is shorter than [`Self::SIZE`].
            pub fn write_to(&self, dst: &mut [u8]) -> bool {
                <Self as $crate::le::LeField>::write_le(self, dst)
            }

            /// The all-zero structure.
            pub fn zeroed() -> Self {
                <Self as $crate::le::LeField>::zero()
            }
        }

        impl $crate::le::LeField for $name {
            const LEN: usize = $size;
            fn zero() -> Self {
                Self { $( $field: <$ty as $crate::le::LeField>::zero(), )* }
            }
            fn read_le(src: &[u8]) -> Option<Self> {
                let src = src.get(..$size)?;
                Some(Self {
                    $( $field: <$ty as $crate::le::LeField>::read_le(src.get($off..)?)?, )*
                })
            }
            fn write_le(&self, dst: &mut [u8]) -> bool {
                let Some(dst) = dst.get_mut(..$size) else {
                    return false;
                };
                $(
                    if let Some(d) = dst.get_mut($off..) {
                        <$ty as $crate::le::LeField>::write_le(&self.$field, d);
                    }
                )*
                true
            }
        }
    };
}
pub(crate) use le_struct;

/// Reads a little-endian `u32` at `off`, if in bounds.
pub(crate) fn u32_at(src: &[u8], off: usize) -> Option<u32> {
    u32::read_le(src.get(off..)?)
}

/// Reads a little-endian `u64` at `off`, if in bounds.
pub(crate) fn u64_at(src: &[u8], off: usize) -> Option<u64> {
    u64::read_le(src.get(off..)?)
}

/// Fills `dst` with the repeated little-endian dword `pattern`.
pub(crate) fn fill_dword(dst: &mut [u8], pattern: u32) {
    let p = pattern.to_le_bytes();
    for (i, b) in dst.iter_mut().enumerate() {
        *b = p[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_round_trip_little_endian() {
        let mut b = [0u8; 8];
        assert!(0x1122_3344_u32.write_le(&mut b));
        assert_eq!(&b[..4], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(u32::read_le(&b), Some(0x1122_3344));
        assert!(!0u64.write_le(&mut b[..7]));
        assert_eq!(u64::read_le(&b[..7]), None);
    }

    #[test]
    fn arrays_round_trip() {
        let v: [u64; 3] = [1, 2, 0xFFFF_0000_0000_0001];
        let mut b = [0u8; 24];
        assert!(v.write_le(&mut b));
        assert_eq!(<[u64; 3]>::read_le(&b), Some(v));
        assert_eq!(<[u64; 3]>::read_le(&b[..23]), None);
    }

    #[test]
    fn fill_dword_repeats_pattern() {
        let mut b = [0u8; 10];
        fill_dword(&mut b, 0x4547_4150);
        assert_eq!(&b, b"PAGEPAGEPA");
    }
}
