//! The 1024 pages of real firmware memory in `testdata/ovmf-pages/`.

use crate::common::ovmf::{expected_sha256, streams, Sha256};
use crate::common::{ours_compress, reference, xpress_rs_decode};
use vm2dmp_xpress::{decompress_into, decompress_page, PAGE_SIZE};

#[test]
fn sha256_known_answers() {
    let hex = |data: &[u8]| {
        let mut h = Sha256::new();
        h.update(data);
        h.hex()
    };
    assert_eq!(
        hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&[b'a'; 1000]),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
}

#[test]
fn corpus_decodes_to_its_checksum() {
    let streams = streams();
    assert_eq!(streams.len(), 1024);
    let mut sha = Sha256::new();
    let mut page = [0u8; PAGE_SIZE];
    for (k, s) in streams.iter().enumerate() {
        decompress_page(s, &mut page).unwrap_or_else(|e| panic!("page {k}: {e}"));
        sha.update(&page);
    }
    assert_eq!(sha.hex(), expected_sha256());
}

#[test]
fn every_page_round_trips() {
    // Each page decodes like the reference decoder and `xpress_rs`, and the
    // encoder gives back exactly the stored stream.
    for (k, s) in streams().iter().enumerate() {
        let mut page = [0xA5u8; PAGE_SIZE];
        decompress_page(s, &mut page).unwrap_or_else(|e| panic!("page {k}: {e}"));
        assert!(page.iter().any(|&b| b != 0), "page {k} is zero");
        assert_eq!(reference::decode(s, PAGE_SIZE).unwrap(), page, "page {k}");
        let theirs = xpress_rs_decode(s).unwrap_or_else(|| panic!("xpress_rs fails on page {k}"));
        assert!(theirs == page, "page {k} differs from xpress_rs");
        assert!(
            ours_compress(&page) == *s,
            "page {k} re-encodes differently"
        );
        let mut exact = vec![0u8; PAGE_SIZE];
        decompress_into(s, &mut exact).unwrap();
        assert!(exact == page);
    }
}

#[test]
fn corpus_pages_truncated_never_decode() {
    // Every proper prefix of some pages is an error equal to the reference
    // decoder's (the fast loop stops at a different place for each cut).
    for (k, s) in streams().iter().enumerate().step_by(97) {
        for cut in 0..s.len() {
            let mut page = [0u8; PAGE_SIZE];
            let ours = decompress_page(&s[..cut], &mut page);
            assert!(ours.is_err(), "prefix {cut} of page {k}");
            assert_eq!(ours.err(), reference::decode(&s[..cut], PAGE_SIZE).err());
        }
    }
}
