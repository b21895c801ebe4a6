//! Shared writer plumbing: checksums, a positioned writer that leaves holes, and the
//! parallel RAM-block encoding pipeline.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use rayon::prelude::*;

use crate::encode::{encode_block, EncodedBlock, BLOCK_BYTES};
use crate::model::{PlacedRange, SynthVm, PAGES_PER_BLOCK};

/// CRC-32 (reflected, polynomial 0xEDB88320), as used by every HVS checksum.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Round `v` up to a multiple of `a` (a power of two or any non-zero value).
pub fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Sequential writer with a known position; long zero runs become holes.
pub struct Out {
    w: BufWriter<File>,
    pos: u64,
    len: u64,
}

/// Zero runs at least this long are skipped (left as holes) instead of written.
const HOLE_MIN: u64 = 64 * 1024;

impl Out {
    /// Create (or truncate) the file at `path`, positioned at 0.
    pub fn create(path: &Path) -> io::Result<Self> {
        let f = File::create(path)?;
        Ok(Self {
            w: BufWriter::with_capacity(1 << 20, f),
            pos: 0,
            len: 0,
        })
    }

    /// The sequential position: bytes written or skipped so far.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Write `b` at the sequential position and advance past it.
    pub fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        self.len = self.len.max(self.pos);
        Ok(())
    }

    /// Advance by `n` zero bytes (a hole when long).
    pub fn zeros(&mut self, n: u64) -> io::Result<()> {
        if n >= HOLE_MIN {
            self.w.flush()?;
            self.pos += n;
            self.w.get_mut().seek(SeekFrom::Start(self.pos))?;
        } else {
            const Z: [u8; 4096] = [0; 4096];
            let mut left = n;
            while left > 0 {
                let k = left.min(4096);
                self.w.write_all(&Z[..k as usize])?;
                left -= k;
            }
            self.pos += n;
        }
        self.len = self.len.max(self.pos);
        Ok(())
    }

    /// Advance to `pos` (>= current) with zeros.
    pub fn pad_to(&mut self, pos: u64) -> io::Result<()> {
        assert!(pos >= self.pos, "pad_to backwards");
        self.zeros(pos - self.pos)
    }

    /// Write `b` at `at` without moving the sequential position.
    pub fn write_at(&mut self, at: u64, b: &[u8]) -> io::Result<()> {
        self.w.flush()?;
        let f = self.w.get_mut();
        f.seek(SeekFrom::Start(at))?;
        f.write_all(b)?;
        f.seek(SeekFrom::Start(self.pos))?;
        self.len = self.len.max(at + b.len() as u64);
        Ok(())
    }

    /// Flush, make the file exactly `size` bytes long and return the file.
    pub fn finish(mut self, size: u64) -> io::Result<File> {
        self.w.flush()?;
        let f = self.w.into_inner().map_err(|e| e.into_error())?;
        f.set_len(size)?;
        Ok(f)
    }
}

/// Gather the 1 MiB of raw saved memory of RAM block `block`.
pub fn block_data(vm: &SynthVm, placed: &[PlacedRange], block: u64, buf: &mut [u8]) {
    debug_assert_eq!(buf.len(), BLOCK_BYTES);
    buf.fill(0);
    let p = placed
        .iter()
        .find(|p| block >= p.first_block && block < p.first_block + p.block_count)
        .expect("block inside a range");
    let first_page = (block - p.first_block) * PAGES_PER_BLOCK;
    for i in 0..PAGES_PER_BLOCK {
        let page_in_range = first_page + i;
        if page_in_range >= p.range.page_count {
            break; // zero padding at the end of the range
        }
        let chunk: &mut [u8; 4096] = (&mut buf[(i as usize) * 4096..(i as usize + 1) * 4096])
            .try_into()
            .unwrap();
        vm.pages
            .read_page(p.range.gpa_page_start + page_in_range, chunk);
    }
}

/// Encode the blocks in `order` (in parallel, in batches) and hand them to `sink` in order.
pub fn encode_blocks(
    vm: &SynthVm,
    order: &[u64],
    record_tokens: bool,
    mut sink: impl FnMut(u64, EncodedBlock) -> io::Result<()>,
) -> io::Result<()> {
    let placed = vm.placed_ranges();
    let batch = (rayon::current_num_threads() * 4).clamp(4, 64);
    for chunk in order.chunks(batch) {
        let encoded: Vec<EncodedBlock> = chunk
            .par_iter()
            .map_init(
                || vec![0u8; BLOCK_BYTES],
                |buf, &b| {
                    block_data(vm, &placed, b, buf);
                    encode_block(buf, vm.encoding_for(b), b, vm.compressor, record_tokens)
                },
            )
            .collect();
        for (&b, e) in chunk.iter().zip(encoded) {
            sink(b, e)?;
        }
    }
    Ok(())
}

/// UTF-16LE bytes of `s` (no terminator).
pub fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// The 48-byte version-3 memory-block metadata.
pub fn memory_block_bytes(p: &PlacedRange) -> Vec<u8> {
    let mut b = Vec::with_capacity(48);
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&p.range.page_count.to_le_bytes());
    b.extend_from_slice(&p.mbp_index_start.to_le_bytes());
    b.extend_from_slice(&p.range.gpa_page_start.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b
}
