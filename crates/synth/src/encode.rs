//! RAM block encoding: raw 1 MiB blocks or token streams.
//!
//! Token stream (format reference section 6.3), every token starts with a u32:
//!
//! | token | followed by | produces |
//! |---|---|---|
//! | 0xFFFFFFFF | nothing | end of stream |
//! | 0xFFFFFFFE | u64 pattern | one page of the pattern |
//! | 0xFFFFFFFD | u64 pattern, u32 count | `count` pattern pages |
//! | 0xFFFFFFFC | u32 out_len, u32 in_len, payload | `out_len` bytes (stored if in_len == out_len, else LZ77) |
//! | 4096 | 4096 bytes | one raw page |
//! | 1..=4095 | that many bytes | one LZ77-compressed page |

use crate::lz;

pub const TOKEN_END: u32 = 0xFFFF_FFFF;
pub const TOKEN_FILL_ONE: u32 = 0xFFFF_FFFE;
pub const TOKEN_FILL_RUN: u32 = 0xFFFF_FFFD;
pub const TOKEN_MULTI: u32 = 0xFFFF_FFFC;
pub const TOKEN_RAW_PAGE: u32 = 4096;

/// Size of a RAM block (1 MiB).
pub const BLOCK_BYTES: usize = 1 << 20;

/// How the pages of a token-stream block are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PagePolicy {
    /// What the real Hyper-V files show: pattern pages as fill-one tokens, other pages
    /// compressed when that gives 1..=4095 bytes, else raw.
    #[default]
    HyperV,
    /// The smallest encoding found: fill runs, single fills, compressed pages or
    /// multi-page tokens over runs of non-pattern pages.
    Auto,
    /// Every token kind, chosen deterministically in turn (raw, compressed, fill-one,
    /// fill-run, multi-page compressed, multi-page stored); kinds that do not apply to a
    /// page fall back to the next one that does.
    Mixed,
    /// Every page as a raw 4096 token.
    Raw,
    /// Every page compressed (raw when compression would need 4096 bytes or more).
    Compressed,
    /// Pattern pages as fill-one tokens, other pages raw.
    FillOne,
    /// Runs of equal pattern pages as fill-run tokens (a lone page gets count 1), others raw.
    FillRun,
    /// Multi-page tokens of `pages` pages each (the last one may be shorter); the payload is
    /// compressed when `compress` is set and it helps, else stored with in_len == out_len.
    MultiPage { pages: u16, compress: bool },
}

/// How one RAM block is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEncoding {
    /// The value is exactly 1 MiB: the 256 pages in order.
    RawBlock,
    /// A token stream.
    Tokens(PagePolicy),
}

impl Default for BlockEncoding {
    fn default() -> Self {
        BlockEncoding::Tokens(PagePolicy::HyperV)
    }
}

/// Kinds of tokens, for statistics and token locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    FillOne,
    FillRun,
    RawPage,
    CompressedPage,
    MultiCompressed,
    MultiStored,
    End,
}

/// How many tokens of each kind a block (or a whole file) holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub fill_one: u64,
    pub fill_run: u64,
    pub raw_page: u64,
    pub compressed_page: u64,
    pub multi_compressed: u64,
    pub multi_stored: u64,
    pub end: u64,
    /// Blocks stored as raw 1 MiB values.
    pub raw_blocks: u64,
}

impl TokenCounts {
    pub fn add(&mut self, kind: TokenKind) {
        match kind {
            TokenKind::FillOne => self.fill_one += 1,
            TokenKind::FillRun => self.fill_run += 1,
            TokenKind::RawPage => self.raw_page += 1,
            TokenKind::CompressedPage => self.compressed_page += 1,
            TokenKind::MultiCompressed => self.multi_compressed += 1,
            TokenKind::MultiStored => self.multi_stored += 1,
            TokenKind::End => self.end += 1,
        }
    }

    pub fn merge(&mut self, o: &TokenCounts) {
        self.fill_one += o.fill_one;
        self.fill_run += o.fill_run;
        self.raw_page += o.raw_page;
        self.compressed_page += o.compressed_page;
        self.multi_compressed += o.multi_compressed;
        self.multi_stored += o.multi_stored;
        self.end += o.end;
        self.raw_blocks += o.raw_blocks;
    }

    /// Number of a given kind.
    pub fn get(&self, kind: TokenKind) -> u64 {
        match kind {
            TokenKind::FillOne => self.fill_one,
            TokenKind::FillRun => self.fill_run,
            TokenKind::RawPage => self.raw_page,
            TokenKind::CompressedPage => self.compressed_page,
            TokenKind::MultiCompressed => self.multi_compressed,
            TokenKind::MultiStored => self.multi_stored,
            TokenKind::End => self.end,
        }
    }
}

/// One token inside a block value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLoc {
    /// Offset of the token's u32 within the block value.
    pub offset: u32,
    /// Bytes of the whole token (tag included).
    pub len: u32,
    pub kind: TokenKind,
    /// First page (0..256) the token produces.
    pub first_page: u16,
    /// Pages it produces.
    pub pages: u16,
}

/// An encoded block value.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    pub bytes: Vec<u8>,
    /// True when the value is a raw 1 MiB block.
    pub raw: bool,
    /// True when every byte is zero (only possible for raw blocks).
    pub all_zero: bool,
    pub counts: TokenCounts,
    /// Token locations (empty for raw blocks, or when not requested).
    pub tokens: Vec<TokenLoc>,
}

/// If `page` is an 8-byte pattern repeated 512 times, that pattern.
pub fn page_pattern(page: &[u8]) -> Option<u64> {
    debug_assert_eq!(page.len(), 4096);
    let first = u64::from_le_bytes(page[..8].try_into().unwrap());
    if page
        .chunks_exact(8)
        .all(|c| u64::from_le_bytes(c.try_into().unwrap()) == first)
    {
        Some(first)
    } else {
        None
    }
}

struct Emitter {
    out: Vec<u8>,
    counts: TokenCounts,
    tokens: Vec<TokenLoc>,
    record: bool,
    page: u16,
}

impl Emitter {
    fn token(&mut self, kind: TokenKind, pages: u16, bytes: &[&[u8]]) {
        let offset = self.out.len() as u32;
        for b in bytes {
            self.out.extend_from_slice(b);
        }
        self.counts.add(kind);
        if self.record {
            self.tokens.push(TokenLoc {
                offset,
                len: self.out.len() as u32 - offset,
                kind,
                first_page: self.page,
                pages,
            });
        }
        self.page += pages;
    }

    fn fill_one(&mut self, pattern: u64) {
        self.token(
            TokenKind::FillOne,
            1,
            &[&TOKEN_FILL_ONE.to_le_bytes(), &pattern.to_le_bytes()],
        );
    }

    fn fill_run(&mut self, pattern: u64, count: u16) {
        self.token(
            TokenKind::FillRun,
            count,
            &[
                &TOKEN_FILL_RUN.to_le_bytes(),
                &pattern.to_le_bytes(),
                &(count as u32).to_le_bytes(),
            ],
        );
    }

    fn raw(&mut self, page: &[u8]) {
        self.token(
            TokenKind::RawPage,
            1,
            &[&TOKEN_RAW_PAGE.to_le_bytes(), page],
        );
    }

    /// Compressed if that fits a 1..=4095 token, else raw.
    fn compressed_or_raw(&mut self, page: &[u8]) {
        let c = lz::compressed(page);
        if !c.is_empty() && c.len() < 4096 {
            self.token(
                TokenKind::CompressedPage,
                1,
                &[&(c.len() as u32).to_le_bytes(), &c],
            );
        } else {
            self.raw(page);
        }
    }

    fn multi(&mut self, data: &[u8], compress: bool) {
        let pages = (data.len() / 4096) as u16;
        let out_len = (data.len() as u32).to_le_bytes();
        if compress {
            let c = lz::compressed(data);
            if c.len() < data.len() {
                self.token(
                    TokenKind::MultiCompressed,
                    pages,
                    &[
                        &TOKEN_MULTI.to_le_bytes(),
                        &out_len,
                        &(c.len() as u32).to_le_bytes(),
                        &c,
                    ],
                );
                return;
            }
        }
        self.token(
            TokenKind::MultiStored,
            pages,
            &[&TOKEN_MULTI.to_le_bytes(), &out_len, &out_len, data],
        );
    }

    fn end(mut self) -> (Vec<u8>, TokenCounts, Vec<TokenLoc>) {
        let p = self.page;
        self.token(TokenKind::End, 0, &[&TOKEN_END.to_le_bytes()]);
        debug_assert_eq!(p, 256);
        (self.out, self.counts, self.tokens)
    }
}

fn run_of_pattern(block: &[u8], start: usize, pattern: u64, max: usize) -> usize {
    let mut n = 1;
    while start + n < 256 && n < max {
        let p = &block[(start + n) * 4096..(start + n + 1) * 4096];
        if page_pattern(p) == Some(pattern) {
            n += 1;
        } else {
            break;
        }
    }
    n
}

/// Encode one 1 MiB block (`block` = its number, used by the `Mixed` policy).
pub fn encode_block(
    data: &[u8],
    encoding: BlockEncoding,
    block: u64,
    record_tokens: bool,
) -> EncodedBlock {
    assert_eq!(data.len(), BLOCK_BYTES);
    let policy = match encoding {
        BlockEncoding::RawBlock => {
            let all_zero = data.iter().all(|&b| b == 0);
            return EncodedBlock {
                bytes: data.to_vec(),
                raw: true,
                all_zero,
                counts: TokenCounts {
                    raw_blocks: 1,
                    ..Default::default()
                },
                tokens: Vec::new(),
            };
        }
        BlockEncoding::Tokens(p) => p,
    };
    let mut e = Emitter {
        out: Vec::with_capacity(4096),
        counts: TokenCounts::default(),
        tokens: Vec::new(),
        record: record_tokens,
        page: 0,
    };
    let page = |i: usize| &data[i * 4096..(i + 1) * 4096];
    let mut i = 0usize;
    match policy {
        PagePolicy::HyperV => {
            while i < 256 {
                match page_pattern(page(i)) {
                    Some(p) => e.fill_one(p),
                    None => e.compressed_or_raw(page(i)),
                }
                i += 1;
            }
        }
        PagePolicy::Raw => {
            while i < 256 {
                e.raw(page(i));
                i += 1;
            }
        }
        PagePolicy::Compressed => {
            while i < 256 {
                e.compressed_or_raw(page(i));
                i += 1;
            }
        }
        PagePolicy::FillOne => {
            while i < 256 {
                match page_pattern(page(i)) {
                    Some(p) => e.fill_one(p),
                    None => e.raw(page(i)),
                }
                i += 1;
            }
        }
        PagePolicy::FillRun => {
            while i < 256 {
                match page_pattern(page(i)) {
                    Some(p) => {
                        let n = run_of_pattern(data, i, p, 256);
                        e.fill_run(p, n as u16);
                        i += n;
                    }
                    None => {
                        e.raw(page(i));
                        i += 1;
                    }
                }
            }
        }
        PagePolicy::MultiPage { pages, compress } => {
            let k = (pages.max(1) as usize).min(256);
            while i < 256 {
                let n = k.min(256 - i);
                e.multi(&data[i * 4096..(i + n) * 4096], compress);
                i += n;
            }
        }
        PagePolicy::Auto => {
            while i < 256 {
                if let Some(p) = page_pattern(page(i)) {
                    let n = run_of_pattern(data, i, p, 256);
                    if n == 1 {
                        e.fill_one(p);
                    } else {
                        e.fill_run(p, n as u16);
                    }
                    i += n;
                    continue;
                }
                // A run of non-pattern pages: per-page tokens or one multi-page token.
                let mut n = 1;
                while i + n < 256 && n < 64 && page_pattern(page(i + n)).is_none() {
                    n += 1;
                }
                let singles: Vec<Vec<u8>> = (i..i + n).map(|j| lz::compressed(page(j))).collect();
                let single_cost: usize = singles.iter().map(|c| 4 + c.len().min(4096)).sum();
                let multi = if n > 1 {
                    Some(lz::compressed(&data[i * 4096..(i + n) * 4096]))
                } else {
                    None
                };
                match multi {
                    Some(m) if 12 + m.len().min(n * 4096) < single_cost => {
                        e.multi(&data[i * 4096..(i + n) * 4096], true);
                    }
                    _ => {
                        for (j, c) in (i..i + n).zip(singles) {
                            if c.len() < 4096 {
                                e.token(
                                    TokenKind::CompressedPage,
                                    1,
                                    &[&(c.len() as u32).to_le_bytes(), &c],
                                );
                            } else {
                                e.raw(page(j));
                            }
                        }
                    }
                }
                i += n;
            }
        }
        PagePolicy::Mixed => {
            let mut turn = (block % 6) as usize;
            while i < 256 {
                let pat = page_pattern(page(i));
                // 0 raw, 1 compressed, 2 fill-one, 3 fill-run, 4 multi compressed, 5 multi stored
                let mut kind = turn % 6;
                if pat.is_none() && (kind == 2 || kind == 3) {
                    kind = 4;
                }
                match kind {
                    0 => {
                        e.raw(page(i));
                        i += 1;
                    }
                    1 => {
                        e.compressed_or_raw(page(i));
                        i += 1;
                    }
                    2 => {
                        e.fill_one(pat.unwrap());
                        i += 1;
                    }
                    3 => {
                        let n = run_of_pattern(data, i, pat.unwrap(), 5);
                        e.fill_run(pat.unwrap(), n as u16);
                        i += n;
                    }
                    4 => {
                        let n = 3.min(256 - i);
                        e.multi(&data[i * 4096..(i + n) * 4096], true);
                        i += n;
                    }
                    _ => {
                        let n = 2.min(256 - i);
                        e.multi(&data[i * 4096..(i + n) * 4096], false);
                        i += n;
                    }
                }
                turn += 1;
            }
        }
    }
    let (bytes, counts, tokens) = e.end();
    EncodedBlock {
        bytes,
        raw: false,
        all_zero: false,
        counts,
        tokens,
    }
}
