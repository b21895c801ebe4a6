//! XPRESS "Plain LZ77" decompression and compression.
//!
//! Hyper-V stores the pages of a saved state's RAM blocks compressed with
//! Windows `COMPRESSION_FORMAT_XPRESS` (value 3), the format that
//! [MS-XCA] section 2.4 calls *Plain LZ77*. A stream is a sequence of
//! 32-bit little-endian flag words, each followed by the 32 items it
//! describes, most significant bit first: a clear bit is one literal byte,
//! a set bit is a 16-bit match descriptor (13 bits of distance minus one,
//! 3 bits of length minus three) whose length can be extended by a 4-bit
//! field (two consecutive long matches share one byte, low half first),
//! then a byte, then a 16-bit or 32-bit value. The stream ends at a set
//! flag bit with no input left. There is no header and no stored output
//! length: the container says how many bytes a stream must produce (4096
//! for a page token).
//!
//! # Why this crate
//!
//! Decompression is the bottleneck of a conversion: every compressed page
//! of a saved state goes through it. Of the existing Rust decoders, `xpress_rs` 0.2.0 decodes all
//! 185 compressed pages of the real Hyper-V sample in this repository
//! correctly, but at about 370 to 410 MB/s on one core: it allocates a new
//! vector per page and panics on some malformed inputs. `rust-lzxpress`
//! 0.7.1 fails on 12 of those 185 pages.
//!
//! The decoder here writes straight into the caller's page buffer with no
//! allocation, never panics, reports malformed input as an
//! [`XpressError`] carrying the input offset, and decodes the same pages at
//! about 2.6 GB/s on one core (7 times `xpress_rs`), and pages of firmware
//! memory, which are made of shorter items, at about 1.7 GB/s (5 times;
//! figures, page sets and machine in `BENCH.md` next to this crate's
//! manifest).
//!
//! The encoder ([`compress`]) is a small lazy-matching compressor used to
//! build test inputs; its streams decode with any Plain LZ77 decoder.
//!
//! # Example
//!
//! ```
//! use vm2dmp_xpress::{compress, decompress_page, PAGE_SIZE};
//!
//! let mut page = [0u8; PAGE_SIZE];
//! page[..13].copy_from_slice(b"Hello, world!");
//! page[2048..2052].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
//!
//! let mut stream = Vec::new();
//! compress(&page, &mut stream);
//! assert!(stream.len() < 64);
//!
//! let mut decoded = [0u8; PAGE_SIZE];
//! decompress_page(&stream, &mut decoded)?;
//! assert_eq!(decoded, page);
//! # Ok::<(), vm2dmp_xpress::XpressError>(())
//! ```
//!
//! [MS-XCA]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-xca/

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
mod encode;
mod error;

pub use decode::{decompress_bounded, decompress_into, decompress_page, PAGE_SIZE};
pub use encode::{compress, max_compressed_len};
pub use error::XpressError;
