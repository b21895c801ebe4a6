//! `vm2dmp.SavedState`: any input vm2dmp reads, opened once and shared between threads.

use std::path::PathBuf;
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use vm2dmp::guest::KernelInfo;
use vm2dmp::input::{Format, Input, OpenOptions};
use vm2dmp::raw::{MemoryMap, RawOptions};
use vm2dmp::source::PagingMode;
use vm2dmp::{Cancel, ConvertOptions, DumpFormat, MemorySource};

use crate::errors::{py_result, to_py_err};
use crate::progress::PyProgress;
use crate::report::{info_json, to_py};
use crate::vcpu::Vcpu;

/// A memory map given to `open`: `"START-END,..."` as the command takes it, or
/// `[(start, end), ...]` with `end` exclusive.
#[derive(Debug, Clone, FromPyObject, IntoPyObject)]
pub enum MapArg {
    /// The command's syntax.
    Spec(String),
    /// Byte ranges, end exclusive, in file order.
    Ranges(Vec<(u64, u64)>),
}

/// The arguments an input was opened with: enough to open it again (pickling).
#[derive(Debug, Clone)]
pub struct OpenArgs {
    path: PathBuf,
    bin: Option<PathBuf>,
    raw: bool,
    memory_map: Option<MapArg>,
    cr3: Option<u64>,
    paging: Option<String>,
    no_replay: bool,
}

impl OpenArgs {
    fn options(&self) -> PyResult<OpenOptions> {
        let raw = if self.raw || self.memory_map.is_some() || self.cr3.is_some() {
            let map = match &self.memory_map {
                None => None,
                Some(MapArg::Spec(s)) => Some(py_result(MemoryMap::parse(s))?),
                Some(MapArg::Ranges(r)) => Some(py_result(MemoryMap::new(r))?),
            };
            let paging = match self
                .paging
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("x64") | Some("long") => None,
                Some("pae") => Some(PagingMode::Pae),
                Some("x86") | Some("bit32") => Some(PagingMode::Bit32),
                Some(other) => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "paging must be \"x64\", \"pae\" or \"x86\", not {other:?}"
                    )))
                }
            };
            Some(RawOptions {
                map,
                cr3: self.cr3,
                paging,
            })
        } else {
            None
        };
        Ok(OpenOptions {
            memory_file: self.bin.clone(),
            no_replay: self.no_replay,
            raw,
        })
    }
}

/// Saved guest memory: a Hyper-V saved state (``.vmrs``, ``.vsv`` + ``.bin``), a QEMU/KVM or
/// VirtualBox ELF core, a kdump-compressed file, VMware ``.vmss``/``.vmsn`` + ``.vmem``, or a
/// raw image. Made by :func:`vm2dmp.open`.
///
/// Read-only and safe to share between threads: long calls release the GIL, so threads read
/// and convert at the same time. Pickling re-opens the input by path with the same options
/// (what a process pool needs).
#[pyclass(frozen, module = "vm2dmp", name = "SavedState")]
pub struct SavedState {
    input: Input,
    args: OpenArgs,
    kernel: OnceLock<KernelInfo>,
}

impl SavedState {
    /// The opened input.
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// Kernel discovery's result, found once (with the GIL released) and kept.
    fn kernel_info(&self, py: Python<'_>) -> &KernelInfo {
        if let Some(k) = self.kernel.get() {
            return k;
        }
        let found = py.detach(|| vm2dmp::guest::find_kernel(&self.input, None));
        self.kernel.get_or_init(|| found)
    }
}

/// Opens the input at `path`, whatever its format (recognised by content).
///
/// Args:
///     path: the saved state (``.vmrs``, ``.vsv`` or ``.bin``, ELF core, kdump file,
///         ``.vmss``/``.vmsn``/``.vmem``, or with ``raw=True`` any file).
///     bin: the memory file of a state file that keeps memory apart (the ``.bin`` of a
///         ``.vsv``, the ``.vmem`` of a ``.vmss``); default: the file beside it.
///     raw: read the file as a raw physical memory image.
///     memory_map: with a raw image, the guest-physical ranges it holds, in file order:
///         ``"0x0-0x9ffff,0x100000-0xbfffffff"`` or ``[(start, end), ...]`` (end exclusive);
///         default: the whole file from address 0. Implies ``raw``.
///     cr3: with a raw image, the kernel's page-table root; default: found by a scan.
///         Implies ``raw``.
///     paging: with a raw image, ``"x64"`` (default), ``"pae"`` or ``"x86"``.
///     no_replay: read a dirty Hyper-V ``.vmrs`` as it is, without replaying its log.
///
/// Raises:
///     vm2dmp.errors.Error: a subclass saying why the input cannot be read.
#[pyfunction]
#[pyo3(signature = (path, bin=None, raw=false, memory_map=None, cr3=None, paging=None, no_replay=false))]
#[allow(clippy::too_many_arguments)]
pub fn open(
    py: Python<'_>,
    path: PathBuf,
    bin: Option<PathBuf>,
    raw: bool,
    memory_map: Option<MapArg>,
    cr3: Option<u64>,
    paging: Option<String>,
    no_replay: bool,
) -> PyResult<SavedState> {
    let args = OpenArgs {
        path,
        bin,
        raw,
        memory_map,
        cr3,
        paging,
        no_replay,
    };
    let opts = args.options()?;
    let input = py
        .detach(|| Input::open(&args.path, &opts))
        .map_err(to_py_err)?;
    Ok(SavedState {
        input,
        args,
        kernel: OnceLock::new(),
    })
}

/// The format a file starting with ``head`` is in (``"hyperv"``, ``"elf"``, ``"kdump"`` or
/// ``"vmware"``), from its first bytes (8 KiB are enough); ``None`` when vm2dmp does not
/// recognise it (raw images have no signature).
#[pyfunction]
pub fn detect(head: &[u8]) -> Option<&'static str> {
    vm2dmp::input::detect_bytes(head).map(format_id)
}

fn format_id(f: Format) -> &'static str {
    match f {
        Format::HyperV => "hyperv",
        Format::Elf => "elf",
        Format::Kdump => "kdump",
        Format::Vmware => "vmware",
        Format::Raw => "raw",
        _ => "other",
    }
}

#[pymethods]
impl SavedState {
    /// The path it was opened from, as given.
    #[getter]
    fn path(&self) -> PathBuf {
        self.args.path.clone()
    }

    /// The format: ``"hyperv"``, ``"elf"``, ``"kdump"``, ``"vmware"`` or ``"raw"``.
    #[getter]
    fn format(&self) -> &'static str {
        format_id(self.input.format())
    }

    /// What kind of input this is, in words (``"Hyper-V saved state"``...).
    #[getter]
    fn kind(&self) -> String {
        self.input.machine().kind
    }

    /// The files read, main file first (a ``.vsv`` and its ``.bin``...).
    #[getter]
    fn files(&self) -> Vec<PathBuf> {
        self.input.files()
    }

    /// Guest RAM as ``[(start, end), ...]``: guest-physical byte addresses, end exclusive,
    /// sorted, not overlapping (they may touch).
    #[getter]
    fn ranges(&self) -> Vec<(u64, u64)> {
        self.input
            .ram_ranges()
            .iter()
            .map(|r| (r.gpa_start(), r.gpa_end()))
            .collect()
    }

    /// Bytes of guest RAM.
    #[getter]
    fn ram_bytes(&self) -> u64 {
        self.input.ram_pages() << 12
    }

    /// The processors' registers, ordered by index (empty for a raw image).
    #[getter]
    fn vcpus(&self) -> Vec<Vcpu> {
        if self.input.machine().processors_from_kernel {
            return Vec::new();
        }
        self.input
            .vcpus()
            .iter()
            .map(|&state| Vcpu { state })
            .collect()
    }

    /// What the reader inferred or could not read, in words.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.input.machine().notes
    }

    /// ``size`` bytes of guest-physical memory from ``gpa``, across pages and ranges.
    ///
    /// Raises:
    ///     vm2dmp.errors.HoleError: a byte is not backed by RAM (``.gpa`` is the first).
    ///     vm2dmp.errors.CorruptError: the stored page cannot be decoded.
    fn read_phys<'py>(
        &self,
        py: Python<'py>,
        gpa: u64,
        size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = py
            .detach(|| {
                let mut buf = vec![0u8; size];
                self.input.read_phys(gpa, &mut buf).map(|()| buf)
            })
            .map_err(to_py_err)?;
        Ok(PyBytes::new(py, &data))
    }

    /// True when every byte of ``[gpa, gpa + size)`` is guest RAM.
    #[pyo3(signature = (gpa, size=1))]
    fn is_ram(&self, gpa: u64, size: u64) -> bool {
        let Some(last) = gpa.checked_add(size.max(1) - 1) else {
            return false;
        };
        let ranges = self.input.ram_ranges();
        let i = ranges.partition_point(|r| r.gpa_start() <= gpa);
        i.checked_sub(1)
            .and_then(|i| ranges.get(i))
            .is_some_and(|r| last < r.gpa_end())
    }

    /// What ``vm2dmp info --json`` shows, as a dict: for a Hyper-V saved state its summary
    /// (containers, versions, RAM blocks, replay log), page encodings, processors and kernel;
    /// for other inputs format, files, RAM ranges, processors, notes and kernel.
    fn summary(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let kernel = self.kernel_info(py);
        let text = py
            .detach(|| info_json(&self.input, kernel))
            .map_err(to_py_err)?;
        Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
    }

    /// The Windows kernel found in guest memory (without symbols), as a dict: each field
    /// (``directory_table_base``, ``kernel_base``, ``build``, ``kd_debugger_data_block``,
    /// ``ps_loaded_module_list``...) as ``{"value", "method", "how"}``, the image, the
    /// paging mode (``dtb``), ``notes``, and ``found``. Found once and kept.
    fn kernel(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let k = self.kernel_info(py);
        let dict = to_py(py, k)?;
        dict.bind(py).set_item("found", k.found())?;
        Ok(dict)
    }

    /// The page-table root of the kernel's address space, only when kernel discovery found
    /// the kernel through it (the System process's, PCID bits cleared), with its paging mode:
    /// ``(root, "Long4" | "Long5" | "Pae" | "Bit32")``, else ``None``.
    fn kernel_dtb(&self, py: Python<'_>) -> Option<(u64, String)> {
        let k = self.kernel_info(py);
        if !k.found() {
            return None;
        }
        let root = k.directory_table_base.value?;
        let paging = k.dtb?.paging;
        Some((root, format!("{paging:?}")))
    }

    /// Writes a Windows kernel crash dump of the guest to ``out`` and returns what was done
    /// (a dict: ``dump_type``, ``pages_written``, ``bytes``, ``directory_table_base``,
    /// ``notes``...). The dump appears only when complete.
    ///
    /// Args:
    ///     out: the dump to write.
    ///     format: ``"auto"`` (a full dump when the memory map fits its header, else a
    ///         bitmap dump), ``"full"`` or ``"bitmap"``.
    ///     skip_zero: leave out all-zero pages (a bitmap dump).
    ///     symbols: the kernel's PDB or a local symbol store, used when it matches.
    ///     force: replace an existing ``out``.
    ///     progress: ``progress(done, total)`` (bytes) every 16 MiB and at the end; an
    ///         exception it raises cancels the conversion and is raised again.
    ///     comment: the header's Comment (default: tool, kind and name of the input).
    ///     hash: also compute the SHA-256 of the inputs and the dump.
    ///
    /// Raises:
    ///     vm2dmp.errors.OutputExistsError: ``out`` exists and ``force`` is not set.
    ///     vm2dmp.errors.Error: a subclass for anything else that went wrong.
    #[pyo3(signature = (out, format="auto", skip_zero=false, symbols=None, force=false, progress=None, comment=None, hash=false))]
    #[allow(clippy::too_many_arguments)]
    fn convert(
        &self,
        py: Python<'_>,
        out: PathBuf,
        format: &str,
        skip_zero: bool,
        symbols: Option<PathBuf>,
        force: bool,
        progress: Option<Py<PyAny>>,
        comment: Option<String>,
        hash: bool,
    ) -> PyResult<Py<PyAny>> {
        let format = match format {
            "auto" => DumpFormat::Auto,
            "full" => DumpFormat::Full,
            "bitmap" => DumpFormat::Bitmap,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "format must be \"auto\", \"full\" or \"bitmap\", not {other:?}"
                )))
            }
        };
        let opts = ConvertOptions {
            format,
            skip_zero,
            force,
            comment,
            symbols,
            no_replay: self.args.no_replay,
            hash,
            ..ConvertOptions::default()
        };
        let cancel = Cancel::new();
        let reporter = PyProgress::new(progress.as_ref(), &cancel);
        let result = reporter.run(py, || {
            vm2dmp::convert(&self.input, &out, &opts, &reporter, &cancel)
        });
        if let Some(e) = reporter.take_error() {
            return Err(e);
        }
        let report = result.map_err(to_py_err)?;
        to_py(py, &report)
    }

    /// Compares every guest page with the dump at ``dump`` (pages a conversion deliberately
    /// changes are compared with the changed bytes) and returns the counts as a dict, with
    /// ``ok`` true when the dump holds every page's bytes.
    #[pyo3(signature = (dump, symbols=None))]
    fn verify(
        &self,
        py: Python<'_>,
        dump: PathBuf,
        symbols: Option<PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        crate::dump::verify_source(py, &self.input, &dump, symbols.as_deref())
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let open = py.import("vm2dmp")?.getattr("open")?;
        let a = &self.args;
        let args = (
            a.path.clone(),
            a.bin.clone(),
            a.raw,
            a.memory_map.clone(),
            a.cr3,
            a.paging.clone(),
            a.no_replay,
        );
        PyTuple::new(py, [open, args.into_pyobject(py)?.into_any()])
    }

    fn __repr__(&self) -> String {
        format!(
            "<vm2dmp.SavedState {} ({}), {} MiB in {} ranges, {} vCPUs>",
            self.args.path.display(),
            self.input.machine().kind,
            self.input.ram_pages() >> 8,
            self.input.ram_ranges().len(),
            self.input.vcpus().len()
        )
    }
}
