//! The document `vm2dmp info --json` prints for an input, as a serializable value, so that
//! every front end (the command, the Python package) reports the same fields.

use std::path::PathBuf;

use serde::Serialize;
use vm2dmp_guest::KernelInfo;
use vm2dmp_hyperv::{EncodingStats, Summary};
use vm2dmp_source::{Architecture, CpuState, MemorySource, PagingMode, Result};

use crate::input::Input;

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// One processor: its mode and the registers most looked at as hex strings, then all of them.
#[derive(Debug, Serialize)]
pub struct VpReport<'a> {
    index: u32,
    architecture: Architecture,
    paging_mode: PagingMode,
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

impl<'a> VpReport<'a> {
    /// The report of processor `v`.
    pub fn new(v: &'a CpuState) -> Self {
        Self {
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
            cs_selector: hex(u64::from(v.cs.selector)),
            cpl: v.cpl,
            registers: v,
        }
    }
}

/// A guest-physical RAM range as hex strings and a page count.
#[derive(Debug, Serialize)]
pub struct RangeReport {
    start: String,
    end: String,
    pages: u64,
}

/// What an input holds, as `info --json` shows it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum InfoReport<'a> {
    /// A Hyper-V saved state: its summary (flattened), page encodings, processors, kernel.
    HyperV {
        /// What the saved state holds.
        #[serde(flatten)]
        summary: Box<Summary>,
        /// How its RAM pages are stored.
        encoding: EncodingStats,
        /// Its processors.
        vcpus: Vec<VpReport<'a>>,
        /// The kernel found in its memory.
        kernel: &'a KernelInfo,
    },
    /// Any other input: format, files, RAM ranges, processors, the reader's notes, kernel.
    Other {
        /// The format in words ([`crate::input::Format::name`]).
        format: &'static str,
        /// What the reader calls the input ([`vm2dmp_source::MachineInfo::kind`]).
        kind: String,
        /// The files read, main file first.
        files: Vec<PathBuf>,
        /// Guest RAM in bytes.
        ram_bytes: u64,
        /// Guest RAM ranges.
        ram_ranges: Vec<RangeReport>,
        /// The processors the input saved (none for a raw image, whose one processor is an
        /// assumption for kernel discovery).
        vcpus: Vec<VpReport<'a>>,
        /// What the reader inferred or could not read.
        notes: Vec<String>,
        /// The kernel found in its memory.
        kernel: &'a KernelInfo,
    },
}

impl<'a> InfoReport<'a> {
    /// The report of `input`, with `kernel` as kernel discovery found it.
    pub fn new(input: &'a Input, kernel: &'a KernelInfo) -> Result<Self> {
        if let Some(state) = input.as_hyperv() {
            return Ok(InfoReport::HyperV {
                summary: Box::new(state.summary()?),
                encoding: state.encoding_stats()?,
                vcpus: state.vcpus().iter().map(VpReport::new).collect(),
                kernel,
            });
        }
        let machine = input.machine();
        let vcpus: &[CpuState] = if machine.processors_from_kernel {
            &[]
        } else {
            input.vcpus()
        };
        Ok(InfoReport::Other {
            format: input.format().name(),
            kind: machine.kind,
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
            vcpus: vcpus.iter().map(VpReport::new).collect(),
            notes: machine.notes,
            kernel,
        })
    }
}
