//! Finding `KdDebuggerDataBlock` without symbols (a plain block in the kernel's data
//! sections, `KPCR.KdVersionBlock` on x86, or an encoded block decoded with keys recovered from
//! the kernel's code), and checking the one symbols name.

use super::kdbg::{self, Kdbg, KdbgKeys};
use super::kpcr::kpcr_of;
use super::pe::{PeImage, Vm};
use vm2dmp_source::le;
use vm2dmp_source::CpuState;

/// Largest section read whole for the KDBG searches.
const MAX_SECTION_READ: u32 = 32 << 20;
/// Bytes of sections read in all by one search.
const MAX_TOTAL_READ: usize = 64 << 20;

/// Every page of the image's non-executable sections (the KDBG lives in `.data`), read
/// whole; unmapped pages read as zero. `(va, bytes)` per section.
fn data_sections(vm: &Vm<'_>, img: &PeImage) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for s in img
        .sections
        .iter()
        .filter(|s| !s.executable() && s.writable())
    {
        let len = s.size.min(MAX_SECTION_READ) as usize & !7;
        let va = img.va(s.rva);
        out.push((va, read_sparse(vm, va, len)));
    }
    out
}

fn read_sparse(vm: &Vm<'_>, va: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut at = 0usize;
    while at < len {
        let n = (4096 - (va.wrapping_add(at as u64) & 0xFFF) as usize).min(len - at);
        let _ = vm.read(va.wrapping_add(at as u64), &mut buf[at..at + n]);
        at += n;
    }
    buf
}

/// Reads and checks a block whose plain header is at `va`.
fn read_plain_kdbg(vm: &Vm<'_>, img: &PeImage, va: u64) -> Option<Kdbg> {
    let mut h = [0u8; 0x20];
    if !vm.read(va, &mut h) {
        return None;
    }
    let size = kdbg::header_ok(&h)?;
    let mut bytes = vec![0u8; size as usize];
    if !vm.read(va, &mut bytes) {
        return None;
    }
    let k = Kdbg {
        bytes,
        x86: !img.pe64,
    };
    (k.kern_base() == Some(img.base)).then_some(k)
}

/// Reads and decodes an encoded block at `va`.
fn read_encoded_kdbg(vm: &Vm<'_>, img: &PeImage, va: u64, keys: &KdbgKeys) -> Option<Kdbg> {
    let mut h = [0u8; 0x20];
    if !vm.read(va, &mut h) {
        return None;
    }
    keys.decode_block(&mut h);
    let size = kdbg::header_ok(&h)?;
    let mut bytes = vec![0u8; size as usize];
    if !vm.read(va, &mut bytes) {
        return None;
    }
    keys.decode_block(&mut bytes);
    let k = Kdbg { bytes, x86: false };
    (k.kern_base() == Some(img.base)).then_some(k)
}

pub(crate) fn kdbg_with_symbols(
    vm: &Vm<'_>,
    img: &PeImage,
    va: u64,
    sym: &dyn Fn(&str) -> Option<u64>,
) -> Result<(Kdbg, Option<KdbgKeys>), String> {
    if let Some(k) = read_plain_kdbg(vm, img, va) {
        return Ok((k, None));
    }
    let (Some(flag), Some(n), Some(w)) = (
        sym("KdpDataBlockEncoded"),
        sym("KiWaitNever"),
        sym("KiWaitAlways"),
    ) else {
        return Err("no plain KDBG there and the PDB lacks KdpDataBlockEncoded / KiWaitNever / KiWaitAlways".into());
    };
    let keys = KdbgKeys {
        ki_wait_never: vm.u64(n).ok_or("KiWaitNever cannot be read")?,
        ki_wait_always: vm.u64(w).ok_or("KiWaitAlways cannot be read")?,
        kdp_data_block_encoded: flag,
    };
    read_encoded_kdbg(vm, img, va, &keys)
        .map(|k| (k, Some(keys)))
        .ok_or_else(|| "the block does not decode to a KDBG header with these keys".into())
}

type KdbgHit = (u64, Kdbg, Option<KdbgKeys>, String);

/// The KDBG without symbols: KPCR.KdVersionBlock (x86), a plain block in the data sections,
/// or an encoded one decoded with keys recovered from the kernel's code.
pub(crate) fn find_kdbg(
    vm: &Vm<'_>,
    img: &PeImage,
    vps: &[&CpuState],
    notes: &mut Vec<String>,
) -> Option<KdbgHit> {
    // x86: KPCR.KdVersionBlock -> DebuggerDataList -> first entry.
    if !img.pe64 {
        for vp in vps {
            let Some((kpcr, _, kvb)) = kpcr_of(vm, vp) else {
                continue;
            };
            if kvb == 0 {
                continue;
            }
            let list = vm
                .u64(kvb.wrapping_add(0x20))
                .map(|v| v & 0xFFFF_FFFF)
                .unwrap_or(0);
            let first = if list != 0 {
                vm.ptr(list).unwrap_or(0)
            } else {
                0
            };
            if let Some(k) = (first != 0)
                .then(|| read_plain_kdbg(vm, img, first))
                .flatten()
            {
                return Some((
                    first,
                    k,
                    None,
                    format!(
                        "KPCR {kpcr:#x} of VP {} -> KdVersionBlock -> DebuggerDataList",
                        vp.index
                    ),
                ));
            }
        }
    }
    let data = data_sections(vm, img);
    // Plain block: tag at +0x10, plausible size, KernBase = image base.
    for (va, bytes) in &data {
        for off in (0..bytes.len().saturating_sub(0x20)).step_by(8) {
            if bytes[off + 0x10..off + 0x14] != kdbg::OWNER_TAG.to_le_bytes() {
                continue;
            }
            if let Some(k) = read_plain_kdbg(vm, img, va.wrapping_add(off as u64)) {
                return Some((
                    va.wrapping_add(off as u64),
                    k,
                    None,
                    "scan of the kernel's data sections for a plain KDBG block".into(),
                ));
            }
        }
    }
    if !img.pe64 {
        return None;
    }
    if let Some(hit) = find_with_kdcopy(vm, img) {
        return Some(hit);
    }
    notes.push("no KdCopyDataBlock-shaped code (cmp byte [KdpDataBlockEncoded],0 followed by loads of the two keys) was recognised".into());
    let pairs = timer_key_candidates(vm, img);
    if pairs.is_empty() {
        notes.push("no KiWaitNever / KiWaitAlways loads found in KeSetTimer / KeSetTimerEx".into());
        return None;
    }
    for (n_addr, w_addr) in pairs {
        let (Some(n), Some(w)) = (vm.u64(n_addr), vm.u64(w_addr)) else {
            continue;
        };
        if let Some(hit) = solve_encoded(vm, img, &data, n, w) {
            return Some(hit);
        }
    }
    notes.push("keys from KeSetTimer code did not decode any block in the data sections".into());
    None
}

fn in_data(img: &PeImage, va: u64) -> bool {
    img.section_of(va).is_some_and(|s| !s.executable())
}

/// RIP-relative `mov r64, [rip+d32]` (loads) and `lea r64, [rip+d32]` in `code` at `va`.
fn rip_refs(code: &[u8], va: u64) -> (Vec<u64>, Vec<u64>) {
    let mut loads = Vec::new();
    let mut leas = Vec::new();
    let mut i = 0;
    while i + 7 <= code.len() {
        let (rex, op, modrm) = (code[i], code[i + 1], code[i + 2]);
        if (rex & 0xF8) == 0x48 && (op == 0x8B || op == 0x8D) && modrm & 0xC7 == 0x05 {
            let d = i32::from_le_bytes([code[i + 3], code[i + 4], code[i + 5], code[i + 6]]);
            let target = va.wrapping_add(i as u64 + 7).wrapping_add(d as i64 as u64);
            if op == 0x8B {
                loads.push(target)
            } else {
                leas.push(target)
            }
            i += 7;
            continue;
        }
        i += 1;
    }
    (loads, leas)
}

/// `KdCopyDataBlock`: `cmp byte [rip+d], 0` on `KdpDataBlockEncoded` (non-zero), then loads of
/// `KiWaitNever` / `KiWaitAlways` and a `lea` of `KdDebuggerDataBlock` within 0x80 bytes.
fn find_with_kdcopy(vm: &Vm<'_>, img: &PeImage) -> Option<KdbgHit> {
    let mut total = 0usize;
    for s in img.sections.iter().filter(|s| s.executable()) {
        let len = (s.size.min(MAX_SECTION_READ) as usize).min(MAX_TOTAL_READ - total);
        total += len;
        let va = img.va(s.rva);
        let code = read_sparse(vm, va, len);
        let mut i = 0;
        while i + 7 <= code.len() {
            if code[i] != 0x80 || code[i + 1] != 0x3D || code[i + 6] != 0 {
                i += 1;
                continue;
            }
            let d = i32::from_le_bytes([code[i + 2], code[i + 3], code[i + 4], code[i + 5]]);
            let flag = va.wrapping_add(i as u64 + 7).wrapping_add(d as i64 as u64);
            i += 1;
            if !in_data(img, flag) || vm.u8(flag).unwrap_or(0) == 0 {
                continue;
            }
            let from = i + 6;
            let window = &code[from..(from + 0x80).min(code.len())];
            let (loads, leas) = rip_refs(window, va.wrapping_add(from as u64));
            let loads: Vec<u64> = loads
                .into_iter()
                .filter(|&a| in_data(img, a) && a != flag)
                .take(4)
                .collect();
            for &n_addr in &loads {
                for &w_addr in &loads {
                    if n_addr == w_addr {
                        continue;
                    }
                    let (Some(n), Some(w)) = (vm.u64(n_addr), vm.u64(w_addr)) else {
                        continue;
                    };
                    let keys = KdbgKeys {
                        ki_wait_never: n,
                        ki_wait_always: w,
                        kdp_data_block_encoded: flag,
                    };
                    for &l in leas.iter().filter(|&&l| l != flag && in_data(img, l)) {
                        if let Some(k) = read_encoded_kdbg(vm, img, l, &keys) {
                            return Some((
                                l,
                                k,
                                Some(keys),
                                format!(
                                    "encoded KDBG decoded with keys read by KdCopyDataBlock-shaped code at {:#x} (KdpDataBlockEncoded {flag:#x}, KiWaitNever {n_addr:#x}, KiWaitAlways {w_addr:#x})",
                                    va.wrapping_add(i as u64 - 1)
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    None
}

/// Ordered pairs of RIP-relative qword loads from `KeSetTimer` / `KeSetTimerEx` (and the
/// first function each jumps or calls into): candidates for (`KiWaitNever`, `KiWaitAlways`).
fn timer_key_candidates(vm: &Vm<'_>, img: &PeImage) -> Vec<(u64, u64)> {
    let mut loads: Vec<u64> = Vec::new();
    for name in ["KeSetTimerEx", "KeSetTimer", "KeSetCoalescableTimer"] {
        let Some(f) = img.export(vm, name) else {
            continue;
        };
        let mut todo = vec![f];
        let mut depth = 0;
        while let Some(f) = todo.pop() {
            let mut code = vec![0u8; 0x300];
            if !vm.read(f, &mut code) {
                continue;
            }
            let (l, _) = rip_refs(&code, f);
            for a in l {
                if in_data(img, a) && !loads.contains(&a) {
                    loads.push(a);
                }
            }
            if depth == 0 {
                // Direct jmp/call rel32 targets inside the image.
                for i in 0..code.len().saturating_sub(5) {
                    if code[i] == 0xE9 || code[i] == 0xE8 {
                        let d = i32::from_le_bytes([
                            code[i + 1],
                            code[i + 2],
                            code[i + 3],
                            code[i + 4],
                        ]);
                        let t = f.wrapping_add(i as u64 + 5).wrapping_add(d as i64 as u64);
                        if img.section_of(t).is_some_and(|s| s.executable()) && todo.len() < 4 {
                            todo.push(t);
                        }
                    }
                }
            }
            depth += 1;
        }
    }
    loads.truncate(8);
    let mut pairs = Vec::new();
    for &a in &loads {
        for &b in &loads {
            if a != b {
                pairs.push((a, b));
            }
        }
    }
    pairs
}

/// Finds an encoded block in the data sections given `KiWaitNever` and `KiWaitAlways`: the
/// known `KernBase` at +0x18 gives the one `&KdpDataBlockEncoded` that fits each position,
/// which must then decode the tag at +0x10 and point at a non-zero flag in the data sections.
fn solve_encoded(
    vm: &Vm<'_>,
    img: &PeImage,
    data: &[(u64, Vec<u8>)],
    n: u64,
    w: u64,
) -> Option<KdbgHit> {
    for (va, bytes) in data {
        for off in (0..bytes.len().saturating_sub(0x20)).step_by(8) {
            let (Some(q10), Some(q18)) = (le::u64(bytes, off + 0x10), le::u64(bytes, off + 0x18))
            else {
                continue;
            };
            let flag = KdbgKeys::solve_address(n, w, q18, img.base);
            let keys = KdbgKeys {
                ki_wait_never: n,
                ki_wait_always: w,
                kdp_data_block_encoded: flag,
            };
            let tag = keys.decode(q10);
            if tag as u32 != kdbg::OWNER_TAG || !in_data(img, flag) || vm.u8(flag).unwrap_or(0) == 0
            {
                continue;
            }
            let at = va.wrapping_add(off as u64);
            if let Some(k) = read_encoded_kdbg(vm, img, at, &keys) {
                return Some((
                    at,
                    k,
                    Some(keys),
                    "encoded KDBG found with KiWaitNever / KiWaitAlways loaded by KeSetTimer code; KdpDataBlockEncoded solved from the known KernBase".into(),
                ));
            }
        }
    }
    None
}
