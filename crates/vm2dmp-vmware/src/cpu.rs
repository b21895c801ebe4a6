//! The `cpu` group: processor registers, each tag's first index being the vCPU number.
//!
//! Tags read, and where each is described publicly:
//!
//! | tag | value | source |
//! |---|---|---|
//! | `cpu:numVCPUs` | number of vCPUs | crash `vmware_vmss.c`, Volatility 2 `vmwareinfo` docs |
//! | `rax` .. `r15`, `rip` `[cpu]` | 64-bit registers | crash, illumos mdb `vmss` module |
//! | `gpregs[cpu]` | 128-byte block: rax, rcx, rdx, rbx, rbp, rsp, rsi, rdi, r8..r15 | crash (`vmssregs64`) |
//! | `eflags` / `EFLAGS` `[cpu]` | 32-bit flags | crash, Volatility 2 docs |
//! | `eip[cpu]` | 32-bit instruction pointer | Volatility 2 docs |
//! | `CR64[cpu][n]` | CRn, 64-bit | crash (n 0..4), mdb, Volatility 2 |
//! | `CR64[cpu]` | 72-byte block: CR0..CR8 | crash |
//! | `CR[cpu][n]` | CRn, 32-bit | Volatility 2 (x86 guests), its docs |
//! | `DR64[cpu][n]` / `DR[cpu][n]` | DRn, 64/32-bit | mdb, Volatility 2 docs |
//! | `GDTR` / `IDTR` `[cpu][0..3]` | limit (16-bit), base low and high halves (32-bit) | Volatility 2 docs, crash (IDTR) |
//! | `IDTR[cpu]` | 10-byte block: limit `u16`, base `u64` | crash |
//! | `S[cpu][seg]` | segment selector | crash (ES, CS, SS, DS, FS, GS, LDTR, TR) |
//! | `S.base64[cpu][seg]` | segment base | crash |
//!
//! Segment limits and attributes, EFER and the MSRs (KernelGSBase...) have no publicly
//! described tag: they are left 0 and [`MachineInfo::notes`](vm2dmp_source::MachineInfo)
//! says so. When EFER is unknown, long mode is inferred from paging with PAE and a 64-bit
//! address in RIP, RSP, GDTR or IDTR.

use vm2dmp_source::{le, CpuState, DescriptorTable, FileCtx, InputFile, Result, SegmentRegister};

use crate::format::Tag;

/// Most vCPUs accepted.
pub const MAX_VCPUS: u64 = 4096;

/// Names of the tags read as registers.
const REGISTER_TAGS: [&str; 29] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip", "eip", "eflags", "EFLAGS", "gpregs", "CR64", "CR", "DR64", "DR", "GDTR",
    "IDTR", "S", "S.base64",
];

const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// The registers of every vCPU, and notes on what had to be inferred or left out.
pub fn read_vcpus(
    ctx: &FileCtx,
    file: &InputFile,
    tags: &[Tag],
) -> Result<(Vec<CpuState>, Vec<String>)> {
    let mut notes = Vec::new();
    let count = match tags
        .iter()
        .find(|t| t.name == "cpu:numVCPUs" && t.index_count == 0)
    {
        Some(t) => {
            let n = t.value().ok_or_else(|| {
                ctx.corrupt("cpu:numVCPUs tag", t.offset, "not a 1- to 8-byte number")
            })?;
            if n > MAX_VCPUS {
                return Err(ctx.corrupt(
                    "cpu:numVCPUs tag",
                    t.offset,
                    format!("{n} vCPUs, more than the {MAX_VCPUS} this reader accepts"),
                ));
            }
            n
        }
        None => {
            let n = tags
                .iter()
                .filter(|t| REGISTER_TAGS.contains(&t.name.as_str()))
                .filter_map(|t| t.index(0))
                .map(|i| u64::from(i) + 1)
                .filter(|&n| n <= MAX_VCPUS)
                .max()
                .unwrap_or(0);
            if n > 0 {
                notes.push(format!(
                    "no cpu:numVCPUs tag: {n} vCPUs counted from the register tags"
                ));
            }
            n
        }
    };
    let mut cpus: Vec<CpuState> = (0..count as u32)
        .map(|index| CpuState {
            index,
            ..CpuState::default()
        })
        .collect();
    let mut gpregs_used = false;
    // Blocks first, then 32-bit views, then 64-bit tags: the wider, more specific value wins.
    for pass in 0..3 {
        for t in tags {
            let Some(cpu) = t.index(0).and_then(|i| cpus.get_mut(i as usize)) else {
                continue;
            };
            let sub = t.index(1);
            match (pass, t.long) {
                (0, true) if !t.compressed => {
                    gpregs_used |= apply_block(file, t, cpu)?;
                }
                (1, false) => apply_narrow(t, sub, cpu),
                (2, false) => apply_wide(t, sub, cpu),
                _ => {}
            }
        }
    }
    let mut inferred = Vec::new();
    for cpu in cpus.iter_mut() {
        cpu.cpl = (cpu.cs.selector & 3) as u8;
        if cpu.cr0 & (1 << 31) != 0 && cpu.cr4 & (1 << 5) != 0 {
            let wide = [cpu.rip, cpu.rsp, cpu.gdtr.base, cpu.idtr.base]
                .iter()
                .any(|&v| v > u64::from(u32::MAX));
            if wide {
                cpu.efer = EFER_LME | EFER_LMA;
                inferred.push(cpu.index.to_string());
            }
        }
    }
    if !cpus.is_empty() {
        notes.push(
            "segment limits and attributes, EFER and MSRs (KernelGSBase...) have no publicly documented VMware tag: left 0".into(),
        );
    }
    if !inferred.is_empty() {
        notes.push(format!(
            "EFER not saved: long mode (LME, LMA) inferred from paging with PAE and 64-bit addresses for vCPU {}",
            inferred.join(", ")
        ));
    }
    if gpregs_used {
        notes.push(
            "general registers read from gpregs blocks in crash's order (rax, rcx, rdx, rbx, rbp, rsp, ...) where no single-register tag overrides them".into(),
        );
    }
    Ok((cpus, notes))
}

fn set_gp(cpu: &mut CpuState, name: &str, v: u64) -> bool {
    let r = match name {
        "rax" => &mut cpu.rax,
        "rcx" => &mut cpu.rcx,
        "rdx" => &mut cpu.rdx,
        "rbx" => &mut cpu.rbx,
        "rsp" => &mut cpu.rsp,
        "rbp" => &mut cpu.rbp,
        "rsi" => &mut cpu.rsi,
        "rdi" => &mut cpu.rdi,
        "r8" => &mut cpu.r8,
        "r9" => &mut cpu.r9,
        "r10" => &mut cpu.r10,
        "r11" => &mut cpu.r11,
        "r12" => &mut cpu.r12,
        "r13" => &mut cpu.r13,
        "r14" => &mut cpu.r14,
        "r15" => &mut cpu.r15,
        "rip" => &mut cpu.rip,
        _ => return false,
    };
    *r = v;
    cpu.has_gp = true;
    true
}

fn set_cr(cpu: &mut CpuState, n: u32, v: u64) {
    let r = match n {
        0 => &mut cpu.cr0,
        2 => &mut cpu.cr2,
        3 => &mut cpu.cr3,
        4 => &mut cpu.cr4,
        8 => &mut cpu.cr8,
        _ => return,
    };
    *r = v;
    cpu.has_control = true;
}

fn set_dr(cpu: &mut CpuState, n: u32, v: u64) {
    let r = match n {
        0 => &mut cpu.dr0,
        1 => &mut cpu.dr1,
        2 => &mut cpu.dr2,
        3 => &mut cpu.dr3,
        6 => &mut cpu.dr6,
        7 => &mut cpu.dr7,
        _ => return,
    };
    *r = v;
}

fn segment(cpu: &mut CpuState, n: u32) -> Option<&mut SegmentRegister> {
    Some(match n {
        0 => &mut cpu.es,
        1 => &mut cpu.cs,
        2 => &mut cpu.ss,
        3 => &mut cpu.ds,
        4 => &mut cpu.fs,
        5 => &mut cpu.gs,
        6 => &mut cpu.ldtr,
        7 => &mut cpu.tr,
        _ => return None,
    })
}

fn table<'a>(cpu: &'a mut CpuState, name: &str) -> Option<&'a mut DescriptorTable> {
    match name {
        "GDTR" => Some(&mut cpu.gdtr),
        "IDTR" => Some(&mut cpu.idtr),
        _ => None,
    }
}

/// Long-data register blocks (`gpregs`, `CR64`, `IDTR`, `GDTR`); true when a `gpregs` block
/// was used.
fn apply_block(file: &InputFile, t: &Tag, cpu: &mut CpuState) -> Result<bool> {
    let expected = match t.name.as_str() {
        "gpregs" => 128,
        "CR64" => 72,
        "IDTR" | "GDTR" => 10,
        _ => return Ok(false),
    };
    if t.data_len != expected || t.index_count != 1 {
        return Ok(false);
    }
    let data = file.bytes(t.data_offset, t.data_len, "register block")?;
    match t.name.as_str() {
        "gpregs" => {
            const ORDER: [&str; 16] = [
                "rax", "rcx", "rdx", "rbx", "rbp", "rsp", "rsi", "rdi", "r8", "r9", "r10", "r11",
                "r12", "r13", "r14", "r15",
            ];
            for (i, name) in ORDER.iter().enumerate() {
                if let Some(v) = le::u64(&data, i * 8) {
                    set_gp(cpu, name, v);
                }
            }
            return Ok(true);
        }
        "CR64" => {
            for n in 0..9u32 {
                if let Some(v) = le::u64(&data, n as usize * 8) {
                    set_cr(cpu, n, v);
                }
            }
        }
        name => {
            if let (Some(limit), Some(base), Some(dt)) =
                (le::u16(&data, 0), le::u64(&data, 2), table(cpu, name))
            {
                *dt = DescriptorTable { limit, base };
            }
        }
    }
    Ok(false)
}

/// 32-bit views and the table halves: overridden by 64-bit tags read later.
fn apply_narrow(t: &Tag, sub: Option<u32>, cpu: &mut CpuState) {
    let Some(v) = t.value() else { return };
    let low32 = v & 0xFFFF_FFFF;
    match (t.name.as_str(), sub) {
        ("eflags" | "EFLAGS", None) => {
            cpu.rflags = low32;
            cpu.has_gp = true;
        }
        ("eip", None) => {
            cpu.rip = low32;
            cpu.has_gp = true;
        }
        ("CR", Some(n)) => set_cr(cpu, n, low32),
        ("DR", Some(n)) => set_dr(cpu, n, low32),
        (name @ ("GDTR" | "IDTR"), Some(part)) => {
            if let Some(dt) = table(cpu, name) {
                match part {
                    0 => dt.limit = v as u16,
                    1 => dt.base = (dt.base & !0xFFFF_FFFF) | low32,
                    2 => dt.base = (dt.base & 0xFFFF_FFFF) | (low32 << 32),
                    _ => {}
                }
            }
        }
        ("S", Some(n)) => {
            if let Some(s) = segment(cpu, n) {
                s.selector = v as u16;
                cpu.has_segments = true;
            }
        }
        _ => {}
    }
}

/// 64-bit registers.
fn apply_wide(t: &Tag, sub: Option<u32>, cpu: &mut CpuState) {
    let Some(v) = t.value() else { return };
    match (t.name.as_str(), sub) {
        (name, None) => {
            set_gp(cpu, name, v);
        }
        ("CR64", Some(n)) => set_cr(cpu, n, v),
        ("DR64", Some(n)) => set_dr(cpu, n, v),
        ("S.base64", Some(n)) => {
            if let Some(s) = segment(cpu, n) {
                s.base = v;
            }
        }
        _ => {}
    }
}
