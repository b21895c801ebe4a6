//! Guest contents and inputs shared by the benchmarks.

use std::path::Path;

use vm2dmp_synth::{write_vmrs, BlockEncoding, PagePolicy, PageSource, SynthVm, SynthVp};

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Incompressible pages.
pub struct Noise;

impl PageSource for Noise {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        let mut s = mix(gpa_page.wrapping_add(1));
        for c in buf.chunks_exact_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            c.copy_from_slice(&s.to_le_bytes());
        }
    }
}

/// Kernel-like compressible pages: structures with pointers, small integers, strings and
/// zero runs (compress to roughly a third with Plain LZ77).
pub struct KernelLike;

impl PageSource for KernelLike {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        let mut s = mix(gpa_page ^ 0x5EED);
        let mut i = 0;
        while i < 4096 {
            s = mix(s);
            let rec: [u8; 16] = match s % 5 {
                0 => {
                    let p = 0xFFFF_F800_0000_0000u64 | ((s >> 20) & 0x00FF_FFF0);
                    let mut r = [0u8; 16];
                    r[..8].copy_from_slice(&p.to_le_bytes());
                    r[8..].copy_from_slice(&(p + 0x10).to_le_bytes());
                    r
                }
                1 => *b"\\Device\\Harddisk",
                2 => [0; 16],
                3 => {
                    let mut r = [0u8; 16];
                    r[..4].copy_from_slice(&((s >> 8) as u32 & 0xFFF).to_le_bytes());
                    r[8..12].copy_from_slice(&1u32.to_le_bytes());
                    r
                }
                _ => *b"ntoskrnl.exe\0\0\0\0",
            };
            let n = 16.min(4096 - i);
            buf[i..i + n].copy_from_slice(&rec[..n]);
            i += n;
        }
    }
}

/// The first `nonzero_pages` guest pages hold kernel-like data, the rest are zero.
pub struct MostlyZero {
    pub nonzero_pages: u64,
}

impl PageSource for MostlyZero {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        if gpa_page < self.nonzero_pages {
            KernelLike.read_page(gpa_page, buf)
        } else {
            buf.fill(0)
        }
    }
}

/// What a benchmark input holds and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Incompressible pages in raw 1 MiB blocks (what openvmm writes).
    RawBlocks,
    /// Hyper-V-like mix: a quarter zero, some pattern pages, compressible and incompressible
    /// pages, as fill tokens, compressed pages and raw pages.
    Mixed,
    /// Every page compressed.
    Compressed,
    /// 1 GiB of compressed data, the rest zero-fill tokens.
    MostlyZero,
}

impl Content {
    /// The name `bench_input` and `e2e --only` take.
    pub fn short_name(self) -> &'static str {
        match self {
            Content::RawBlocks => "raw",
            Content::Mixed => "mixed",
            Content::Compressed => "compressed",
            Content::MostlyZero => "mostly-zero",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Content::RawBlocks => "raw blocks",
            Content::Mixed => "mixed",
            Content::Compressed => "mostly compressed",
            Content::MostlyZero => "1 GiB used, rest zero",
        }
    }
}

/// A synthetic x64 guest of `gib` GiB (RAM above 4 GiB beyond 3 GiB, with the MMIO hole).
pub fn guest(gib: u64, content: Content) -> SynthVm {
    let vm = SynthVm::with_ram_split(gib * 1024).with_vps(
        (0..4)
            .map(|i| {
                SynthVp::x64_long_mode(i, 0x1AA000, 0xFFFF_F800_0000_1000, 0xFFFF_F800_0010_0000)
            })
            .collect(),
    );
    match content {
        Content::RawBlocks => vm.with_pages(Noise).with_encoding(BlockEncoding::RawBlock),
        Content::Mixed => vm
            .with_pages(vm2dmp_synth::MixedContent { seed: 1 })
            .with_encoding(BlockEncoding::Tokens(PagePolicy::HyperV)),
        Content::Compressed => vm
            .with_pages(KernelLike)
            .with_encoding(BlockEncoding::Tokens(PagePolicy::Compressed)),
        Content::MostlyZero => vm
            .with_pages(MostlyZero {
                nonzero_pages: 1 << 18,
            })
            .with_encoding(BlockEncoding::Tokens(PagePolicy::HyperV)),
    }
}

/// Writes the guest to `path` as a `.vmrs`.
pub fn write_input(gib: u64, content: Content, path: &Path) -> std::io::Result<()> {
    write_vmrs(&guest(gib, content), path).map(|_| ())
}
