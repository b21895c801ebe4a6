//! Test-only readers for the files the synth crate writes (and for the real sample):
//! an HVS walker, a legacy-container walker, a RAM-block token decoder and a
//! partition_state parser. Strict: every checksum is verified.

use std::collections::{BTreeMap, HashMap};

pub fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, String> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("u16 at {o:#x} beyond end"))
}
fn u32_at(b: &[u8], o: usize) -> Result<u32, String> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("u32 at {o:#x} beyond end"))
}
fn u64_at(b: &[u8], o: usize) -> Result<u64, String> {
    b.get(o..o + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("u64 at {o:#x} beyond end"))
}

/// One HVS key as found by the walker.
#[derive(Debug, Clone)]
pub struct HvsKey {
    pub path: String,
    pub ty: u8,
    pub flags: u8,
    pub insertion: u32,
    pub table_index: u16,
    pub table_offset: u32,
    pub file_offset: u64,
    /// Bytes between the end of the value and the end of the entry.
    pub slack: usize,
    /// Value bytes: fixed values as stored, strings/arrays without the length prefix,
    /// file-object values resolved.
    pub value: Vec<u8>,
}

#[derive(Debug)]
pub struct Hvs {
    pub active_copy: usize,
    pub sequence: u16,
    pub alignment: u64,
    pub replay_log_size: u64,
    pub pending_replayed: usize,
    pub stale_entries: usize,
    /// (type, offset, size) of every live object.
    pub objects: Vec<(u8, u64, u64)>,
    pub object_tables: Vec<(u64, u64)>,
    /// index -> (offset, sequence) of the key table in use.
    pub key_tables: BTreeMap<u16, (u64, u16)>,
    pub keys: Vec<HvsKey>,
    pub free_entries: usize,
}

impl Hvs {
    pub fn parse(file: &[u8]) -> Result<Hvs, String> {
        if file.len() < 12288 {
            return Err("file too short".into());
        }
        let mut valid = Vec::new();
        for copy in 0..2usize {
            let h = &file[copy * 4096..copy * 4096 + 46];
            let sig = u32_at(h, 0)?;
            let c = u32_at(h, 4)?;
            if sig == 0x0128_2014 && crc(&[&h[..4], &[0; 4], &h[8..]]) == c {
                valid.push((copy, u16_at(h, 8)?));
            }
        }
        let (copy, seq) = match valid.as_slice() {
            [] => return Err("both header copies invalid".into()),
            [one] => *one,
            [a, b] => {
                if b.1 > a.1 {
                    *b
                } else {
                    *a
                }
            }
            _ => unreachable!(),
        };
        let h = &file[copy * 4096..copy * 4096 + 46];
        if u32_at(h, 10)? != 0x400 {
            return Err("format version".into());
        }
        let alignment = u32_at(h, 22)? as u64;
        let log_off = u64_at(h, 26)?;
        let log_size = u64_at(h, 34)?;
        let log_hs = u32_at(h, 42)? as u64;
        if log_off + log_size > file.len() as u64 || log_hs < 34 || log_hs > log_size {
            return Err("replay log outside the file".into());
        }
        let mut data = file.to_vec();
        let lo = log_off as usize;
        let lh = &file[lo..lo + 34];
        if u32_at(lh, 0)? != 0x0111_0003 {
            return Err("replay log signature".into());
        }
        if crc(&[&lh[..4], &[0; 4], &lh[8..]]) != u32_at(lh, 4)? {
            return Err("replay log crc".into());
        }
        let current = u32_at(lh, 8)? as usize;
        let max = u32_at(lh, 13)? as usize;
        if max != (log_hs as usize - 34) / 28 || current > max {
            return Err("replay log entry counts".into());
        }
        let mut stale = 0;
        for i in 0..max {
            let e = &file[lo + 34 + i * 28..lo + 34 + i * 28 + 28];
            if e.iter().all(|&b| b == 0) {
                continue;
            }
            let dest = u64_at(e, 0)?;
            let size = u32_at(e, 8)? as u64;
            let doff = u64_at(e, 12)?;
            if crc(&[&e[..20], &[0; 4], &e[24..]]) != u32_at(e, 20)? {
                if i < current {
                    return Err(format!("replay entry {i} crc"));
                }
                continue;
            }
            if doff < log_hs || doff + size > log_size || dest + size > file.len() as u64 {
                return Err(format!("replay entry {i} out of range"));
            }
            let d = &file[lo + doff as usize..lo + (doff + size) as usize];
            if crc(&[d]) != u32_at(e, 24)? {
                return Err(format!("replay entry {i} data crc"));
            }
            if i < current {
                data[dest as usize..(dest + size) as usize].copy_from_slice(d);
            } else {
                stale += 1;
            }
        }

        // Object tables.
        let mut objects = Vec::new();
        let mut object_tables = Vec::new();
        let (mut t, mut size) = (8192u64, alignment);
        loop {
            if object_tables.iter().any(|&(o, _)| o == t) {
                return Err("object table loop".into());
            }
            if t + size > data.len() as u64 {
                return Err("object table beyond end".into());
            }
            object_tables.push((t, size));
            let tb = &data[t as usize..(t + size) as usize];
            if u32_at(tb, 0)? != 0x0111_0001 {
                return Err(format!("object table signature at {t:#x}"));
            }
            let n = u32_at(tb, 4)? as usize;
            if n == 0 || 8 + n * 18 > size as usize {
                return Err("object table entry count".into());
            }
            let mut next = None;
            for i in 0..n {
                let e = &tb[8 + i * 18..8 + i * 18 + 18];
                if crc(&[&e[..1], &[0; 4], &e[5..]]) != u32_at(e, 1)? {
                    return Err(format!("object entry crc at {:#x}", t + 8 + i as u64 * 18));
                }
                let kind = e[0];
                let off = u64_at(e, 5)?;
                let sz = u32_at(e, 13)? as u64;
                if i + 1 == n {
                    match kind {
                        1 => next = Some((off, sz)),
                        0 => {}
                        _ => return Err("last object slot neither link nor empty".into()),
                    }
                    continue;
                }
                match kind {
                    0 => {}
                    1 => return Err("link entry not in the last slot".into()),
                    2..=4 => {
                        if off % alignment != 0 || off < 8192 || off + sz > data.len() as u64 {
                            return Err(format!("object {off:#x}+{sz:#x} misplaced"));
                        }
                        if sz % alignment != 0 {
                            return Err("object size not aligned".into());
                        }
                        objects.push((kind, off, sz));
                    }
                    5..=7 => {}
                    _ => return Err("unknown object type".into()),
                }
            }
            match next {
                Some((o, s)) => {
                    t = o;
                    size = s;
                }
                None => break,
            }
        }
        // No overlaps.
        let mut spans: Vec<(u64, u64)> = objects.iter().map(|&(_, o, s)| (o, s)).collect();
        spans.extend(object_tables.iter().copied());
        spans.sort();
        for w in spans.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err(format!("objects overlap at {:#x}", w[1].0));
            }
        }

        // Key tables: highest sequence per index.
        let mut key_tables: BTreeMap<u16, (u64, u16, u64)> = BTreeMap::new();
        for &(kind, off, sz) in &objects {
            if kind != 2 {
                continue;
            }
            let kt = &data[off as usize..];
            if u16_at(kt, 0)? != 2 {
                return Err("key table signature".into());
            }
            if crc(&[&kt[..6], &[0; 4]]) != u32_at(kt, 6)? {
                return Err(format!("key table header crc at {off:#x}"));
            }
            let idx = u16_at(kt, 2)?;
            let seq = u16_at(kt, 4)?;
            if idx == 0 {
                return Err("key table index 0".into());
            }
            match key_tables.get(&idx) {
                Some(&(_, s, _)) if s == seq => return Err("duplicate key table".into()),
                Some(&(_, s, _)) if s > seq => {}
                _ => {
                    key_tables.insert(idx, (off, seq, sz));
                }
            }
        }
        // Entries.
        struct Raw {
            ty: u8,
            flags: u8,
            ptab: u16,
            poff: u32,
            ins: u32,
            name: String,
            value_at: usize,
            slack: usize,
            file_offset: u64,
        }
        let mut raw: HashMap<(u16, u32), Raw> = HashMap::new();
        let mut order = Vec::new();
        let mut free = 0;
        for (&idx, &(off, _, sz)) in &key_tables {
            let base = off as usize;
            let mut p = 10usize;
            while p < sz as usize {
                if p + 21 > sz as usize {
                    return Err("gap too small for an entry".into());
                }
                let e = &data[base + p..];
                let ty = e[0];
                let flags = e[1];
                let esz = u32_at(e, 2)? as usize;
                if esz < 21 || p + esz > sz as usize {
                    return Err(format!("entry size {esz} at {:#x}", base + p));
                }
                if ty == 1 {
                    free += 1;
                    p += esz;
                    continue;
                }
                let nsz = e[20] as usize;
                if nsz == 0 || e[20 + nsz] != 0 {
                    return Err("entry name".into());
                }
                let name = std::str::from_utf8(&e[21..20 + nsz])
                    .map_err(|_| "name utf8")?
                    .to_string();
                let v = 21 + nsz;
                let vlen = if flags & 1 != 0 {
                    if ty != 6 && ty != 7 {
                        return Err("file flag on a fixed type".into());
                    }
                    12
                } else {
                    match ty {
                        3..=5 => 8,
                        8 => 4,
                        9 => 12,
                        6 | 7 => 4 + u32_at(e, v)? as usize,
                        _ => return Err(format!("value type {ty}")),
                    }
                };
                if v + vlen > esz {
                    return Err("value overruns entry".into());
                }
                if crc(&[&e[..12], &[0; 4], &e[16..v + vlen]]) != u32_at(e, 12)? {
                    return Err(format!("key entry crc at {:#x} ({name})", base + p));
                }
                raw.insert(
                    (idx, p as u32),
                    Raw {
                        ty,
                        flags,
                        ptab: u16_at(e, 6)?,
                        poff: u32_at(e, 8)?,
                        ins: u32_at(e, 16)?,
                        name,
                        value_at: base + p + v,
                        slack: esz - v - vlen,
                        file_offset: (base + p) as u64,
                    },
                );
                order.push((idx, p as u32));
                p += esz;
            }
        }
        let path_of = |mut k: (u16, u32)| -> Result<String, String> {
            let mut parts = Vec::new();
            for _ in 0..256 {
                let r = raw.get(&k).ok_or("dangling parent")?;
                parts.push(r.name.clone());
                if r.ptab == 0 && r.poff == 0 {
                    parts.reverse();
                    return Ok(format!("/{}", parts.join("/")));
                }
                k = (r.ptab, r.poff);
                match raw.get(&k) {
                    Some(p) if p.ty == 9 => {}
                    _ => return Err(format!("dangling parent {k:?}")),
                }
            }
            Err("parent cycle".into())
        };
        let files: HashMap<u64, u64> = objects
            .iter()
            .filter(|o| o.0 == 3)
            .map(|o| (o.1, o.2))
            .collect();
        let mut keys = Vec::new();
        for k in order {
            let r = &raw[&k];
            let value = if r.flags & 1 != 0 {
                let vs = u32_at(&data, r.value_at)? as u64;
                let fo = u64_at(&data, r.value_at + 4)?;
                let osz = files.get(&fo).ok_or("file object missing")?;
                if vs > *osz {
                    return Err("value larger than its file object".into());
                }
                data[fo as usize..(fo + vs) as usize].to_vec()
            } else {
                match r.ty {
                    6 | 7 => {
                        let n = u32_at(&data, r.value_at)? as usize;
                        data[r.value_at + 4..r.value_at + 4 + n].to_vec()
                    }
                    3..=5 => data[r.value_at..r.value_at + 8].to_vec(),
                    8 => data[r.value_at..r.value_at + 4].to_vec(),
                    _ => data[r.value_at..r.value_at + 12].to_vec(),
                }
            };
            keys.push(HvsKey {
                path: path_of(k)?,
                ty: r.ty,
                flags: r.flags,
                insertion: r.ins,
                table_index: k.0,
                table_offset: k.1,
                file_offset: r.file_offset,
                slack: r.slack,
                value,
            });
        }
        Ok(Hvs {
            active_copy: copy,
            sequence: seq,
            alignment,
            replay_log_size: log_size,
            pending_replayed: current,
            stale_entries: stale,
            objects,
            object_tables,
            key_tables: key_tables
                .into_iter()
                .map(|(i, (o, s, _))| (i, (o, s)))
                .collect(),
            keys,
            free_entries: free,
        })
    }

    /// The unique key with this path.
    pub fn key(&self, path: &str) -> Result<&HvsKey, String> {
        let mut it = self.keys.iter().filter(|k| k.path == path);
        let k = it.next().ok_or_else(|| format!("no key {path}"))?;
        if it.next().is_some() {
            return Err(format!("ambiguous key {path}"));
        }
        Ok(k)
    }

    pub fn value(&self, path: &str) -> Vec<u8> {
        self.key(path).unwrap().value.clone()
    }

    pub fn int(&self, path: &str) -> i64 {
        i64::from_le_bytes(self.value(path)[..8].try_into().unwrap())
    }

    pub fn string(&self, path: &str) -> String {
        utf16_string(&self.value(path))
    }
}

pub fn utf16_string(b: &[u8]) -> String {
    let u: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&u).unwrap()
}

/// Legacy container contents: name -> (type, value bytes).
#[derive(Debug)]
pub struct Legacy {
    pub capacity: u32,
    pub index_offset: u64,
    pub strings_offset: u64,
    pub slots: Vec<(String, u8, Vec<u8>)>,
    pub map: BTreeMap<String, (u8, Vec<u8>)>,
}

impl Legacy {
    pub fn parse(f: &[u8]) -> Result<Legacy, String> {
        if f.len() < 4096 || u32_at(f, 0)? != 0x0218_2003 {
            return Err("not a legacy container".into());
        }
        if u32_at(f, 4)? != 0x500 {
            return Err("version".into());
        }
        let cap = u32_at(f, 12)?;
        let io = u64_at(f, 16)?;
        let so = u64_at(f, 24)?;
        let sa = u32_at(f, 32)? as u64;
        let su = u32_at(f, 36)? as u64;
        if io + cap as u64 * 24 > f.len() as u64 || so + sa > f.len() as u64 || su > sa {
            return Err("index or strings outside the file".into());
        }
        if f[40..4096].iter().any(|&b| b != 0) {
            return Err("header tail not zero".into());
        }
        let mut slots = Vec::new();
        let mut map = BTreeMap::new();
        let mut spans = Vec::new();
        for i in 0..cap as u64 {
            let s = &f[(io + i * 24) as usize..(io + i * 24 + 24) as usize];
            if s.iter().all(|&b| b == 0) {
                continue;
            }
            let no = u32_at(s, 0)? as u64;
            let ns = u16_at(s, 4)? as u64;
            if s[6] != 1 {
                return Err("slot byte 6".into());
            }
            let ty = s[7];
            let alloc = u32_at(s, 8)? as u64;
            let size = u32_at(s, 12)? as u64;
            let v = u64_at(s, 16)?;
            if ns == 0 || no + ns > su || f[(so + no + ns - 1) as usize] != 0 {
                return Err("slot name".into());
            }
            let name = std::str::from_utf8(&f[(so + no) as usize..(so + no + ns - 1) as usize])
                .map_err(|_| "name utf8")?
                .to_string();
            let value = if alloc == 0 {
                if size > 8 {
                    return Err("inline value > 8 bytes".into());
                }
                v.to_le_bytes()[..size as usize].to_vec()
            } else {
                if size > alloc || v + alloc > f.len() as u64 {
                    return Err(format!("value of {name} outside the file"));
                }
                spans.push((v, alloc));
                f[v as usize..(v + size) as usize].to_vec()
            };
            if map.insert(name.clone(), (ty, value.clone())).is_some() {
                return Err(format!("duplicate name {name}"));
            }
            slots.push((name, ty, value));
        }
        spans.push((io, cap as u64 * 24));
        spans.push((so, sa));
        spans.sort();
        for w in spans.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err(format!("values overlap at {:#x}", w[1].0));
            }
        }
        Ok(Legacy {
            capacity: cap,
            index_offset: io,
            strings_offset: so,
            slots,
            map,
        })
    }

    pub fn value(&self, name: &str) -> &[u8] {
        &self.map.get(name).unwrap_or_else(|| panic!("no {name}")).1
    }

    pub fn int(&self, name: &str) -> i64 {
        i64::from_le_bytes(self.value(name).try_into().unwrap())
    }
}

/// Counts of token kinds seen by the decoder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub fill_one: u64,
    pub fill_run: u64,
    pub raw: u64,
    pub compressed: u64,
    pub multi_compressed: u64,
    pub multi_stored: u64,
    pub raw_block: u64,
}

pub fn lz77(src: &[u8], want: usize) -> Result<Vec<u8>, String> {
    let out = xpress_rs::lz77::LZ77Decompressor::new(src.to_vec())
        .decompress()
        .map_err(|e| format!("lz77: {e}"))?;
    if out.len() != want {
        return Err(format!("lz77 produced {} bytes, want {want}", out.len()));
    }
    // Cross-check with the project's decoder.
    let mut ours = vec![0u8; want];
    vm2dmp_xpress::decompress_into(src, &mut ours).map_err(|e| format!("xpress: {e}"))?;
    if ours != out {
        return Err("the two LZ77 decoders disagree".into());
    }
    Ok(out)
}

/// Decode one RAM block value into 1 MiB.
pub fn decode_block(b: &[u8], seen: &mut Seen) -> Result<Vec<u8>, String> {
    const MIB: usize = 1 << 20;
    if b.len() == MIB {
        seen.raw_block += 1;
        return Ok(b.to_vec());
    }
    if b.len() > MIB {
        return Err("stored block longer than 1 MiB".into());
    }
    let mut out = Vec::with_capacity(MIB);
    let mut p = 0usize;
    loop {
        let t = u32_at(b, p)?;
        p += 4;
        match t {
            0xFFFF_FFFF => break,
            0xFFFF_FFFE => {
                let pat = b.get(p..p + 8).ok_or("fill truncated")?;
                for _ in 0..512 {
                    out.extend_from_slice(pat);
                }
                p += 8;
                seen.fill_one += 1;
            }
            0xFFFF_FFFD => {
                let pat = b.get(p..p + 8).ok_or("fill truncated")?.to_vec();
                let n = u32_at(b, p + 8)? as usize;
                if n == 0 {
                    return Err("fill count 0".into());
                }
                for _ in 0..512 * n {
                    out.extend_from_slice(&pat);
                }
                p += 12;
                seen.fill_run += 1;
            }
            0xFFFF_FFFC => {
                let out_len = u32_at(b, p)? as usize;
                let in_len = u32_at(b, p + 4)? as usize;
                p += 8;
                if out_len == 0 || out_len % 4096 != 0 || in_len > out_len {
                    return Err("bad multi-page token".into());
                }
                let payload = b.get(p..p + in_len).ok_or("multi payload truncated")?;
                if in_len == out_len {
                    out.extend_from_slice(payload);
                    seen.multi_stored += 1;
                } else {
                    out.extend_from_slice(&lz77(payload, out_len)?);
                    seen.multi_compressed += 1;
                }
                p += in_len;
            }
            4096 => {
                out.extend_from_slice(b.get(p..p + 4096).ok_or("raw truncated")?);
                p += 4096;
                seen.raw += 1;
            }
            1..=4095 => {
                let n = t as usize;
                let payload = b.get(p..p + n).ok_or("compressed truncated")?;
                out.extend_from_slice(&lz77(payload, 4096)?);
                p += n;
                seen.compressed += 1;
            }
            _ => return Err(format!("invalid token {t:#x}")),
        }
        if out.len() > MIB {
            return Err("block longer than 1 MiB".into());
        }
    }
    if out.len() != MIB {
        return Err(format!("block decodes to {} bytes", out.len()));
    }
    if p != b.len() {
        return Err("bytes after the end token".into());
    }
    Ok(out)
}

/// Registers of one (VP, VTL) as parsed from partition_state.
#[derive(Debug, Default, Clone)]
pub struct RegSet {
    pub gp: Vec<u64>,
    pub control: Vec<u64>,
    pub debug: Vec<u64>,
    pub segments: Vec<u8>,
    pub tables: Vec<u8>,
    pub fp: Vec<u8>,
    pub vmsr: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct Partition {
    pub header_size: u64,
    pub total_size: u64,
    pub chunk_count: usize,
    pub vendor: u32,
    pub prolog_tag: [u8; 4],
    pub boot_vp: u32,
    pub vp_bitmap: u64,
    pub vp_count_item: Option<u32>,
    pub regs: BTreeMap<(u32, u8), RegSet>,
    pub vp_order: Vec<u32>,
    pub ids: Vec<u32>,
}

fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn parse_partition(v: &[u8]) -> Result<Partition, String> {
    if v.len() < 24 || u64_at(v, 0)? != 24 {
        return Err("descriptor".into());
    }
    let hs = u64_at(v, 8)?;
    let total = u64_at(v, 16)?;
    if hs < 24 || hs + 16 > total || total > v.len() as u64 {
        return Err("envelope sizes".into());
    }
    let mut p = Partition {
        header_size: hs,
        total_size: total,
        ..Default::default()
    };
    // Items.
    let mut at = 24usize;
    while at < hs as usize + 16 && &v[at..at + 4] == b"METI" {
        let tag = &v[at + 4..at + 8];
        let ds = u32_at(v, at + 12)? as usize;
        if tag == b"tCpV" {
            p.vp_count_item = Some(u32_at(v, at + 16)?);
        }
        if at == hs as usize && ds as u64 != total - hs - 16 {
            return Err("HvSt item size".into());
        }
        if at == hs as usize {
            break;
        }
        at += 16 + ds;
    }
    let mut pos = hs as usize + 16;
    let mut vp: Option<u32> = None;
    let mut vtl = 0u8;
    let mut saw_epilog = false;
    while pos < total as usize {
        let id = u32_at(v, pos)?;
        let len = u32_at(v, pos + 4)? as usize;
        let body = v
            .get(pos + 16..pos + 16 + len)
            .ok_or("chunk beyond total_size")?;
        if pos + 16 + len > total as usize {
            return Err("chunk beyond total_size".into());
        }
        p.chunk_count += 1;
        p.ids.push(id);
        match id {
            0 => {
                p.prolog_tag = body[..4].try_into().unwrap();
                p.vendor = u32_at(body, 8)?;
            }
            0xF000_0000 => {
                saw_epilog = true;
                if pos + 16 != total as usize {
                    return Err("EPILOG not at the end".into());
                }
            }
            0x3000_0000 => {
                p.boot_vp = u32_at(body, 0)?;
                p.vp_bitmap = u64_at(body, 4)?;
            }
            0x3000_1000 => {
                let i = u32_at(body, 0)?;
                if p.vp_order.contains(&i) {
                    return Err("duplicate VP".into());
                }
                p.vp_order.push(i);
                vp = Some(i);
                vtl = 0;
            }
            0x3001_A000 => vtl = body[0],
            0x3000_5000 | 0x3000_6000 | 0x3000_7000 | 0x3000_8000 | 0x3000_9000 | 0x3000_A000
            | 0x3000_B000 => {
                let cur = vp.ok_or("register chunk before any VP chunk")?;
                let r = p.regs.entry((cur, vtl)).or_default();
                match id {
                    0x3000_5000 => r.gp = u64s(body),
                    0x3000_6000 => r.fp = body.to_vec(),
                    0x3000_7000 => r.control = u64s(body),
                    0x3000_8000 => r.debug = u64s(body),
                    0x3000_9000 => r.segments = body.to_vec(),
                    0x3000_A000 => r.tables = body.to_vec(),
                    _ => r.vmsr = u64s(body),
                }
            }
            _ => {}
        }
        pos += 16 + len;
    }
    if !saw_epilog {
        return Err("no EPILOG".into());
    }
    if v[total as usize..].iter().any(|&b| b != 0) {
        return Err("non-zero bytes after total_size".into());
    }
    Ok(p)
}

/// Compare a parsed register set against the model.
pub fn assert_regs(r: &RegSet, s: &vm2dmp_synth::VpState) {
    assert_eq!(r.gp, s.gp.to_array().to_vec());
    let c = &s.control;
    assert_eq!(r.control, vec![c.cr0, c.cr2, c.cr3, c.cr4, c.cr8, c.efer]);
    let d = &s.debug;
    assert_eq!(r.debug, vec![d.dr0, d.dr1, d.dr2, d.dr3, d.dr6, d.dr7]);
    assert_eq!(r.vmsr, s.virtual_msrs.to_vec());
    let g = &s.segments;
    for (i, seg) in [g.es, g.cs, g.ss, g.ds, g.fs, g.gs, g.ldtr, g.tr]
        .iter()
        .enumerate()
    {
        let b = &r.segments[i * 16..i * 16 + 16];
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), seg.base);
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), seg.limit);
        assert_eq!(
            u16::from_le_bytes(b[12..14].try_into().unwrap()),
            seg.selector
        );
        assert_eq!(
            u16::from_le_bytes(b[14..16].try_into().unwrap()),
            seg.attributes
        );
    }
    assert_eq!(r.segments[128], g.cpl);
    for (i, t) in [s.tables.idtr, s.tables.gdtr].iter().enumerate() {
        let b = &r.tables[i * 16..i * 16 + 16];
        assert_eq!(&b[..6], &[0; 6]);
        assert_eq!(u16::from_le_bytes(b[6..8].try_into().unwrap()), t.limit);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), t.base);
    }
    assert_eq!(r.fp.len(), 0x1A0);
    for (i, x) in s.fp.xmm.iter().enumerate() {
        assert_eq!(
            u128::from_le_bytes(r.fp[i * 16..i * 16 + 16].try_into().unwrap()),
            *x
        );
    }
    assert_eq!(
        u16::from_le_bytes(r.fp[384..386].try_into().unwrap()),
        s.fp.fcw
    );
    assert_eq!(
        u32::from_le_bytes(r.fp[408..412].try_into().unwrap()),
        s.fp.mxcsr
    );
    assert_eq!(
        u32::from_le_bytes(r.fp[412..416].try_into().unwrap()),
        s.fp.mxcsr_mask
    );
}

/// Expected raw saved memory of `block` for `vm`, computed from the ranges: each range
/// starts on a fresh block; padding pages are zero.
pub fn expected_block(vm: &vm2dmp_synth::SynthVm, block: u64) -> Vec<u8> {
    let mut b = vec![0u8; 1 << 20];
    let mut first = 0u64;
    for r in &vm.ranges {
        let blocks = r.page_count.div_ceil(256);
        if block >= first && block < first + blocks {
            for i in 0..256u64 {
                let pr = (block - first) * 256 + i;
                if pr < r.page_count {
                    let dst: &mut [u8; 4096] = (&mut b[i as usize * 4096..(i as usize + 1) * 4096])
                        .try_into()
                        .unwrap();
                    vm.pages.read_page(r.gpa_page_start + pr, dst);
                }
            }
            return b;
        }
        first += blocks;
    }
    panic!("block {block} outside the ranges")
}

pub fn sample_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}
