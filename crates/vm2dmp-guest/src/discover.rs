//! Kernel discovery: address space, kernel image, version, `KdDebuggerDataBlock` and what it
//! points to.

use std::path::Path;

use super::kdbg::{self, offsets as ko, Kdbg, KdbgKeys};
use super::pdb::Symbols;
use super::pe::{PeImage, Vm};
use super::translate::SourceMem;
use super::translate::{check_dtb, scan_for_dtbs, walk_mapped, CachedMem, Dtb, Paging};
use super::{Finding, KernelInfo, Method};
use vm2dmp_source::le;
use vm2dmp_source::{CpuState, MemorySource};

/// Export names of the Windows kernel (uniprocessor, multiprocessor, PAE variants).
pub(crate) const KERNEL_NAMES: [&str; 4] = [
    "ntoskrnl.exe",
    "ntkrnlmp.exe",
    "ntkrnlpa.exe",
    "ntkrpamp.exe",
];

/// How far below an interrupt handler the image headers may be.
const MAX_WALK_DOWN: u64 = 32 << 20;
/// Page-table entries and pages looked at by the kernel-space scan.
const SCAN_BUDGET: u64 = 1 << 19;
/// Largest section read whole for the KDBG searches.
const MAX_SECTION_READ: u32 = 32 << 20;
/// Bytes of sections read in all by one search.
const MAX_TOTAL_READ: usize = 64 << 20;
/// Entries of `KiProcessorBlock` read at most.
const MAX_PROCESSORS: u64 = 2048;

fn is_kernel_name(name: &str) -> bool {
    KERNEL_NAMES.iter().any(|k| k.eq_ignore_ascii_case(name))
}

fn is_kernel(img: &PeImage) -> bool {
    img.export_name.as_deref().is_some_and(is_kernel_name)
}

/// Finds the Windows kernel in `state`. `symbols` is an `ntkrnlmp.pdb` (or any kernel PDB)
/// or a symbol-store folder; when it matches the kernel's PDB GUID and age, its addresses
/// are used before any heuristic.
pub fn find_kernel(state: &dyn MemorySource, symbols: Option<&Path>) -> KernelInfo {
    let src = SourceMem(state);
    let mem = CachedMem::new(&src);
    let mut info = KernelInfo::empty();
    let Some(boot) = state.boot_vcpu() else {
        let why = "the input holds no processor state".to_string();
        info.notes.push(why.clone());
        set_all_not_found(&mut info, &why);
        return info;
    };
    let vps: Vec<&CpuState> = std::iter::once(boot)
        .chain(state.vcpus().iter().filter(|v| v.index != boot.index))
        .collect();
    let Some(paging) = vps.iter().find_map(|v| Paging::of_vcpu(v)) else {
        let why = format!(
            "no vCPU has paging enabled (VP {} is in {}): no operating system kernel is running",
            vps[0].index,
            vps[0].mode_description()
        );
        info.notes.push(why.clone());
        set_all_not_found(&mut info, &why);
        return info;
    };

    // Candidate address spaces: each vCPU's CR3 that maps kernel space, then a RAM scan.
    let walk_budget = std::cell::Cell::new(WALK_BUDGET_PAGES);
    let mut tried: Vec<Dtb> = Vec::new();
    let mut found = None;
    for vp in &vps {
        let Some(dtb) = Dtb::of_vcpu(vp) else {
            continue;
        };
        if dtb.paging != paging || tried.contains(&dtb) {
            continue;
        }
        tried.push(dtb);
        let c = check_dtb(&mem, dtb);
        if !c.valid {
            info.notes.push(format!(
                "CR3 {:#x} of VP {} is not a kernel address space: {}",
                vp.cr3, vp.index, c.reason
            ));
            continue;
        }
        if let Some((img, how)) = find_kernel_image(&mem, dtb, &vps, &walk_budget) {
            found = Some((dtb, format!("CR3 of VP {}", vp.index), img, how));
            break;
        }
        info.notes.push(format!(
            "CR3 {:#x} of VP {} maps kernel space but no kernel image was found through it",
            vp.cr3, vp.index
        ));
    }
    if found.is_none() {
        let scanned = scan_for_dtbs(state, paging);
        if scanned.is_empty() {
            info.notes.push(format!(
                "a scan of guest RAM found no {paging:?} page-table root that maps kernel space"
            ));
        }
        for dtb in scanned {
            if tried.contains(&dtb) {
                continue;
            }
            tried.push(dtb);
            if let Some((img, how)) = find_kernel_image(&mem, dtb, &vps, &walk_budget) {
                found = Some((
                    dtb,
                    format!("scan of guest RAM for page-table roots ({:#x})", dtb.root),
                    img,
                    how,
                ));
                break;
            }
        }
    }
    let Some((dtb, dtb_how, img, base_how)) = found else {
        let why = "no Windows kernel image (a PE exporting as ntoskrnl.exe, ntkrnlmp.exe or ntkrnlpa.exe) was found in kernel space";
        info.notes.push(why.into());
        set_all_not_found(&mut info, why);
        return info;
    };
    let vm = Vm { mem: &mem, dtb };
    info.dtb = Some(dtb);
    info.directory_table_base = Finding::heuristic(dtb.root, dtb_how);
    info.kernel_base = Finding::heuristic(img.base, base_how);
    info.image = Some(img.clone());
    info.version = img
        .file_version
        .map(|v| format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]));

    let syms = symbols.and_then(|p| match Symbols::load(p, img.pdb.as_ref()) {
        Ok(s) => {
            info.symbols = Some(s.path.display().to_string());
            Some(s)
        }
        Err(e) => {
            info.notes.push(format!("symbols not used: {e}"));
            None
        }
    });
    let sym = |name: &str| syms.as_ref().and_then(|s| s.rva(name)).map(|r| img.va(r));

    // Build number.
    let nt_build = sym("NtBuildNumber")
        .map(|a| (a, Method::Symbols))
        .or_else(|| {
            img.export(&vm, "NtBuildNumber")
                .map(|a| (a, Method::Heuristic))
        });
    if let Some((addr, method)) = nt_build {
        if let Some(v) = vm.u32(addr).filter(|v| v & 0xFFFF != 0) {
            info.nt_build_number = Some(v);
            info.build = Finding::with(
                u64::from(v & 0xFFFF),
                method,
                format!("NtBuildNumber ({v:#x}) at {addr:#x}"),
            );
        }
    }
    if info.build.value.is_none() {
        match img.file_version {
            Some(v) if v[2] != 0 => {
                info.build = Finding::heuristic(
                    u64::from(v[2]),
                    "file version of the kernel image (version resource)",
                )
            }
            _ => info.build = Finding::not_found("no NtBuildNumber export and no version resource"),
        }
    }

    // KdDebuggerDataBlock.
    let mut kdbg_found = None;
    if let Some(va) = sym("KdDebuggerDataBlock") {
        match kdbg_with_symbols(&vm, &img, va, &sym) {
            Ok((k, keys)) => {
                kdbg_found = Some((
                    va,
                    k,
                    keys,
                    Method::Symbols,
                    "symbol KdDebuggerDataBlock".to_string(),
                ))
            }
            Err(e) => info
                .notes
                .push(format!("KdDebuggerDataBlock from symbols at {va:#x}: {e}")),
        }
    }
    if kdbg_found.is_none() {
        if let Some((va, k, keys, how)) = find_kdbg(&vm, &img, &vps, &mut info.notes) {
            kdbg_found = Some((va, k, keys, Method::Heuristic, how));
        }
    }
    let x86 = !img.pe64;
    match kdbg_found {
        Some((va, k, keys, method, how)) => {
            info.kd_debugger_data_block = Finding::with(va, method, how);
            info.kdbg_encoded = keys.is_some();
            info.kdbg_keys = keys;
            info.kdbg_size = k.size().unwrap_or(0);
            info.kdbg = Some(k);
        }
        None => {
            info.kd_debugger_data_block = Finding::not_found(if x86 {
                "no KDBG block in the kernel's data sections and none through KPCR.KdVersionBlock"
            } else {
                "no plain KDBG block in the kernel's data sections, and no keys to decode an encoded one (KdCopyDataBlock / KeSetTimer code not recognised)"
            });
        }
    }

    // Fields: symbols first, then the KDBG, then exports.
    let kd = info.kdbg.clone();
    let kd_method = info.kd_debugger_data_block.method;
    let from_kdbg = |off: usize, name: &str| -> Option<Finding> {
        let k = kd.as_ref()?;
        let v = k.ptr(off).filter(|&v| v != 0)?;
        Some(Finding::with(
            v,
            kd_method,
            format!("KdDebuggerDataBlock.{name}"),
        ))
    };
    let field = |name: &str, off: usize| -> Finding {
        if let Some(a) = sym(name) {
            return Finding::symbols(a, format!("symbol {name}"));
        }
        if let Some(f) = from_kdbg(off, name) {
            return f;
        }
        Finding::not_found(if kd.is_none() {
            "KdDebuggerDataBlock not found".to_string()
        } else {
            format!("KdDebuggerDataBlock.{name} is 0")
        })
    };
    info.ps_loaded_module_list = field("PsLoadedModuleList", ko::PS_LOADED_MODULE_LIST);
    if info.ps_loaded_module_list.value.is_none() {
        if let Some(a) = img.export(&vm, "PsLoadedModuleList") {
            info.ps_loaded_module_list = Finding::heuristic(a, "export PsLoadedModuleList");
        }
    }
    info.ps_active_process_head = field("PsActiveProcessHead", ko::PS_ACTIVE_PROCESS_HEAD);
    info.ki_processor_block = field("KiProcessorBlock", ko::KI_PROCESSOR_BLOCK);
    let pfn_var = field("MmPfnDatabase", ko::MM_PFN_DATABASE);
    info.mm_pfn_database = match pfn_var.value {
        Some(a) => match vm.ptr(a).filter(|&v| v != 0) {
            Some(v) => Finding::with(
                v,
                pfn_var.method,
                format!("value of MmPfnDatabase at {a:#x} ({})", pfn_var.how),
            ),
            None => Finding::not_found(format!("MmPfnDatabase at {a:#x} cannot be read")),
        },
        None => pfn_var,
    };

    // Processors.
    if let Some(kpb) = info.ki_processor_block.value {
        let mut prcbs = Vec::new();
        for i in 0..MAX_PROCESSORS {
            match vm.ptr(kpb.wrapping_add(i * vm.ptr_size())) {
                Some(p) if p != 0 && dtb.paging.is_kernel_address(p) && vm.mapped(p) => {
                    prcbs.push(p)
                }
                _ => break,
            }
        }
        if prcbs.is_empty() {
            info.number_processors =
                Finding::not_found(format!("KiProcessorBlock at {kpb:#x} holds no KPRCB"));
        } else {
            info.number_processors = Finding::with(
                prcbs.len() as u64,
                info.ki_processor_block.method,
                "non-NULL entries of KiProcessorBlock",
            );
        }
        info.prcbs = prcbs;
    }
    if info.number_processors.value.is_none() {
        let kn = sym("KeNumberProcessors")
            .map(|a| (a, Method::Symbols))
            .or_else(|| {
                img.export(&vm, "KeNumberProcessors")
                    .map(|a| (a, Method::Heuristic))
            });
        match kn.and_then(|(a, m)| Some((vm.u32(a)?, m))) {
            Some((n, m)) if (1..=MAX_PROCESSORS as u32).contains(&(n & 0xFFFF)) => {
                info.number_processors =
                    Finding::with(u64::from(n & 0xFFFF), m, "KeNumberProcessors")
            }
            _ => {
                info.number_processors =
                    Finding::not_found("KiProcessorBlock and KeNumberProcessors not found")
            }
        }
    }

    // The System process's address space, as Windows writes it in the header.
    let offset_dtb = info
        .kdbg
        .as_ref()
        .and_then(|k| k.u16(ko::OFFSET_EPROCESS_DIRECTORY_TABLE_BASE))
        .filter(|&o| o != 0);
    let psp = sym("PsInitialSystemProcess")
        .map(|a| (a, Method::Symbols))
        .or_else(|| {
            img.export(&vm, "PsInitialSystemProcess")
                .map(|a| (a, Method::Heuristic))
        });
    if let (Some(off), Some((psp, m))) = (offset_dtb, psp) {
        let sys_dtb = vm
            .ptr(psp)
            .filter(|&e| dtb.paging.is_kernel_address(e))
            .and_then(|eproc| vm.ptr(eproc.wrapping_add(u64::from(off))))
            .map(|cr3| Dtb::new(dtb.paging, cr3));
        match sys_dtb {
            Some(d) if check_dtb(&mem, d).valid => {
                info.directory_table_base = Finding::with(
                    d.root,
                    m,
                    "DirectoryTableBase of the System process (PsInitialSystemProcess)",
                );
            }
            Some(d) => info.notes.push(format!(
                "the System process's DirectoryTableBase {:#x} does not map kernel space; keeping {:#x}",
                d.root, dtb.root
            )),
            None => {}
        }
    }

    // Bug check data and KUSER_SHARED_DATA.
    if let Some(a) = info
        .kdbg
        .as_ref()
        .and_then(|k| k.ptr(ko::KI_BUGCHECK_DATA))
        .filter(|&a| a != 0)
    {
        let ps = vm.ptr_size();
        let vals: Option<Vec<u64>> = (0..5).map(|i| vm.ptr(a.wrapping_add(i * ps))).collect();
        if let Some(v) = vals.filter(|v| v[0] != 0) {
            info.extra.bugcheck = Some([v[0], v[1], v[2], v[3], v[4]]);
        }
    }
    let sud = dtb.paging.shared_user_data();
    let ksystem_time = |off: u64| -> Option<u64> {
        let low = vm.u32(sud + off)?;
        let high = vm.u32(sud + off + 4)?;
        Some(u64::from(low) | (u64::from(high) << 32))
    };
    info.extra.interrupt_time = ksystem_time(0x08);
    info.extra.system_time = ksystem_time(0x14).filter(|&t| t != 0);
    info.extra.product_type = vm.u32(sud + 0x264).filter(|t| (1..=3).contains(t));
    info.extra.suite_mask = vm.u32(sud + 0x2D0);
    info
}

fn set_all_not_found(info: &mut KernelInfo, why: &str) {
    for f in [
        &mut info.directory_table_base,
        &mut info.kernel_base,
        &mut info.build,
        &mut info.kd_debugger_data_block,
        &mut info.ps_loaded_module_list,
        &mut info.ps_active_process_head,
        &mut info.mm_pfn_database,
        &mut info.ki_processor_block,
        &mut info.number_processors,
    ] {
        *f = Finding::not_found(why);
    }
}

/// The KPCR of a vCPU, if its GS base (x64; or the kernel GS base MSR) or FS base (x86)
/// points at one: `(kpcr, idt_base, kd_version_block)`.
fn kpcr_of(vm: &Vm<'_>, vp: &CpuState) -> Option<(u64, u64, u64)> {
    let paging = vm.dtb.paging;
    if paging.pointer_size() == 8 {
        for kpcr in [vp.gs.base, vp.kernel_gs_base().unwrap_or(0)] {
            if !paging.is_kernel_address(kpcr) {
                continue;
            }
            // KPCR.Self at +0x18, CurrentPrcb at +0x20 (= KPCR + 0x180), IdtBase at +0x38.
            if vm.u64(kpcr.wrapping_add(0x18)) == Some(kpcr)
                && vm.u64(kpcr.wrapping_add(0x20)) == Some(kpcr.wrapping_add(0x180))
            {
                return Some((kpcr, vm.u64(kpcr.wrapping_add(0x38)).unwrap_or(0), 0));
            }
        }
        None
    } else {
        let kpcr = vp.fs.base & 0xFFFF_FFFF;
        // KPCR.SelfPcr at +0x1C, Prcb at +0x20 (= KPCR + 0x120), KdVersionBlock +0x34, IDT +0x38.
        (paging.is_kernel_address(kpcr)
            && vm.u32(kpcr.wrapping_add(0x1C)) == Some(kpcr as u32)
            && vm.u32(kpcr.wrapping_add(0x20)) == Some((kpcr as u32).wrapping_add(0x120)))
        .then(|| {
            (
                kpcr,
                u64::from(vm.u32(kpcr.wrapping_add(0x38)).unwrap_or(0)),
                u64::from(vm.u32(kpcr.wrapping_add(0x34)).unwrap_or(0)),
            )
        })
    }
}

/// Interrupt handler addresses of the IDT at `idt` (vectors 0..0x30).
fn idt_handlers(vm: &Vm<'_>, idt: u64) -> Vec<u64> {
    let paging = vm.dtb.paging;
    let mut out = Vec::new();
    if !paging.is_kernel_address(idt) {
        return out;
    }
    let wide = paging.pointer_size() == 8;
    let size = if wide { 16 } else { 8 };
    for v in 0..0x30u64 {
        let mut g = [0u8; 16];
        if !vm.read(idt.wrapping_add(v * size), &mut g[..size as usize]) {
            continue;
        }
        if g[5] & 0x80 == 0 {
            continue; // not present
        }
        let lo = u64::from(u16::from_le_bytes([g[0], g[1]]));
        let mid = u64::from(u16::from_le_bytes([g[6], g[7]]));
        let h = if wide {
            lo | (mid << 16) | (u64::from(u32::from_le_bytes([g[8], g[9], g[10], g[11]])) << 32)
        } else {
            lo | (mid << 16)
        };
        if paging.is_kernel_address(h) && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// Walks down from `addr` page by page to the headers of the image holding it.
/// Page steps all walk-downs of one discovery may take together (8 full 32 MiB walks): guest
/// IDTs can point every handler of every vCPU at pages that hold no image.
const WALK_BUDGET_PAGES: u64 = 8 * MAX_WALK_DOWN / 4096;

fn image_below(vm: &Vm<'_>, addr: u64, budget: &std::cell::Cell<u64>) -> Option<PeImage> {
    let mut page = addr & !0xFFF;
    for _ in 0..MAX_WALK_DOWN / 4096 {
        let left = budget.get().checked_sub(1)?;
        budget.set(left);
        if vm.u16(page) == Some(0x5A4D) {
            if let Some(img) = PeImage::parse(vm, page) {
                if img.contains(addr) || is_kernel(&img) {
                    return Some(img);
                }
            }
        }
        page = page.checked_sub(4096)?;
        if !vm.dtb.paging.is_kernel_address(page) {
            return None;
        }
    }
    None
}

/// Finds the kernel image through `dtb`: IDT handlers, then KPCR, then a scan of kernel space.
fn find_kernel_image(
    mem: &CachedMem<'_>,
    dtb: Dtb,
    vps: &[&CpuState],
    budget: &std::cell::Cell<u64>,
) -> Option<(PeImage, String)> {
    let vm = Vm { mem, dtb };
    let mut seen = Vec::new();
    // Pages a walk-down already started from (vCPUs usually share one IDT).
    let mut walked = std::collections::HashSet::new();
    let mut try_handlers = |handlers: Vec<u64>, what: &str| -> Option<(PeImage, String)> {
        for h in handlers {
            if seen.iter().any(|img: &PeImage| img.contains(h)) || !walked.insert(h & !0xFFF) {
                continue;
            }
            if let Some(img) = image_below(&vm, h, budget) {
                if is_kernel(&img) {
                    return Some((img, format!("{what}: handler {h:#x} lies in the image")));
                }
                seen.push(img);
            }
        }
        None
    };
    for vp in vps {
        let handlers = idt_handlers(&vm, vp.idtr.base);
        if let Some(r) = try_handlers(
            handlers,
            &format!("IDT of VP {} (IDTR {:#x})", vp.index, vp.idtr.base),
        ) {
            return Some(r);
        }
    }
    for vp in vps {
        if let Some((kpcr, idt, kvb)) = kpcr_of(&vm, vp) {
            let reg = if dtb.paging.pointer_size() == 8 {
                "GS"
            } else {
                "FS"
            };
            if let Some(r) = try_handlers(
                idt_handlers(&vm, idt),
                &format!(
                    "KPCR {kpcr:#x} of VP {} ({reg} base) -> IdtBase {idt:#x}",
                    vp.index
                ),
            ) {
                return Some(r);
            }
            // DBGKD_GET_VERSION64.KernBase at +0x10.
            if kvb != 0 {
                if let Some(base) = vm.u64(kvb.wrapping_add(0x10)).map(|b| b & 0xFFFF_FFFF) {
                    if let Some(img) = PeImage::parse(&vm, base).filter(is_kernel) {
                        return Some((
                            img,
                            format!(
                                "KPCR {kpcr:#x} of VP {} -> KdVersionBlock.KernBase",
                                vp.index
                            ),
                        ));
                    }
                }
            }
        }
    }
    scan_kernel_space(mem, dtb).map(|img| {
        let how = format!(
            "scan of kernel space for the kernel's PE headers (found at {:#x})",
            img.base
        );
        (img, how)
    })
}

/// Looks at every mapped page of kernel space for the kernel's PE headers.
fn scan_kernel_space(mem: &CachedMem<'_>, dtb: Dtb) -> Option<PeImage> {
    let vm = Vm { mem, dtb };
    let ranges: &[(u64, u64)] = match dtb.paging {
        Paging::Long4 | Paging::Long5 => &[
            (0xFFFF_F800_0000_0000, 0xFFFF_F880_0000_0000),
            (0xFFFF_8000_0000_0000, 0xFFFF_F800_0000_0000),
            (0xFFFF_F880_0000_0000, 0xFFFF_FFFF_FFFF_F000),
        ],
        Paging::Pae | Paging::Bit32 => &[(0x8000_0000, 0xFFFF_F000)],
    };
    let mut budget = SCAN_BUDGET;
    let mut hit = None;
    for &(start, end) in ranges {
        let mut pages_left = SCAN_BUDGET;
        walk_mapped(mem, dtb, start, end, &mut budget, &mut |va, gpa, size| {
            for sub in 0..size / 4096 {
                if pages_left == 0 {
                    return false;
                }
                pages_left -= 1;
                let mut b = [0u8; 2];
                if !mem.probe(gpa.wrapping_add(sub * 4096), &mut b) || &b != b"MZ" {
                    continue;
                }
                if let Some(img) =
                    PeImage::parse(&vm, va.wrapping_add(sub * 4096)).filter(is_kernel)
                {
                    hit = Some(img);
                    return false;
                }
            }
            true
        });
        if hit.is_some() || budget == 0 {
            break;
        }
    }
    hit
}

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

fn kdbg_with_symbols(
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
fn find_kdbg(
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
