//! Dump-header fields from kernel discovery.

use vm2dmp_kdump::{consts, DumpHeaderInfo};

use super::info::KernelInfo;
use super::patch::{build_patches, PagePatches};
use crate::context::cpu_context;
use vm2dmp_source::MemorySource;

/// Fills the header fields `kernel` knows, notes those it does not, and returns the pages the
/// dump stores patched. `x64` is the dump's architecture.
pub fn fill_header(
    state: &dyn MemorySource,
    kernel: &KernelInfo,
    x64: bool,
    info: &mut DumpHeaderInfo,
    notes: &mut Vec<String>,
) -> PagePatches {
    let Some(img) = kernel.image.as_ref().filter(|_| kernel.found()) else {
        let why = kernel
            .notes
            .last()
            .cloned()
            .unwrap_or_else(|| "no Windows kernel found".into());
        notes.push(format!(
            "no Windows kernel found in guest memory ({why}): KdDebuggerDataBlock, PsLoadedModuleList, PsActiveProcessHead, PfnDataBase and MinorVersion (build number) are 0 (unknown); DirectoryTableBase is the boot vCPU's CR3"
        ));
        return PagePatches::default();
    };
    if img.pe64 != x64 {
        notes.push(format!(
            "the kernel found at {:#x} is {}-bit but the boot vCPU runs {}-bit code: kernel fields are left 0 (unknown)",
            img.base,
            if img.pe64 { 64 } else { 32 },
            if x64 { 64 } else { 32 }
        ));
        return PagePatches::default();
    }
    notes.push(format!(
        "Windows kernel {} at {:#x}{}{}",
        img.export_name.as_deref().unwrap_or("?"),
        img.base,
        kernel
            .build
            .value
            .map_or(String::new(), |b| format!(", build {b}")),
        if kernel.symbols.is_some() {
            ", with symbols"
        } else {
            ", without symbols"
        }
    ));
    if let Some(v) = kernel.directory_table_base.value {
        info.directory_table_base = v;
    }
    if let Some(b) = kernel.build.value {
        info.minor_version = b as u32;
    }
    if let Some(n) = kernel.nt_build_number {
        if n >> 28 == 0xC || n >> 28 == 0xF {
            info.major_version = n >> 28;
        }
    }
    if let Some(v) = kernel.kd_debugger_data_block.value {
        info.kd_debugger_data_block = v;
    }
    if let Some(v) = kernel.ps_loaded_module_list.value {
        info.ps_loaded_module_list = v;
    }
    if let Some(v) = kernel.ps_active_process_head.value {
        info.ps_active_process_head = v;
    }
    if let Some(v) = kernel.mm_pfn_database.value {
        info.pfn_database = v;
    }
    if let Some(n) = kernel.number_processors.value {
        info.number_processors = n as u32;
    }
    let e = &kernel.extra;
    if info.bugcheck_code == consts::LIVE_SYSTEM_DUMP {
        if let Some(b) = e.bugcheck.filter(|b| b[0] <= u64::from(u32::MAX)) {
            notes.push(format!(
                "the guest bugchecked: KiBugCheckData holds {:#x}",
                b[0]
            ));
            info.bugcheck_code = b[0] as u32;
            info.bugcheck_parameters = [b[1], b[2], b[3], b[4]];
        }
    }
    if let Some(t) = e.system_time {
        info.system_time = t;
    }
    if let Some(t) = e.interrupt_time {
        info.system_uptime = t;
    }
    if let Some(p) = e.product_type {
        info.product_type = p;
    }
    if let Some(s) = e.suite_mask {
        info.suite_mask = s;
    }
    let unknown = kernel.unknown_header_fields();
    if !unknown.is_empty() {
        notes.push(format!(
            "kernel found but {} unknown (0 in the header)",
            unknown.join(", ")
        ));
    }
    if kernel.kdbg_encoded {
        notes.push(
            "KdDebuggerDataBlock is encoded in guest memory: the dump holds it decoded, with KdpDataBlockEncoded = 0"
                .into(),
        );
    }
    if state.machine().processors_from_kernel {
        let cpus = crate::kprcb::processor_states(state, kernel);
        match cpus.first() {
            Some(first) => {
                info.context = cpu_context(first);
                info.number_processors = u32::try_from(kernel.prcbs.len()).unwrap_or(u32::MAX);
                notes.push(format!(
                    "the input holds no processor state: the context record is processor 0's as the kernel last saved it in its KPRCB ({} of {} processors' state readable)",
                    cpus.len(),
                    kernel.prcbs.len()
                ));
            }
            None => notes.push(
                "the input holds no processor state and no KPRCB's saved state could be read: the context record is empty".into(),
            ),
        }
    }
    let (patches, patch_notes) = build_patches(state, kernel, &cpu_context);
    notes.extend(patch_notes);
    patches
}
