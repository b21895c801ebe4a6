//! Guest contents and inputs shared by the benchmarks.

use std::path::Path;

pub mod measure;

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

/// Four x64 vCPUs in long mode over `gib` GiB of RAM (above 3 GiB placed from 4 GiB, past
/// the MMIO hole); no pages yet.
fn x64_guest(gib: u64) -> SynthVm {
    SynthVm::with_ram_split(gib * 1024).with_vps(
        (0..4)
            .map(|i| {
                SynthVp::x64_long_mode(i, 0x1AA000, 0xFFFF_F800_0000_1000, 0xFFFF_F800_0010_0000)
            })
            .collect(),
    )
}

/// A synthetic x64 guest of `gib` GiB (RAM above 4 GiB beyond 3 GiB, with the MMIO hole).
pub fn guest(gib: u64, content: Content) -> SynthVm {
    let vm = x64_guest(gib);
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

/// Guest memory like a running machine's as Hyper-V saves it: per page, by a fixed hash,
/// 60% real firmware pages (the OVMF corpus of `testdata/ovmf-pages`, stored as XPRESS pages),
/// 30% zero pages (fill tokens), 10% incompressible pages (raw tokens).
pub struct RealMix {
    /// The corpus pages.
    pub pages: std::sync::Arc<Vec<[u8; 4096]>>,
}

impl RealMix {
    /// The mix over the committed OVMF corpus.
    pub fn load() -> std::io::Result<Self> {
        Ok(Self {
            pages: std::sync::Arc::new(ovmf_pages()?),
        })
    }
}

impl PageSource for RealMix {
    fn read_page(&self, gpa_page: u64, buf: &mut [u8; 4096]) {
        let h = mix(gpa_page ^ 0xC0DE);
        match h % 10 {
            0..=5 => {
                let n = self.pages.len().max(1);
                match self.pages.get((h >> 8) as usize % n) {
                    Some(p) => buf.copy_from_slice(p),
                    None => buf.fill(0),
                }
            }
            6..=8 => buf.fill(0),
            _ => Noise.read_page(gpa_page, buf),
        }
    }
}

/// The pages of `testdata/ovmf-pages/pages.xpress`: each a little-endian `u32` length and
/// that many bytes of one XPRESS-compressed page.
pub fn ovmf_pages() -> std::io::Result<Vec<[u8; 4096]>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ovmf-pages/pages.xpress");
    let data = std::fs::read(&path)?;
    let bad = |what: &str| std::io::Error::other(format!("{}: {what}", path.display()));
    let mut pages = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let len = data
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| bad("truncated length"))? as usize;
        let stream = data
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| bad("truncated page"))?;
        let mut page = [0u8; 4096];
        vm2dmp_xpress::decompress_into(stream, &mut page).map_err(|e| bad(&e.to_string()))?;
        pages.push(page);
        at += 4 + len;
    }
    Ok(pages)
}

/// A realistic compressed guest of `gib` GiB ([`RealMix`] content, pages encoded as Hyper-V
/// does).
pub fn realistic_guest(gib: u64) -> std::io::Result<SynthVm> {
    Ok(x64_guest(gib)
        .with_pages(RealMix::load()?)
        .with_encoding(BlockEncoding::Tokens(PagePolicy::HyperV)))
}
