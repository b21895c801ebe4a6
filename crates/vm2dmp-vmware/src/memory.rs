//! The `memory` group: where guest RAM is (the `Memory` long data, else the `.vmem`) and
//! how its pages map to guest-physical pages (the `region*` tags).
//!
//! `regionsCount` regions, region `i` described by `regionPPN[i]` (first guest page),
//! `regionPageNum[i]` (first page in the memory backing) and `regionSize[i]` (pages): crash
//! `vmware_vmss.c`, volatility3 `layers/vmware.py` (which maps `regionPageNum` into the
//! `.vmem`), Volatility 2 and illumos mdb (which map it into the `Memory` tag's data). No
//! regions: the backing is guest RAM from address 0 (crash, Volatility 2).

use vm2dmp_source::{FileCtx, Result, PAGE_SIZE};

use crate::format::Tag;

/// Most regions accepted (crash handles 3; real files have 1 to a few).
pub const MAX_REGIONS: u64 = 1024;

/// One region: `pages` guest pages from `gpa_page`, stored from page `backing_page` of the
/// memory backing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First guest-physical page.
    pub gpa_page: u64,
    /// First page in the memory backing (`.vmem`, or the `Memory` data).
    pub backing_page: u64,
    /// Number of pages.
    pub pages: u64,
}

/// The `Memory` tag of the `memory` group (long data: guest RAM inside the state file), if
/// there is one.
pub fn memory_tag(tags: &[Tag]) -> Option<&Tag> {
    tags.iter().find(|t| t.name == "Memory" && t.long)
}

fn short<'a>(tags: &'a [Tag], name: &str, index: Option<u32>) -> Option<&'a Tag> {
    tags.iter().find(|t| {
        t.name == name
            && match index {
                None => t.index_count == 0,
                Some(i) => t.index(0) == Some(i),
            }
    })
}

/// The regions of the `memory` group, sorted by guest page, checked against each other and
/// against `backing_len` bytes of backing; `None` when the group has no regions (or a count
/// of 0). `backing` names the backing in messages.
pub fn regions(
    ctx: &FileCtx,
    tags: &[Tag],
    backing_len: u64,
    backing: &str,
) -> Result<Option<Vec<Region>>> {
    let Some(count_tag) = short(tags, "regionsCount", None) else {
        return Ok(None);
    };
    let count = count_tag.value().ok_or_else(|| {
        ctx.corrupt(
            "regionsCount tag",
            count_tag.offset,
            "not a 1- to 8-byte number",
        )
    })?;
    if count == 0 {
        return Ok(None);
    }
    if count > MAX_REGIONS {
        return Err(ctx.corrupt(
            "regionsCount tag",
            count_tag.offset,
            format!("{count} regions, more than the {MAX_REGIONS} this reader accepts"),
        ));
    }
    let backing_pages = backing_len / PAGE_SIZE as u64;
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as u32 {
        let field = |name: &'static str| -> Result<(u64, u64)> {
            let t = short(tags, name, Some(i)).ok_or_else(|| {
                ctx.corrupt(
                    "regionsCount tag",
                    count_tag.offset,
                    format!("{count} regions but no {name}[{i}] tag"),
                )
            })?;
            let v = t.value().ok_or_else(|| {
                ctx.corrupt(
                    "region tag",
                    t.offset,
                    format!("{name}[{i}] is not a number"),
                )
            })?;
            Ok((v, t.offset))
        };
        let (gpa_page, _) = field("regionPPN")?;
        let (backing_page, pn_off) = field("regionPageNum")?;
        let (pages, size_off) = field("regionSize")?;
        if pages == 0 {
            continue;
        }
        if gpa_page
            .checked_add(pages)
            .filter(|&e| e <= 1 << 52)
            .is_none()
        {
            return Err(ctx.corrupt(
                "region tag",
                size_off,
                format!(
                    "region {i}: {pages} pages from guest page {gpa_page:#x} go beyond 2^64 bytes"
                ),
            ));
        }
        if backing_page
            .checked_add(pages)
            .filter(|&e| e <= backing_pages)
            .is_none()
        {
            return Err(ctx.corrupt(
                "region tag",
                pn_off,
                format!(
                    "region {i}: pages {backing_page:#x}..+{pages:#x} of the {backing} run past its end ({backing_pages:#x} pages)"
                ),
            ));
        }
        out.push((
            Region {
                gpa_page,
                backing_page,
                pages,
            },
            pn_off,
        ));
    }
    out.sort_by_key(|(r, _)| r.gpa_page);
    for w in out.windows(2) {
        if let [(a, _), (b, off)] = w {
            if a.gpa_page + a.pages > b.gpa_page {
                return Err(ctx.corrupt(
                    "region tag",
                    *off,
                    format!(
                        "regions overlap in guest memory: pages {:#x}..{:#x} and {:#x}..{:#x}",
                        a.gpa_page,
                        a.gpa_page + a.pages,
                        b.gpa_page,
                        b.gpa_page + b.pages
                    ),
                ));
            }
        }
    }
    Ok(Some(out.into_iter().map(|(r, _)| r).collect()))
}
