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

/// Which Plain LZ77 encoder produces compressed payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compressor {
    /// `vm2dmp_xpress::compress` (lazy matching).
    #[default]
    Xpress,
    /// This crate's own greedy encoder ([`crate::lz`]): different streams for the same
    /// input, useful to test a decoder against more than one encoder.
    Greedy,
}

impl Compressor {
    /// Compress `input` into a new vector.
    pub fn compress(self, input: &[u8]) -> Vec<u8> {
        match self {
            Compressor::Xpress => {
                let mut v = Vec::new();
                vm2dmp_xpress::compress(input, &mut v);
                v
            }
            Compressor::Greedy => lz::compressed(input),
        }
    }
}

/// End of a token stream.
pub const TOKEN_END: u32 = 0xFFFF_FFFF;
/// One page of a u64 pattern (the pattern follows).
pub const TOKEN_FILL_ONE: u32 = 0xFFFF_FFFE;
/// `count` pages of a u64 pattern (u64 pattern and u32 count follow).
pub const TOKEN_FILL_RUN: u32 = 0xFFFF_FFFD;
/// Multi-page token: u32 out_len, u32 in_len, then in_len bytes, stored or compressed.
pub const TOKEN_MULTI: u32 = 0xFFFF_FFFC;
/// One raw page (4096 bytes follow); smaller values are compressed-page lengths.
pub const TOKEN_RAW_PAGE: u32 = 4096;

/// Size of a RAM block (1 MiB).
pub const BLOCK_BYTES: usize = 1 << 20;

/// How the pages of a token-stream block are encoded.
///
/// Whatever the policy, a token stream stays below 1 MiB (a value of exactly 1 MiB is a
/// raw block): where a policy would reach that size, as few pages as needed are encoded
/// the cheapest way instead, and a block that cannot fit is stored as a raw block.
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
    /// Every page as a raw 4096 token (but see the 1 MiB rule below: 256 raw tokens do
    /// not fit, so at least one page is always encoded another way).
    Raw,
    /// Every page compressed (raw when compression would need 4096 bytes or more).
    Compressed,
    /// Pattern pages as fill-one tokens, other pages raw.
    FillOne,
    /// Runs of equal pattern pages as fill-run tokens (a lone page gets count 1), others raw.
    FillRun,
    /// Multi-page tokens of `pages` pages each (the last one may be shorter); the payload is
    /// compressed when `compress` is set and it helps, else stored with in_len == out_len.
    MultiPage {
        /// Pages per token (1..=256).
        pages: u16,
        /// Compress the payload when that makes it smaller.
        compress: bool,
    },
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
    /// A token stream with the [`PagePolicy::HyperV`] policy.
    fn default() -> Self {
        BlockEncoding::Tokens(PagePolicy::HyperV)
    }
}

/// Kinds of tokens, for statistics and token locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    /// [`TOKEN_FILL_ONE`]: one pattern page.
    FillOne,
    /// [`TOKEN_FILL_RUN`]: a run of pattern pages.
    FillRun,
    /// [`TOKEN_RAW_PAGE`]: one raw page.
    RawPage,
    /// A length of 1..=4095: one compressed page.
    CompressedPage,
    /// [`TOKEN_MULTI`] with a compressed payload (in_len < out_len).
    MultiCompressed,
    /// [`TOKEN_MULTI`] with a stored payload (in_len == out_len).
    MultiStored,
    /// [`TOKEN_END`].
    End,
}

/// How many tokens of each kind a block (or a whole file) holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// [`TokenKind::FillOne`] tokens.
    pub fill_one: u64,
    /// [`TokenKind::FillRun`] tokens.
    pub fill_run: u64,
    /// [`TokenKind::RawPage`] tokens.
    pub raw_page: u64,
    /// [`TokenKind::CompressedPage`] tokens.
    pub compressed_page: u64,
    /// [`TokenKind::MultiCompressed`] tokens.
    pub multi_compressed: u64,
    /// [`TokenKind::MultiStored`] tokens.
    pub multi_stored: u64,
    /// [`TokenKind::End`] tokens (one per token-stream block).
    pub end: u64,
    /// Blocks stored as raw 1 MiB values.
    pub raw_blocks: u64,
}

impl TokenCounts {
    /// Count one token of `kind`.
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

    /// Add every count of `o`, raw blocks included.
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

    /// Number of tokens of `kind`.
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
    /// Kind of token.
    pub kind: TokenKind,
    /// First page (0..256) the token produces.
    pub first_page: u16,
    /// Pages it produces.
    pub pages: u16,
}

/// An encoded block value.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    /// The value to store: a token stream shorter than 1 MiB, or the raw 1 MiB block.
    pub bytes: Vec<u8>,
    /// True when the value is a raw 1 MiB block.
    pub raw: bool,
    /// True when every byte is zero (only possible for raw blocks).
    pub all_zero: bool,
    /// Tokens of each kind in this block (or `raw_blocks == 1`).
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

/// One token to emit, covering pages `[start, start + pages)`.
#[derive(Debug, Clone)]
enum Tok {
    FillOne(u64),
    FillRun(u64, u16),
    Raw,
    /// LZ77 payload of one page (1..=4095 bytes).
    Compressed(Vec<u8>),
    /// Multi-page token of `n` pages, payload compressed (`Some`) or stored (`None`).
    Multi(u16, Option<Vec<u8>>),
}

impl Tok {
    fn pages(&self) -> usize {
        match self {
            Tok::FillRun(_, n) | Tok::Multi(n, _) => *n as usize,
            _ => 1,
        }
    }

    fn cost(&self) -> usize {
        match self {
            Tok::FillOne(_) => 12,
            Tok::FillRun(..) => 16,
            Tok::Raw => 4 + 4096,
            Tok::Compressed(c) => 4 + c.len(),
            Tok::Multi(n, Some(c)) => 12 + c.len().min(*n as usize * 4096),
            Tok::Multi(n, None) => 12 + *n as usize * 4096,
        }
    }
}

struct Emitter<'a> {
    data: &'a [u8],
    out: Vec<u8>,
    counts: TokenCounts,
    tokens: Vec<TokenLoc>,
    record: bool,
    page: u16,
}

impl Emitter<'_> {
    fn push(&mut self, kind: TokenKind, pages: u16, bytes: &[&[u8]]) {
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

    fn emit(&mut self, t: &Tok) {
        let i = self.page as usize;
        match t {
            Tok::FillOne(p) => self.push(
                TokenKind::FillOne,
                1,
                &[&TOKEN_FILL_ONE.to_le_bytes(), &p.to_le_bytes()],
            ),
            Tok::FillRun(p, n) => self.push(
                TokenKind::FillRun,
                *n,
                &[
                    &TOKEN_FILL_RUN.to_le_bytes(),
                    &p.to_le_bytes(),
                    &(*n as u32).to_le_bytes(),
                ],
            ),
            Tok::Raw => {
                let data = self.data;
                self.push(
                    TokenKind::RawPage,
                    1,
                    &[
                        &TOKEN_RAW_PAGE.to_le_bytes(),
                        &data[i * 4096..(i + 1) * 4096],
                    ],
                )
            }
            Tok::Compressed(c) => self.push(
                TokenKind::CompressedPage,
                1,
                &[&(c.len() as u32).to_le_bytes(), c],
            ),
            Tok::Multi(n, payload) => {
                let data = self.data;
                let raw = &data[i * 4096..(i + *n as usize) * 4096];
                let out_len = (raw.len() as u32).to_le_bytes();
                match payload {
                    Some(c) if c.len() < raw.len() => self.push(
                        TokenKind::MultiCompressed,
                        *n,
                        &[
                            &TOKEN_MULTI.to_le_bytes(),
                            &out_len,
                            &(c.len() as u32).to_le_bytes(),
                            c,
                        ],
                    ),
                    _ => self.push(
                        TokenKind::MultiStored,
                        *n,
                        &[&TOKEN_MULTI.to_le_bytes(), &out_len, &out_len, raw],
                    ),
                }
            }
        }
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

fn compressed_or_raw(z: Compressor, page: &[u8]) -> Tok {
    let c = z.compress(page);
    if !c.is_empty() && c.len() < 4096 {
        Tok::Compressed(c)
    } else {
        Tok::Raw
    }
}

fn multi(z: Compressor, data: &[u8], i: usize, n: usize, compress: bool) -> Tok {
    let payload = if compress {
        let c = z.compress(&data[i * 4096..(i + n) * 4096]);
        (c.len() < n * 4096).then_some(c)
    } else {
        None
    };
    Tok::Multi(n as u16, payload)
}

/// The cheapest single-page token for page `i`.
fn cheapest(z: Compressor, data: &[u8], i: usize) -> Tok {
    let page = &data[i * 4096..(i + 1) * 4096];
    match page_pattern(page) {
        Some(p) => Tok::FillOne(p),
        None => compressed_or_raw(z, page),
    }
}

/// The tokens `policy` wants at page `i` (at least one; the first starts at `i`).
fn propose(z: Compressor, policy: PagePolicy, data: &[u8], i: usize, turn: &mut usize) -> Vec<Tok> {
    let page = |j: usize| &data[j * 4096..(j + 1) * 4096];
    let pat = page_pattern(page(i));
    match policy {
        PagePolicy::HyperV => vec![match pat {
            Some(p) => Tok::FillOne(p),
            None => compressed_or_raw(z, page(i)),
        }],
        PagePolicy::Raw => vec![Tok::Raw],
        PagePolicy::Compressed => vec![compressed_or_raw(z, page(i))],
        PagePolicy::FillOne => vec![match pat {
            Some(p) => Tok::FillOne(p),
            None => Tok::Raw,
        }],
        PagePolicy::FillRun => vec![match pat {
            Some(p) => Tok::FillRun(p, run_of_pattern(data, i, p, 256) as u16),
            None => Tok::Raw,
        }],
        PagePolicy::MultiPage { pages, compress } => {
            let n = (pages.max(1) as usize).min(256 - i);
            vec![multi(z, data, i, n, compress)]
        }
        PagePolicy::Auto => {
            if let Some(p) = pat {
                let n = run_of_pattern(data, i, p, 256);
                return vec![if n == 1 {
                    Tok::FillOne(p)
                } else {
                    Tok::FillRun(p, n as u16)
                }];
            }
            // A run of non-pattern pages: single-page tokens or one multi-page token.
            let mut n = 1;
            while i + n < 256 && n < 64 && page_pattern(page(i + n)).is_none() {
                n += 1;
            }
            let singles: Vec<Tok> = (i..i + n).map(|j| compressed_or_raw(z, page(j))).collect();
            let single_cost: usize = singles.iter().map(Tok::cost).sum();
            if n > 1 {
                let m = multi(z, data, i, n, true);
                if m.cost() < single_cost {
                    return vec![m];
                }
            }
            singles
        }
        PagePolicy::Mixed => {
            // 0 raw, 1 compressed, 2 fill-one, 3 fill-run, 4 multi compressed, 5 multi stored
            let mut kind = *turn % 6;
            *turn += 1;
            if pat.is_none() && (kind == 2 || kind == 3) {
                kind = 4;
            }
            vec![match kind {
                0 => Tok::Raw,
                1 => compressed_or_raw(z, page(i)),
                2 => Tok::FillOne(pat.unwrap()),
                3 => Tok::FillRun(
                    pat.unwrap(),
                    run_of_pattern(data, i, pat.unwrap(), 5) as u16,
                ),
                4 => multi(z, data, i, 3.min(256 - i), true),
                _ => Tok::Multi(2.min(256 - i) as u16, None),
            }]
        }
    }
}

/// Plan the tokens of a block. With `budget` (cheapest cost of pages `j..256` for every
/// `j`), a proposed token is replaced by the cheapest single-page one whenever keeping
/// it would make the stream reach 1 MiB.
fn plan(
    z: Compressor,
    policy: PagePolicy,
    data: &[u8],
    block: u64,
    budget: Option<&[usize]>,
) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut queue: std::collections::VecDeque<(usize, Tok)> = Default::default();
    let mut turn = (block % 6) as usize;
    let mut size = 4usize; // end token
    let mut i = 0usize;
    while i < 256 {
        while queue.front().is_some_and(|(s, _)| *s < i) {
            queue.pop_front();
        }
        if queue.front().is_none_or(|(s, _)| *s != i) {
            queue.clear();
            let mut s = i;
            for t in propose(z, policy, data, i, &mut turn) {
                let n = t.pages();
                queue.push_back((s, t));
                s += n;
            }
        }
        let (_, mut t) = queue.pop_front().unwrap();
        if let Some(rest) = budget {
            if size + t.cost() + rest[i + t.pages()] >= BLOCK_BYTES {
                t = cheapest(z, data, i);
            }
        }
        size += t.cost();
        i += t.pages();
        toks.push(t);
    }
    toks
}

/// Encode one 1 MiB block (`block` = its number, used by the `Mixed` policy).
///
/// A token stream always stays below 1 MiB (a value of exactly 1 MiB means a raw
/// block): when a policy would reach that size, as few pages as needed are encoded the
/// cheapest way instead; when even that cannot fit, the block is stored raw.
pub fn encode_block(
    data: &[u8],
    encoding: BlockEncoding,
    block: u64,
    compressor: Compressor,
    record_tokens: bool,
) -> EncodedBlock {
    assert_eq!(data.len(), BLOCK_BYTES);
    let raw_block = || EncodedBlock {
        bytes: data.to_vec(),
        raw: true,
        all_zero: data.iter().all(|&b| b == 0),
        counts: TokenCounts {
            raw_blocks: 1,
            ..Default::default()
        },
        tokens: Vec::new(),
    };
    let policy = match encoding {
        BlockEncoding::RawBlock => return raw_block(),
        BlockEncoding::Tokens(p) => p,
    };
    let mut toks = plan(compressor, policy, data, block, None);
    if 4 + toks.iter().map(Tok::cost).sum::<usize>() >= BLOCK_BYTES {
        let mut rest = vec![0usize; 257];
        for j in (0..256).rev() {
            rest[j] = rest[j + 1] + cheapest(compressor, data, j).cost();
        }
        if rest[0] + 4 >= BLOCK_BYTES {
            return raw_block();
        }
        toks = plan(compressor, policy, data, block, Some(&rest));
    }
    let mut e = Emitter {
        data,
        out: Vec::with_capacity(4096),
        counts: TokenCounts::default(),
        tokens: Vec::new(),
        record: record_tokens,
        page: 0,
    };
    for t in &toks {
        e.emit(t);
    }
    debug_assert_eq!(e.page, 256);
    e.push(TokenKind::End, 0, &[&TOKEN_END.to_le_bytes()]);
    debug_assert!(e.out.len() < BLOCK_BYTES);
    EncodedBlock {
        bytes: e.out,
        raw: false,
        all_zero: false,
        counts: e.counts,
        tokens: e.tokens,
    }
}
