//! Kernel discovery: address space, kernel image, version, `KdDebuggerDataBlock` and what it
//! points to.

use std::path::Path;

use super::image_search::{find_kernel_image, SearchBudget};
use super::info::{Finding, KernelInfo, Method};
use super::kdbg::offsets as ko;
use super::kdbg_search::{find_kdbg, kdbg_with_symbols};
use super::pdb::Symbols;
use super::pe::{PeImage, Vm};
use super::root_scan::scan_for_dtbs;
use super::translate::SourceMem;
use super::translate::{check_dtb, CachedMem, Dtb, Paging};
use vm2dmp_source::{CpuState, MemorySource};

/// Entries of `KiProcessorBlock` read at most.
const MAX_PROCESSORS: u64 = 2048;

/// Finds the Windows kernel in `state`. `symbols` is an `ntkrnlmp.pdb` (or any kernel PDB)
/// or a symbol-store folder; when it matches the kernel's PDB GUID and age, its addresses
/// are used before any heuristic.
pub fn find_kernel(state: &dyn MemorySource, symbols: Option<&Path>) -> KernelInfo {
    find_kernel_with(state, symbols, Roots::Scan)
}

/// Where kernel discovery takes page-table roots from when no processor's CR3 leads to the
/// kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// Scan guest RAM for them ([`crate::scan_for_dtbs`]): decodes up to 8 GiB of RAM.
    Scan,
    /// These, found by a [`crate::RootScan`] the caller ran (in a pass that decodes RAM anyway).
    Given(Vec<Dtb>),
    /// None: only the processors' CR3 values are tried.
    Skip,
}

/// The paging mode kernel discovery (and a [`crate::RootScan`] for it) looks for in `state`:
/// that of the first processor (boot processor first) with paging on.
pub fn scan_paging(state: &dyn MemorySource) -> Option<Paging> {
    processors(state)
        .ok()?
        .iter()
        .find_map(|v| Paging::of_vcpu(v))
}

/// [`find_kernel`], with page-table roots taken from `roots` when no processor's CR3 leads to
/// the kernel.
pub fn find_kernel_with(
    state: &dyn MemorySource,
    symbols: Option<&Path>,
    roots: Roots,
) -> KernelInfo {
    let src = SourceMem(state);
    let mem = CachedMem::new(&src);
    let mut info = KernelInfo::empty();
    let vps = match processors(state) {
        Ok(v) => v,
        Err(why) => {
            info.notes.push(why.clone());
            set_all_not_found(&mut info, &why);
            return info;
        }
    };
    let Some((dtb, dtb_how, img, base_how)) = locate_kernel(state, &mem, &vps, roots, &mut info)
    else {
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
    let k = Kernel {
        vm: &vm,
        img: &img,
        sym: &sym,
    };
    k.read_build(&mut info);
    k.read_kdbg(&vps, &mut info);
    k.read_fields(&mut info);
    k.read_processors(&mut info);
    k.read_system_dtb(&mut info);
    k.read_machine_facts(&mut info);
    info
}

/// The processors, boot processor first, when at least one has paging on; else why not.
fn processors(state: &dyn MemorySource) -> Result<Vec<&CpuState>, String> {
    let boot = state
        .boot_vcpu()
        .ok_or_else(|| "the input holds no processor state".to_string())?;
    let vps: Vec<&CpuState> = std::iter::once(boot)
        .chain(state.vcpus().iter().filter(|v| v.index != boot.index))
        .collect();
    if vps.iter().any(|v| Paging::of_vcpu(v).is_some()) {
        Ok(vps)
    } else {
        Err(format!(
            "no vCPU has paging enabled (VP {} is in {}): no operating system kernel is running",
            boot.index,
            boot.mode_description()
        ))
    }
}

/// The kernel's address space and image: through each processor's CR3 that maps kernel
/// space, then through page-table roots found by a scan of guest RAM. Returns the root, how it
/// was found, the image and how its base was found.
fn locate_kernel(
    state: &dyn MemorySource,
    mem: &CachedMem<'_>,
    vps: &[&CpuState],
    roots: Roots,
    info: &mut KernelInfo,
) -> Option<(Dtb, String, PeImage, String)> {
    let paging = vps.iter().find_map(|v| Paging::of_vcpu(v))?;
    let budget = SearchBudget::for_ram(state.ram_pages());
    let mut tried: Vec<Dtb> = Vec::new();
    for vp in vps {
        let Some(dtb) = Dtb::of_vcpu(vp) else {
            continue;
        };
        if dtb.paging != paging || tried.contains(&dtb) {
            continue;
        }
        tried.push(dtb);
        let c = check_dtb(mem, dtb);
        if !c.valid {
            info.notes.push(format!(
                "CR3 {:#x} of VP {} is not a kernel address space: {}",
                vp.cr3, vp.index, c.reason
            ));
            continue;
        }
        if let Some((img, how)) = find_kernel_image(mem, dtb, vps, &budget) {
            return Some((dtb, format!("CR3 of VP {}", vp.index), img, how));
        }
        info.notes.push(format!(
            "CR3 {:#x} of VP {} maps kernel space but no kernel image was found through it",
            vp.cr3, vp.index
        ));
    }
    let scanned = match roots {
        Roots::Scan => scan_for_dtbs(state, paging),
        Roots::Given(r) => r,
        Roots::Skip => return None,
    };
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
        if let Some((img, how)) = find_kernel_image(mem, dtb, vps, &budget) {
            return Some((
                dtb,
                format!("scan of guest RAM for page-table roots ({:#x})", dtb.root),
                img,
                how,
            ));
        }
    }
    None
}

/// The kernel found: its address space, image and symbols, from which each stage reads.
struct Kernel<'a> {
    vm: &'a Vm<'a>,
    img: &'a PeImage,
    sym: &'a dyn Fn(&str) -> Option<u64>,
}

impl Kernel<'_> {
    /// The build number: `NtBuildNumber`, else the image's version resource.
    fn read_build(&self, info: &mut KernelInfo) {
        // Build number.
        let nt_build = (self.sym)("NtBuildNumber")
            .map(|a| (a, Method::Symbols))
            .or_else(|| {
                self.img
                    .export(self.vm, "NtBuildNumber")
                    .map(|a| (a, Method::Heuristic))
            });
        if let Some((addr, method)) = nt_build {
            if let Some(v) = self.vm.u32(addr).filter(|v| v & 0xFFFF != 0) {
                info.nt_build_number = Some(v);
                info.build = Finding::with(
                    u64::from(v & 0xFFFF),
                    method,
                    format!("NtBuildNumber ({v:#x}) at {addr:#x}"),
                );
            }
        }
        if info.build.value.is_none() {
            match self.img.file_version {
                Some(v) if v[2] != 0 => {
                    info.build = Finding::heuristic(
                        u64::from(v[2]),
                        "file version of the kernel image (version resource)",
                    )
                }
                _ => {
                    info.build =
                        Finding::not_found("no NtBuildNumber export and no version resource")
                }
            }
        }
    }

    /// `KdDebuggerDataBlock`: from symbols, else searched for (plain or encoded).
    fn read_kdbg(&self, vps: &[&CpuState], info: &mut KernelInfo) {
        // KdDebuggerDataBlock.
        let mut kdbg_found = None;
        if let Some(va) = (self.sym)("KdDebuggerDataBlock") {
            match kdbg_with_symbols(self.vm, self.img, va, self.sym) {
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
            if let Some((va, k, keys, how)) = find_kdbg(self.vm, self.img, vps, &mut info.notes) {
                kdbg_found = Some((va, k, keys, Method::Heuristic, how));
            }
        }
        let x86 = !self.img.pe64;
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
    }

    /// `PsLoadedModuleList`, `PsActiveProcessHead`, `KiProcessorBlock` and `MmPfnDatabase`: symbols first, then the KDBG, then exports.
    fn read_fields(&self, info: &mut KernelInfo) {
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
            if let Some(a) = (self.sym)(name) {
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
            if let Some(a) = self.img.export(self.vm, "PsLoadedModuleList") {
                info.ps_loaded_module_list = Finding::heuristic(a, "export PsLoadedModuleList");
            }
        }
        info.ps_active_process_head = field("PsActiveProcessHead", ko::PS_ACTIVE_PROCESS_HEAD);
        info.ki_processor_block = field("KiProcessorBlock", ko::KI_PROCESSOR_BLOCK);
        let pfn_var = field("MmPfnDatabase", ko::MM_PFN_DATABASE);
        info.mm_pfn_database = match pfn_var.value {
            Some(a) => match self.vm.ptr(a).filter(|&v| v != 0) {
                Some(v) => Finding::with(
                    v,
                    pfn_var.method,
                    format!("value of MmPfnDatabase at {a:#x} ({})", pfn_var.how),
                ),
                None => Finding::not_found(format!("MmPfnDatabase at {a:#x} cannot be read")),
            },
            None => pfn_var,
        };
    }

    /// The KPRCBs from `KiProcessorBlock`, else the count from `KeNumberProcessors`.
    fn read_processors(&self, info: &mut KernelInfo) {
        // Processors.
        if let Some(kpb) = info.ki_processor_block.value {
            let mut prcbs = Vec::new();
            for i in 0..MAX_PROCESSORS {
                match self.vm.ptr(kpb.wrapping_add(i * self.vm.ptr_size())) {
                    Some(p)
                        if p != 0
                            && self.vm.dtb.paging.is_kernel_address(p)
                            && self.vm.mapped(p) =>
                    {
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
            let kn = (self.sym)("KeNumberProcessors")
                .map(|a| (a, Method::Symbols))
                .or_else(|| {
                    self.img
                        .export(self.vm, "KeNumberProcessors")
                        .map(|a| (a, Method::Heuristic))
                });
            match kn.and_then(|(a, m)| Some((self.vm.u32(a)?, m))) {
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
    }

    /// The System process's address space, as Windows writes it in the header.
    fn read_system_dtb(&self, info: &mut KernelInfo) {
        // The System process's address space, as Windows writes it in the header.
        let offset_dtb = info
            .kdbg
            .as_ref()
            .and_then(|k| k.u16(ko::OFFSET_EPROCESS_DIRECTORY_TABLE_BASE))
            .filter(|&o| o != 0);
        let psp = (self.sym)("PsInitialSystemProcess")
            .map(|a| (a, Method::Symbols))
            .or_else(|| {
                self.img
                    .export(self.vm, "PsInitialSystemProcess")
                    .map(|a| (a, Method::Heuristic))
            });
        if let (Some(off), Some((psp, m))) = (offset_dtb, psp) {
            let sys_dtb = self
                .vm
                .ptr(psp)
                .filter(|&e| self.vm.dtb.paging.is_kernel_address(e))
                .and_then(|eproc| self.vm.ptr(eproc.wrapping_add(u64::from(off))))
                .map(|cr3| Dtb::new(self.vm.dtb.paging, cr3));
            match sys_dtb {
                Some(d) if check_dtb(self.vm.mem, d).valid => {
                    info.directory_table_base = Finding::with(
                        d.root,
                        m,
                        "DirectoryTableBase of the System process (PsInitialSystemProcess)",
                    );
                }
                Some(d) => info.notes.push(format!(
                    "the System process's DirectoryTableBase {:#x} does not map kernel space; keeping {:#x}",
                    d.root, self.vm.dtb.root
                )),
                None => {}
            }
        }
    }

    /// Bug check data and `KUSER_SHARED_DATA` (times, product type, suite mask).
    fn read_machine_facts(&self, info: &mut KernelInfo) {
        // Bug check data and KUSER_SHARED_DATA.
        if let Some(a) = info
            .kdbg
            .as_ref()
            .and_then(|k| k.ptr(ko::KI_BUGCHECK_DATA))
            .filter(|&a| a != 0)
        {
            let ps = self.vm.ptr_size();
            let vals: Option<Vec<u64>> = (0..5)
                .map(|i| self.vm.ptr(a.wrapping_add(i * ps)))
                .collect();
            if let Some(v) = vals.filter(|v| v[0] != 0) {
                info.extra.bugcheck = Some([v[0], v[1], v[2], v[3], v[4]]);
            }
        }
        let sud = self.vm.dtb.paging.shared_user_data();
        let ksystem_time = |off: u64| -> Option<u64> {
            let low = self.vm.u32(sud + off)?;
            let high = self.vm.u32(sud + off + 4)?;
            Some(u64::from(low) | (u64::from(high) << 32))
        };
        info.extra.interrupt_time = ksystem_time(0x08);
        info.extra.system_time = ksystem_time(0x14).filter(|&t| t != 0);
        info.extra.product_type = self.vm.u32(sud + 0x264).filter(|t| (1..=3).contains(t));
        info.extra.suite_mask = self.vm.u32(sud + 0x2D0);
    }
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
