//! A minimal program database (PDB) for kernel-discovery tests: the streams the `pdb` crate
//! needs to report a GUID, an age, sections and public symbols.

/// A minimal PDB (MSF 7.00): information stream with `guid`/`age`, a DBI stream naming a
/// symbol-record stream and a section-header stream, the `sections` (name, RVA, size), and one
/// `S_PUB32` per symbol (name, RVA) that falls in a section (others are left out).
pub fn pdb_bytes(
    guid: [u8; 16],
    age: u32,
    sections: &[(&[u8], u32, u32)],
    symbols: &[(&str, u32)],
) -> Vec<u8> {
    const PAGE: usize = 4096;
    // Stream 1: PDB information.
    let mut info = Vec::new();
    info.extend_from_slice(&20000404u32.to_le_bytes());
    info.extend_from_slice(&0x5F3C_1A2Bu32.to_le_bytes());
    info.extend_from_slice(&age.to_le_bytes());
    info.extend_from_slice(&guid);
    info.extend_from_slice(&[0u8; 20]); // empty name map
                                        // Stream 3: DBI header and a debug header naming the section-header stream (5).
    let mut dbi = Vec::new();
    dbi.extend_from_slice(&u32::MAX.to_le_bytes());
    dbi.extend_from_slice(&19990903u32.to_le_bytes());
    dbi.extend_from_slice(&age.to_le_bytes());
    for v in [0xFFFFu16, 0, 0xFFFF, 0, 4, 0] {
        dbi.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u32, 0, 0, 0, 0, 0, 22, 0] {
        dbi.extend_from_slice(&v.to_le_bytes());
    }
    dbi.extend_from_slice(&0u16.to_le_bytes());
    dbi.extend_from_slice(&0x8664u16.to_le_bytes());
    dbi.extend_from_slice(&0u32.to_le_bytes());
    for i in 0..11 {
        let s: u16 = if i == 5 { 5 } else { 0xFFFF };
        dbi.extend_from_slice(&s.to_le_bytes());
    }
    // Stream 4: symbol records.
    let mut recs = Vec::new();
    let mut names: Vec<_> = symbols.to_vec();
    names.sort();
    for (name, rva) in names {
        let Some((seg, s)) = sections
            .iter()
            .enumerate()
            .find(|(_, s)| rva >= s.1 && rva < s.1 + s.2)
            .map(|(i, s)| (i as u16 + 1, s))
        else {
            continue;
        };
        let mut r = Vec::new();
        r.extend_from_slice(&0x110Eu16.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&(rva - s.1).to_le_bytes());
        r.extend_from_slice(&seg.to_le_bytes());
        r.extend_from_slice(name.as_bytes());
        r.push(0);
        while (r.len() + 2) % 4 != 0 {
            r.push(0);
        }
        recs.extend_from_slice(&(r.len() as u16).to_le_bytes());
        recs.extend_from_slice(&r);
    }
    // Stream 5: section headers.
    let mut sh = Vec::new();
    for &(name, va, size) in sections {
        let mut h = [0u8; 40];
        h[..name.len()].copy_from_slice(name);
        h[8..12].copy_from_slice(&size.to_le_bytes());
        h[12..16].copy_from_slice(&va.to_le_bytes());
        sh.extend_from_slice(&h);
    }
    let streams: Vec<Vec<u8>> = vec![Vec::new(), info, Vec::new(), dbi, recs, sh];
    // Pages: 0 superblock, 1-2 free-page maps, 3 directory page list, 4 directory, 5.. streams.
    let mut dir = Vec::new();
    dir.extend_from_slice(&(streams.len() as u32).to_le_bytes());
    for s in &streams {
        dir.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    let mut next = 5u32;
    let mut placed = Vec::new();
    for s in &streams {
        for _ in 0..s.len().div_ceil(PAGE) {
            dir.extend_from_slice(&next.to_le_bytes());
            placed.push(next);
            next += 1;
        }
    }
    let mut file = vec![0u8; next as usize * PAGE];
    file[..32].copy_from_slice(b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0");
    for (i, v) in [PAGE as u32, 1, next, dir.len() as u32, 0, 3]
        .iter()
        .enumerate()
    {
        file[32 + i * 4..36 + i * 4].copy_from_slice(&v.to_le_bytes());
    }
    file[3 * PAGE..3 * PAGE + 4].copy_from_slice(&4u32.to_le_bytes());
    file[4 * PAGE..4 * PAGE + dir.len()].copy_from_slice(&dir);
    let mut pi = 0;
    for s in &streams {
        for chunk in s.chunks(PAGE) {
            let at = placed[pi] as usize * PAGE;
            file[at..at + chunk.len()].copy_from_slice(chunk);
            pi += 1;
        }
    }
    file
}
