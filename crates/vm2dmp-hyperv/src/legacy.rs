//! Reader of the legacy container of `.vsv` / `.bin` files (signature 0x02182003).
//! Layout: docs/hyperv-saved-state.md section 4.

use std::collections::HashMap;

use vm2dmp_formats::legacy::{slot_type, Header, Slot, SIGNATURE, VERSION_5_0};

use crate::value::{Value, ValueType};
use vm2dmp_source::InputFile;
use vm2dmp_source::Result;

/// A parsed legacy file: name -> value location.
#[derive(Debug)]
pub(crate) struct LegacyFile {
    pub header: Header,
    values: HashMap<String, Value>,
}

impl LegacyFile {
    pub fn parse(file: &InputFile) -> Result<Self> {
        let ctx = &file.ctx;
        let len = file.len();
        if len < 4096 {
            return Err(ctx.corrupt(
                "legacy container header",
                0,
                format!("file is {len} bytes, shorter than its 4096-byte header"),
            ));
        }
        let hb = file.bytes(0, Header::SIZE as u64, "legacy container header")?;
        let h = Header::parse(&hb)
            .ok_or_else(|| ctx.corrupt("legacy container header", 0, "truncated"))?;
        if h.signature != SIGNATURE {
            return Err(ctx.corrupt(
                "legacy container header",
                0,
                format!("bad signature {:#010x}", h.signature),
            ));
        }
        if h.version != VERSION_5_0 {
            return Err(ctx.unsupported(format!(
                "legacy container version {:#x} (only 0x500 is read)",
                h.version
            )));
        }
        let index_len = u64::from(h.index_capacity) * Slot::SIZE as u64;
        let index_end = h.index_offset.checked_add(index_len);
        let strings_end = h.strings_offset.checked_add(u64::from(h.strings_allocated));
        if h.index_offset < 4096
            || index_end.is_none_or(|e| e > len)
            || h.strings_offset < 4096
            || strings_end.is_none_or(|e| e > len)
            || h.strings_used > h.strings_allocated
        {
            return Err(ctx.corrupt(
                "legacy container header",
                0,
                format!(
                    "index ({} slots at {:#x}) or string table ({:#x} of {:#x} bytes at {:#x}) outside the file",
                    h.index_capacity, h.index_offset, h.strings_used, h.strings_allocated, h.strings_offset
                ),
            ));
        }
        let index = file.bytes(h.index_offset, index_len, "legacy index")?;
        let strings = file.bytes(
            h.strings_offset,
            u64::from(h.strings_used),
            "legacy string table",
        )?;
        // Names and stored values each occupy their own bytes (the writer packs them back to
        // back): overlapping ones would let a small file stand for any amount of data.
        let mut name_ranges: Vec<(u64, u64, u64)> = Vec::new();
        let mut value_ranges: Vec<(u64, u64, u64)> = vec![
            (h.index_offset, index_len, h.index_offset),
            (
                h.strings_offset,
                u64::from(h.strings_allocated),
                h.strings_offset,
            ),
        ];
        for (i, sb) in index.chunks_exact(Slot::SIZE).enumerate() {
            let at = h.index_offset + (i * Slot::SIZE) as u64;
            if let Some(s) = Slot::parse(sb).filter(|s| !s.is_unused()) {
                name_ranges.push((u64::from(s.name_offset), u64::from(s.name_size), at));
                if !s.is_inline() {
                    value_ranges.push((s.offset_or_inline, u64::from(s.allocated), at));
                }
            }
        }
        for (ranges, what) in [(&mut name_ranges, "names"), (&mut value_ranges, "values")] {
            ranges.sort_unstable();
            for w in ranges.windows(2) {
                if w[0].0.saturating_add(w[0].1) > w[1].0 {
                    return Err(ctx.corrupt(
                        "legacy index slot",
                        w[1].2,
                        format!(
                            "{what} overlap: {:#x}+{:#x} and {:#x}+{:#x}",
                            w[0].0, w[0].1, w[1].0, w[1].1
                        ),
                    ));
                }
            }
        }
        let mut values = HashMap::new();
        for (i, sb) in index.chunks_exact(Slot::SIZE).enumerate() {
            let at = h.index_offset + (i * Slot::SIZE) as u64;
            let Some(s) = Slot::parse(sb) else { break };
            if s.is_unused() {
                continue;
            }
            let name_start = s.name_offset as usize;
            let name_end = name_start.checked_add(s.name_size as usize);
            let name_bytes = match name_end.and_then(|e| strings.get(name_start..e)) {
                Some(n) if !n.is_empty() && n[n.len() - 1] == 0 => &n[..n.len() - 1],
                _ => {
                    return Err(ctx.corrupt(
                        "legacy index slot",
                        at,
                        "name outside the string table or not NUL-terminated",
                    ))
                }
            };
            let name = std::str::from_utf8(name_bytes)
                .map_err(|_| ctx.corrupt("legacy index slot", at, "name is not UTF-8"))?;
            let ty = match s.slot_type {
                slot_type::BINARY => ValueType::Binary,
                slot_type::INTEGER => ValueType::Int,
                slot_type::BOOLEAN => ValueType::Bool,
                slot_type::STRING => ValueType::String,
                t => {
                    return Err(ctx.corrupt(
                        "legacy index slot",
                        at,
                        format!("unknown value type {t} for {name}"),
                    ))
                }
            };
            let value = if s.is_inline() {
                if s.size > 8 {
                    return Err(ctx.corrupt(
                        "legacy index slot",
                        at,
                        format!("inline value of {name} has {} bytes (at most 8)", s.size),
                    ));
                }
                Value::new(ty, at + 16, u64::from(s.size), at)
            } else {
                let end = s.offset_or_inline.checked_add(u64::from(s.allocated));
                if s.size > s.allocated || s.offset_or_inline < 4096 || end.is_none_or(|e| e > len)
                {
                    return Err(ctx.corrupt(
                        "legacy index slot",
                        at,
                        format!(
                            "value of {name} ({} of {} bytes at {:#x}) is outside the file",
                            s.size, s.allocated, s.offset_or_inline
                        ),
                    ));
                }
                Value::new(ty, s.offset_or_inline, u64::from(s.size), at)
            };
            if values.insert(name.to_owned(), value).is_some() {
                return Err(ctx.corrupt("legacy index slot", at, format!("duplicate name {name}")));
            }
        }
        Ok(Self { header: h, values })
    }

    pub fn value(&self, name: &str) -> Option<Value> {
        self.values.get(name).copied()
    }

    /// Every value with its name, sorted by name.
    pub fn keys(&self) -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> =
            self.values.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
