//! RAM blocks: a stored block is either 1 MiB of raw pages or a token stream
//! (docs/hyperv-saved-state.md section 6.3). Decoding writes straight into the caller's buffer.

use vm2dmp_formats::memory::{token, BLOCK_SIZE, PAGES_PER_BLOCK, PAGE_SIZE};
use vm2dmp_source::le;

/// How the pages of saved RAM blocks were stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EncodingStats {
    /// Blocks stored as 1 MiB of raw pages (no token stream).
    pub raw_blocks: u64,
    /// Pages stored raw inside a token stream (token 4096).
    pub raw_pages: u64,
    /// Pages produced by fill tokens whose pattern is zero.
    pub fill_zero_pages: u64,
    /// Pages produced by fill tokens with a non-zero pattern.
    pub fill_pattern_pages: u64,
    /// Pages stored Plain-LZ77 compressed (tokens 1..=4095).
    pub compressed_pages: u64,
    /// Multi-page sized tokens (0xFFFFFFFC).
    pub sized_tokens: u64,
    /// Pages produced by multi-page sized tokens.
    pub sized_pages: u64,
    /// Bytes found after an end token (ignored).
    pub trailing_bytes: u64,
}

impl EncodingStats {
    /// Adds every count of `o` to this one.
    pub fn add(&mut self, o: &EncodingStats) {
        self.raw_blocks += o.raw_blocks;
        self.raw_pages += o.raw_pages;
        self.fill_zero_pages += o.fill_zero_pages;
        self.fill_pattern_pages += o.fill_pattern_pages;
        self.compressed_pages += o.compressed_pages;
        self.sized_tokens += o.sized_tokens;
        self.sized_pages += o.sized_pages;
        self.trailing_bytes += o.trailing_bytes;
    }
}

/// A corrupt token stream: offset inside the stored block and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    pub offset: usize,
    pub detail: String,
}

fn err(offset: usize, detail: impl Into<String>) -> TokenError {
    TokenError {
        offset,
        detail: detail.into(),
    }
}

/// What one token produces, handed to a visitor together with the index of its first page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PageToken<'a> {
    /// `count` pages, each the pattern repeated.
    Fill { pattern: u64, count: u32 },
    /// One page stored as is.
    Raw(&'a [u8]),
    /// One page of Plain LZ77.
    Compressed(&'a [u8]),
    /// `out_len / 4096` pages, stored (`payload.len() == out_len`) or compressed.
    Sized { out_len: u32, payload: &'a [u8] },
}

impl PageToken<'_> {
    pub fn pages(&self) -> usize {
        match *self {
            PageToken::Fill { count, .. } => count as usize,
            PageToken::Raw(_) | PageToken::Compressed(_) => 1,
            PageToken::Sized { out_len, .. } => out_len as usize / PAGE_SIZE,
        }
    }
}

/// True when a stored block is 1 MiB of raw pages rather than a token stream.
pub(crate) fn is_raw_block(data: &[u8]) -> bool {
    data.len() == BLOCK_SIZE
}

/// Walks a token stream, calling `visit(first_page, token)` for each page-producing token.
/// Checks that the stream is well formed and produces exactly 256 pages; stops early (with
/// `Ok`) when `visit` returns `false`. Returns the number of bytes after the end token.
pub(crate) fn walk_tokens<'a>(
    data: &'a [u8],
    mut visit: impl FnMut(usize, PageToken<'a>) -> Result<bool, TokenError>,
) -> Result<usize, TokenError> {
    let mut pos = 0usize;
    let mut page = 0usize;
    loop {
        let at = pos;
        let t =
            le::u32(data, pos).ok_or_else(|| err(at, "token stream ends without an end token"))?;
        pos += 4;
        let tok = match t {
            token::END => {
                if page != PAGES_PER_BLOCK {
                    return Err(err(
                        at,
                        format!("stream ends after {page} pages, a block holds {PAGES_PER_BLOCK}"),
                    ));
                }
                return Ok(data.len() - pos);
            }
            token::FILL_PAGE => {
                let pattern = le::u64(data, pos).ok_or_else(|| err(at, "fill token truncated"))?;
                pos += 8;
                PageToken::Fill { pattern, count: 1 }
            }
            token::FILL_PAGES => {
                let pattern =
                    le::u64(data, pos).ok_or_else(|| err(at, "fill-pages token truncated"))?;
                let count =
                    le::u32(data, pos + 8).ok_or_else(|| err(at, "fill-pages token truncated"))?;
                pos += 12;
                if count == 0 {
                    return Err(err(at, "fill-pages token with a count of 0"));
                }
                PageToken::Fill { pattern, count }
            }
            token::SIZED => {
                let out_len = le::u32(data, pos).ok_or_else(|| err(at, "sized token truncated"))?;
                let in_len =
                    le::u32(data, pos + 4).ok_or_else(|| err(at, "sized token truncated"))?;
                pos += 8;
                if out_len == 0 || out_len as usize % PAGE_SIZE != 0 || in_len > out_len {
                    return Err(err(
                        at,
                        format!("sized token out_len {out_len} / in_len {in_len} invalid"),
                    ));
                }
                let end = pos.checked_add(in_len as usize);
                let payload = end.and_then(|e| data.get(pos..e)).ok_or_else(|| {
                    err(
                        at,
                        format!("sized token payload of {in_len} bytes truncated"),
                    )
                })?;
                pos += in_len as usize;
                PageToken::Sized { out_len, payload }
            }
            token::RAW_PAGE => {
                let p = data
                    .get(pos..pos.saturating_add(PAGE_SIZE))
                    .ok_or_else(|| err(at, "raw page truncated"))?;
                pos += PAGE_SIZE;
                PageToken::Raw(p)
            }
            1..=token::MAX_COMPRESSED_PAGE => {
                let n = t as usize;
                let p = pos
                    .checked_add(n)
                    .and_then(|end| data.get(pos..end))
                    .ok_or_else(|| err(at, format!("compressed page of {n} bytes truncated")))?;
                pos += n;
                PageToken::Compressed(p)
            }
            _ => return Err(err(at, format!("invalid token {t:#010x}"))),
        };
        let n = tok.pages();
        if page + n > PAGES_PER_BLOCK {
            return Err(err(
                at,
                format!("token of {n} pages runs past the {PAGES_PER_BLOCK} pages of a block"),
            ));
        }
        if !visit(page, tok)? {
            return Ok(0);
        }
        page += n;
    }
}

/// Fills `out` with `pattern` repeated.
#[inline]
pub(crate) fn fill_pattern(out: &mut [u8], pattern: u64) {
    if pattern == 0 {
        out.fill(0);
    } else {
        let b = pattern.to_le_bytes();
        for c in out.chunks_exact_mut(8) {
            c.copy_from_slice(&b);
        }
    }
}

/// Decodes what `tok` produces into `out` (exactly `tok.pages()` pages long).
pub(crate) fn decode_token(
    tok: PageToken<'_>,
    out: &mut [u8],
    at: usize,
) -> Result<(), TokenError> {
    match tok {
        PageToken::Fill { pattern, .. } => fill_pattern(out, pattern),
        PageToken::Raw(p) => out.copy_from_slice(p),
        PageToken::Compressed(p) => {
            let page: &mut [u8; PAGE_SIZE] = out
                .try_into()
                .map_err(|_| err(at, "compressed token does not produce one page"))?;
            vm2dmp_xpress::decompress_page(p, page)
                .map_err(|e| err(at, format!("compressed page does not decode: {e}")))?;
        }
        PageToken::Sized { out_len, payload } => {
            if payload.len() == out_len as usize {
                out.copy_from_slice(payload);
            } else {
                vm2dmp_xpress::decompress_into(payload, out)
                    .map_err(|e| err(at, format!("compressed pages do not decode: {e}")))?;
            }
        }
    }
    Ok(())
}

fn count(stats: &mut EncodingStats, tok: &PageToken<'_>) {
    match *tok {
        PageToken::Fill { pattern: 0, count } => stats.fill_zero_pages += u64::from(count),
        PageToken::Fill { count, .. } => stats.fill_pattern_pages += u64::from(count),
        PageToken::Raw(_) => stats.raw_pages += 1,
        PageToken::Compressed(_) => stats.compressed_pages += 1,
        PageToken::Sized { .. } => {
            stats.sized_tokens += 1;
            stats.sized_pages += tok.pages() as u64;
        }
    }
}

/// Decodes a whole stored block into `out` (1 MiB), counting token kinds into `stats`.
pub(crate) fn decode_block(
    data: &[u8],
    out: &mut [u8],
    stats: &mut EncodingStats,
) -> Result<(), TokenError> {
    decode_block_masked(data, out, stats).map(|_| ())
}

/// One bit per page of a block (256 pages).
pub(crate) use vm2dmp_source::PageMask;

fn mark(mask: &mut PageMask, first: usize, count: usize) {
    for p in first..first + count {
        mask[p / 64] |= 1 << (p % 64);
    }
}

/// [`decode_block`], also returning which pages came from zero-fill tokens (so a writer can
/// leave them to a pre-zeroed output).
pub(crate) fn decode_block_masked(
    data: &[u8],
    out: &mut [u8],
    stats: &mut EncodingStats,
) -> Result<PageMask, TokenError> {
    let mut zero = [0u64; 4];
    if out.len() != BLOCK_SIZE {
        return Err(err(0, "output buffer is not one block"));
    }
    if is_raw_block(data) {
        out.copy_from_slice(data);
        stats.raw_blocks += 1;
        return Ok(zero);
    }
    if data.len() > BLOCK_SIZE {
        return Err(err(
            0,
            format!("stored block is {} bytes, more than 1 MiB", data.len()),
        ));
    }
    let base = data.as_ptr() as usize;
    let trailing = walk_tokens(data, |page, tok| {
        count(stats, &tok);
        if let PageToken::Fill { pattern: 0, count } = tok {
            mark(&mut zero, page, count as usize);
        }
        let start = page * PAGE_SIZE;
        let at = token_offset(base, &tok);
        decode_token(tok, &mut out[start..start + tok.pages() * PAGE_SIZE], at)?;
        Ok(true)
    })?;
    stats.trailing_bytes += trailing as u64;
    Ok(zero)
}

/// Pages of a block known to be all zero without decompressing anything: zero-fill tokens and
/// stored pages (raw tokens, raw blocks) that are all zero. Compressed pages count as non-zero.
pub(crate) fn zero_pages(data: &[u8]) -> Result<PageMask, TokenError> {
    let mut zero = [0u64; 4];
    let is_zero = |p: &[u8]| p.iter().all(|&b| b == 0);
    if is_raw_block(data) {
        for (i, p) in data.chunks_exact(PAGE_SIZE).enumerate() {
            if is_zero(p) {
                mark(&mut zero, i, 1);
            }
        }
        return Ok(zero);
    }
    if data.len() > BLOCK_SIZE {
        return Err(err(
            0,
            format!("stored block is {} bytes, more than 1 MiB", data.len()),
        ));
    }
    walk_tokens(data, |page, tok| {
        match tok {
            PageToken::Fill { pattern: 0, count } => mark(&mut zero, page, count as usize),
            PageToken::Raw(p) if is_zero(p) => mark(&mut zero, page, 1),
            PageToken::Sized { out_len, payload } if payload.len() == out_len as usize => {
                for (i, p) in payload.chunks_exact(PAGE_SIZE).enumerate() {
                    if is_zero(p) {
                        mark(&mut zero, page + i, 1);
                    }
                }
            }
            _ => {}
        }
        Ok(true)
    })?;
    Ok(zero)
}

/// Counts token kinds without decoding (cheap: no decompression).
pub(crate) fn block_stats(data: &[u8]) -> Result<EncodingStats, TokenError> {
    let mut stats = EncodingStats::default();
    if is_raw_block(data) {
        stats.raw_blocks = 1;
        return Ok(stats);
    }
    if data.len() > BLOCK_SIZE {
        return Err(err(
            0,
            format!("stored block is {} bytes, more than 1 MiB", data.len()),
        ));
    }
    stats.trailing_bytes = walk_tokens(data, |_, tok| {
        count(&mut stats, &tok);
        Ok(true)
    })? as u64;
    Ok(stats)
}

/// Offset of a token's payload inside its block, for error messages.
fn token_offset(base: usize, tok: &PageToken<'_>) -> usize {
    match *tok {
        PageToken::Raw(p) | PageToken::Compressed(p) | PageToken::Sized { payload: p, .. } => {
            (p.as_ptr() as usize).saturating_sub(base)
        }
        PageToken::Fill { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_block_stream() -> Vec<u8> {
        let mut s = Vec::new();
        for _ in 0..PAGES_PER_BLOCK {
            s.extend_from_slice(&token::FILL_PAGE.to_le_bytes());
            s.extend_from_slice(&0u64.to_le_bytes());
        }
        s.extend_from_slice(&token::END.to_le_bytes());
        s
    }

    #[test]
    fn all_zero_block_is_3076_bytes_and_decodes() {
        let s = zero_block_stream();
        assert_eq!(s.len(), 3076);
        let mut out = vec![0xAAu8; BLOCK_SIZE];
        let mut st = EncodingStats::default();
        decode_block(&s, &mut out, &mut st).unwrap();
        assert!(out.iter().all(|&b| b == 0));
        assert_eq!(st.fill_zero_pages, 256);
    }

    #[test]
    fn fill_pages_and_raw_and_sized() {
        let mut s = Vec::new();
        s.extend_from_slice(&token::FILL_PAGES.to_le_bytes());
        s.extend_from_slice(&0x1122334455667788u64.to_le_bytes());
        s.extend_from_slice(&254u32.to_le_bytes());
        s.extend_from_slice(&token::RAW_PAGE.to_le_bytes());
        s.extend(std::iter::repeat_n(7u8, PAGE_SIZE));
        s.extend_from_slice(&token::SIZED.to_le_bytes());
        s.extend_from_slice(&4096u32.to_le_bytes());
        s.extend_from_slice(&4096u32.to_le_bytes());
        s.extend(std::iter::repeat_n(9u8, PAGE_SIZE));
        s.extend_from_slice(&token::END.to_le_bytes());
        let mut out = vec![0u8; BLOCK_SIZE];
        let mut st = EncodingStats::default();
        decode_block(&s, &mut out, &mut st).unwrap();
        assert_eq!(&out[0..8], &0x1122334455667788u64.to_le_bytes());
        assert_eq!(out[254 * PAGE_SIZE], 7);
        assert_eq!(out[255 * PAGE_SIZE + 100], 9);
        assert_eq!(st.fill_pattern_pages, 254);
        assert_eq!(st.sized_pages, 1);
    }

    #[test]
    fn malformed_streams_error() {
        let mut out = vec![0u8; BLOCK_SIZE];
        let mut st = EncodingStats::default();
        // No end token.
        let mut s = zero_block_stream();
        s.truncate(s.len() - 4);
        assert!(decode_block(&s, &mut out, &mut st).is_err());
        // Too many pages.
        let mut s = zero_block_stream();
        s.truncate(s.len() - 4);
        s.extend_from_slice(&token::FILL_PAGE.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        s.extend_from_slice(&token::END.to_le_bytes());
        let e = decode_block(&s, &mut out, &mut st).unwrap_err();
        assert_eq!(e.offset, 3072);
        // Too few pages.
        let s = [token::END.to_le_bytes()].concat();
        assert!(decode_block(&s, &mut out, &mut st).is_err());
        // Invalid token value.
        let s = [0u32.to_le_bytes()].concat();
        assert!(decode_block(&s, &mut out, &mut st).is_err());
        let s = [5000u32.to_le_bytes()].concat();
        assert!(decode_block(&s, &mut out, &mut st).is_err());
        // Fill count 0 and huge counts.
        for c in [0u32, 257, u32::MAX] {
            let mut s = token::FILL_PAGES.to_le_bytes().to_vec();
            s.extend_from_slice(&0u64.to_le_bytes());
            s.extend_from_slice(&c.to_le_bytes());
            s.extend_from_slice(&token::END.to_le_bytes());
            assert!(decode_block(&s, &mut out, &mut st).is_err(), "count {c}");
        }
        // Sized token with a bad length, and one running past the data.
        for (o, i) in [(100u32, 10u32), (4096, 5000), (0x8000_0000, 1), (8192, 100)] {
            let mut s = token::SIZED.to_le_bytes().to_vec();
            s.extend_from_slice(&o.to_le_bytes());
            s.extend_from_slice(&i.to_le_bytes());
            assert!(decode_block(&s, &mut out, &mut st).is_err(), "{o} {i}");
        }
        // Compressed page that decodes to less than a page.
        let mut s = 5u32.to_le_bytes().to_vec();
        s.extend_from_slice(&[0, 0, 0, 0, 0x41]);
        s.extend_from_slice(&token::END.to_le_bytes());
        assert!(decode_block(&s, &mut out, &mut st).is_err());
        // Longer than 1 MiB.
        assert!(decode_block(&vec![0u8; BLOCK_SIZE + 1], &mut out, &mut st).is_err());
    }
}
