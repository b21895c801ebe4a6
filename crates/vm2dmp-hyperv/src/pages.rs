//! Every guest page in address order, one decoded RAM block at a time.

use vm2dmp_formats::memory::{BLOCK_SIZE, PAGE_SIZE};
use vm2dmp_source::{ChunkSpan, Result};

use crate::state::SavedState;

impl SavedState {
    /// Iterates over every guest page in ascending address order: `(page number, bytes)`.
    pub fn pages(&self) -> Pages<'_> {
        let mut order: Vec<usize> = (0..self.ram_block_count()).collect();
        let spans: Vec<(u64, usize, ChunkSpan)> = order
            .drain(..)
            .flat_map(|n| {
                self.block_spans(n)
                    .into_iter()
                    .map(move |s| (s.gpa_page, n, s))
            })
            .collect();
        let mut spans = spans;
        spans.sort_by_key(|s| s.0);
        Pages {
            state: self,
            spans,
            next_span: 0,
            in_span: 0,
            buf: vec![0u8; BLOCK_SIZE],
            buf_block: None,
        }
    }
}

/// Iterator over guest pages, from [`SavedState::pages`]. Decodes one block at a time.
pub struct Pages<'a> {
    state: &'a SavedState,
    spans: Vec<(u64, usize, ChunkSpan)>,
    next_span: usize,
    in_span: usize,
    buf: Vec<u8>,
    buf_block: Option<usize>,
}

impl Pages<'_> {
    /// The next page: its guest page number and bytes (valid until the next call).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<(u64, &[u8])>> {
        loop {
            let &(_, block, span) = self.spans.get(self.next_span)?;
            if self.in_span >= span.pages {
                self.next_span += 1;
                self.in_span = 0;
                continue;
            }
            if self.buf_block != Some(block) {
                if let Err(e) = self.state.decode_block(block, &mut self.buf) {
                    self.next_span = self.spans.len();
                    return Some(Err(e));
                }
                self.buf_block = Some(block);
            }
            let p = span.page_in_chunk + self.in_span;
            let pfn = span.gpa_page + self.in_span as u64;
            self.in_span += 1;
            return Some(Ok((pfn, &self.buf[p * PAGE_SIZE..(p + 1) * PAGE_SIZE])));
        }
    }
}
