//! The 185 compressed pages of the real Hyper-V sample.

use crate::common::{ours_compress, reference, sample, xpress_rs_decode};
use vm2dmp_xpress::{decompress_bounded, decompress_into, decompress_page, XpressError, PAGE_SIZE};

#[test]
fn sample_has_185_compressed_pages() {
    let pages = sample::compressed_pages();
    assert_eq!(pages.len(), 185);
    let min = pages.iter().map(|p| p.data.len()).min().unwrap();
    let max = pages.iter().map(|p| p.data.len()).max().unwrap();
    assert_eq!((min, max), (12, 3992));
}

#[test]
fn sample_pages_match_xpress_rs() {
    for p in sample::compressed_pages() {
        let theirs = xpress_rs_decode(&p.data)
            .unwrap_or_else(|| panic!("xpress_rs fails on block {} page {}", p.block, p.page));
        assert_eq!(theirs.len(), PAGE_SIZE);
        let mut page = [0xA5u8; PAGE_SIZE];
        decompress_page(&p.data, &mut page)
            .unwrap_or_else(|e| panic!("block {} page {}: {e}", p.block, p.page));
        assert!(
            page[..] == theirs[..],
            "block {} page {} differs from xpress_rs",
            p.block,
            p.page
        );
        assert_eq!(reference::decode(&p.data, PAGE_SIZE).unwrap(), theirs);
    }
}

#[test]
fn sample_pages_reject_wrong_sizes() {
    for p in sample::compressed_pages() {
        let mut small = vec![0u8; PAGE_SIZE - 1];
        assert!(matches!(
            decompress_into(&p.data, &mut small),
            Err(XpressError::OutputOverrun { .. })
        ));
        let mut big = vec![0u8; 2 * PAGE_SIZE];
        assert_eq!(
            decompress_into(&p.data, &mut big),
            Err(XpressError::OutputTooShort {
                offset: p.data.len(),
                out_pos: PAGE_SIZE,
                expected: 2 * PAGE_SIZE
            })
        );
        assert_eq!(decompress_bounded(&p.data, &mut big), Ok(PAGE_SIZE));
    }
}

#[test]
fn sample_pages_truncated_never_decode() {
    // Every proper prefix of a page stream is an error (never a panic),
    // and our errors are the reference decoder's.
    for p in sample::compressed_pages().iter().take(40) {
        for cut in 0..p.data.len() {
            let src = &p.data[..cut];
            let mut page = [0u8; PAGE_SIZE];
            let ours = decompress_page(src, &mut page);
            assert!(
                ours.is_err(),
                "prefix {cut} of block {} page {}",
                p.block,
                p.page
            );
            assert_eq!(ours.err(), reference::decode(src, PAGE_SIZE).err());
        }
    }
}

#[test]
fn sample_pages_recompress() {
    for p in sample::compressed_pages() {
        let mut page = [0u8; PAGE_SIZE];
        decompress_page(&p.data, &mut page).unwrap();
        let ours = ours_compress(&page);
        let mut back = [0u8; PAGE_SIZE];
        decompress_page(&ours, &mut back).unwrap();
        assert!(back == page);
        assert_eq!(xpress_rs_decode(&ours).unwrap(), page);
    }
}
