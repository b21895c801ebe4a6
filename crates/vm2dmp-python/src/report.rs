//! What `SavedState.summary()` returns: the same document as `vm2dmp info --json` (types
//! mirrored from the command's `info` module), turned into Python objects through JSON.

use pyo3::prelude::*;
use serde::Serialize;
use vm2dmp::hyperv::{EncodingStats, Summary};
use vm2dmp::input::Input;
use vm2dmp::{CpuState, MemorySource};

/// `v` as Python objects (dicts, lists, ints, strings), through its JSON form.
pub fn to_py<T: Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "cannot represent the report: {e} (a file name that is not valid UTF-8?)"
        ))
    })?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

#[derive(Serialize)]
struct VpReport<'a> {
    index: u32,
    architecture: vm2dmp::source::Architecture,
    paging_mode: vm2dmp::source::PagingMode,
    mode: &'static str,
    rip: String,
    rsp: String,
    rflags: String,
    cr0: String,
    cr3: String,
    cr4: String,
    efer: String,
    cs_selector: String,
    cpl: u8,
    registers: &'a CpuState,
}

#[derive(Serialize)]
struct InfoReport<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    encoding: EncodingStats,
    vcpus: Vec<VpReport<'a>>,
    kernel: &'a vm2dmp::guest::KernelInfo,
}

#[derive(Serialize)]
struct RangeReport {
    start: String,
    end: String,
    pages: u64,
}

#[derive(Serialize)]
struct SourceReport<'a> {
    format: &'static str,
    kind: String,
    files: Vec<std::path::PathBuf>,
    ram_bytes: u64,
    ram_ranges: Vec<RangeReport>,
    vcpus: Vec<VpReport<'a>>,
    notes: Vec<String>,
    kernel: &'a vm2dmp::guest::KernelInfo,
}

fn vp_reports(vcpus: &[CpuState]) -> Vec<VpReport<'_>> {
    vcpus
        .iter()
        .map(|v| VpReport {
            index: v.index,
            architecture: v.architecture(),
            paging_mode: v.paging_mode(),
            mode: v.mode_description(),
            rip: hex(v.rip),
            rsp: hex(v.rsp),
            rflags: hex(v.rflags),
            cr0: hex(v.cr0),
            cr3: hex(v.cr3),
            cr4: hex(v.cr4),
            efer: hex(v.efer),
            cs_selector: format!("{:#x}", v.cs.selector),
            cpl: v.cpl,
            registers: v,
        })
        .collect()
}

/// The `info --json` document of `input` as JSON text: for a Hyper-V saved state its summary,
/// page encodings, processors and kernel; for any other input the generic report.
pub fn info_json(input: &Input, kernel: &vm2dmp::guest::KernelInfo) -> vm2dmp::Result<String> {
    let text = if let Some(state) = input.as_hyperv() {
        let summary = state.summary()?;
        let report = InfoReport {
            summary: &summary,
            encoding: state.encoding_stats()?,
            vcpus: vp_reports(state.vcpus()),
            kernel,
        };
        serde_json::to_string(&report)
    } else {
        let machine = input.machine();
        let vcpus: &[CpuState] = if machine.processors_from_kernel {
            &[]
        } else {
            input.vcpus()
        };
        let report = SourceReport {
            format: input.format().name(),
            kind: machine.kind.clone(),
            files: input.files(),
            ram_bytes: input.ram_pages() << 12,
            ram_ranges: input
                .ram_ranges()
                .iter()
                .map(|r| RangeReport {
                    start: hex(r.gpa_start()),
                    end: hex(r.gpa_end()),
                    pages: r.page_count,
                })
                .collect(),
            vcpus: vp_reports(vcpus),
            notes: machine.notes.clone(),
            kernel,
        };
        serde_json::to_string(&report)
    };
    text.map_err(|e| {
        vm2dmp::Error::InvalidArgument(format!(
            "cannot write the report as JSON: {e} (a file name that is not valid UTF-8?)"
        ))
    })
}
