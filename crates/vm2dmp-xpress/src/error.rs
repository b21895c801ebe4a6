//! Decoding errors.

use std::fmt;

/// Why a Plain LZ77 stream could not be decoded.
///
/// Every variant carries `offset`, a byte offset into the compressed input
/// (see each variant for which byte it points at); [`XpressError::offset`]
/// returns it for any variant. Variants that concern the output also carry
/// `out_pos`, the number of output bytes produced before the failing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XpressError {
    /// A 32-bit flag word was needed but fewer than 4 input bytes remain.
    /// `offset` is where the flag word starts.
    TruncatedFlags {
        /// Input offset of the flag word.
        offset: usize,
    },
    /// A match descriptor or one of its length extensions (nibble byte,
    /// length byte, 16-bit or 32-bit length) runs past the end of the input.
    /// `offset` is where the missing field starts.
    TruncatedMatch {
        /// Input offset of the truncated field.
        offset: usize,
    },
    /// A flag bit announces a literal but the input is exhausted.
    /// `offset` equals the input length.
    LiteralPastEnd {
        /// Input offset of the missing literal byte (the input length).
        offset: usize,
        /// Output bytes produced so far.
        out_pos: usize,
    },
    /// A match refers to bytes before the start of the output.
    /// `offset` is where the match descriptor starts.
    DistanceBeforeStart {
        /// Input offset of the match descriptor.
        offset: usize,
        /// Output bytes produced so far.
        out_pos: usize,
        /// Match distance (1 to 8192).
        distance: usize,
    },
    /// A literal or match would write past the end of the output buffer.
    /// `offset` is where the literal byte or the match descriptor starts.
    OutputOverrun {
        /// Input offset of the literal or of the match descriptor.
        offset: usize,
        /// Output bytes produced so far.
        out_pos: usize,
        /// Bytes the item wanted to write (1 for a literal).
        length: u64,
        /// Size of the output buffer.
        capacity: usize,
    },
    /// A 16-bit or 32-bit match length escape holds a value below 22, which
    /// the format cannot produce. `offset` is where that value starts.
    LongLengthTooSmall {
        /// Input offset of the 16-bit or 32-bit length value.
        offset: usize,
        /// The value read.
        value: u32,
    },
    /// The stream ended normally but produced fewer bytes than expected.
    /// `offset` is the input offset where the stream ended (the input length).
    OutputTooShort {
        /// Input offset where the stream ended.
        offset: usize,
        /// Output bytes produced.
        out_pos: usize,
        /// Output bytes expected.
        expected: usize,
    },
}

impl XpressError {
    /// Input offset the error refers to.
    pub fn offset(&self) -> usize {
        match *self {
            XpressError::TruncatedFlags { offset }
            | XpressError::TruncatedMatch { offset }
            | XpressError::LiteralPastEnd { offset, .. }
            | XpressError::DistanceBeforeStart { offset, .. }
            | XpressError::OutputOverrun { offset, .. }
            | XpressError::LongLengthTooSmall { offset, .. }
            | XpressError::OutputTooShort { offset, .. } => offset,
        }
    }
}

impl fmt::Display for XpressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            XpressError::TruncatedFlags { offset } => {
                write!(f, "LZ77 flag word truncated at input offset {offset}")
            }
            XpressError::TruncatedMatch { offset } => {
                write!(f, "LZ77 match truncated at input offset {offset}")
            }
            XpressError::LiteralPastEnd { offset, out_pos } => write!(
                f,
                "LZ77 literal past the end of the input (input offset {offset}, output position {out_pos})"
            ),
            XpressError::DistanceBeforeStart {
                offset,
                out_pos,
                distance,
            } => write!(
                f,
                "LZ77 match distance {distance} reaches before the start of the output \
                 (input offset {offset}, output position {out_pos})"
            ),
            XpressError::OutputOverrun {
                offset,
                out_pos,
                length,
                capacity,
            } => write!(
                f,
                "LZ77 output overrun: {length} bytes at output position {out_pos} exceed \
                 the {capacity}-byte output (input offset {offset})"
            ),
            XpressError::LongLengthTooSmall { offset, value } => write!(
                f,
                "LZ77 long match length {value} is below 22 (input offset {offset})"
            ),
            XpressError::OutputTooShort {
                offset,
                out_pos,
                expected,
            } => write!(
                f,
                "LZ77 stream ended after {out_pos} bytes, expected {expected} (input offset {offset})"
            ),
        }
    }
}

impl std::error::Error for XpressError {}
