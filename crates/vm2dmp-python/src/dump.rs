//! `vm2dmp.DumpFile` and `vm2dmp.verify`: reading kernel dumps and checking them.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use vm2dmp::input::{Input, OpenOptions};
use vm2dmp::kdump::consts::{dump_type_name, machine_name};
use vm2dmp::{Cancel, MemorySource};

use crate::errors::to_py_err;
use crate::progress::PyProgress;
use crate::report::to_py;
use crate::state::SavedState;

/// A Windows kernel crash dump (``PAGEDU64`` or ``PAGEDUMP``), ours or Windows', opened
/// read-only. Header fields are attributes; :meth:`header` has them all as a dict.
///
/// Raises:
///     vm2dmp.errors.DumpError: the file is not a kernel dump vm2dmp reads.
///     vm2dmp.errors.InputError: it cannot be opened.
#[pyclass(frozen, module = "vm2dmp", name = "DumpFile")]
pub struct DumpFile {
    dump: vm2dmp::DumpFile,
}

#[pymethods]
impl DumpFile {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let dump = py
            .detach(|| vm2dmp::DumpFile::open(&path))
            .map_err(to_py_err)?;
        Ok(Self { dump })
    }

    /// Path of the dump file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.dump.path().to_path_buf()
    }

    /// ``DumpType``: 1 full, 5 bitmap (others: Windows' own kinds).
    #[getter]
    fn dump_type(&self) -> u32 {
        self.dump.dump().dump_type()
    }

    /// ``"X64"`` (``DUMP_HEADER64``) or ``"X86"`` (``DUMP_HEADER32``).
    #[getter]
    fn architecture(&self) -> &'static str {
        match self.dump.dump().arch() {
            vm2dmp::kdump::Arch::X64 => "X64",
            vm2dmp::kdump::Arch::X86 { .. } => "X86",
        }
    }

    /// ``DirectoryTableBase``: the kernel's page-table root.
    #[getter]
    fn directory_table_base(&self) -> u64 {
        self.dump.dump().info().directory_table_base
    }

    /// ``NumberProcessors``.
    #[getter]
    fn number_processors(&self) -> u32 {
        self.dump.dump().info().number_processors
    }

    /// ``BugCheckCode`` (0x161 ``LIVE_SYSTEM_DUMP`` for a guest that did not crash).
    #[getter]
    fn bugcheck_code(&self) -> u32 {
        self.dump.dump().info().bugcheck_code
    }

    /// ``Comment``.
    #[getter]
    fn comment(&self) -> String {
        self.dump.dump().info().comment.clone()
    }

    /// Pages the dump stores.
    #[getter]
    fn present_pages(&self) -> u64 {
        self.dump.dump().present_page_count()
    }

    /// The header's fields as a dict (ints, the Comment, runs as ``[(base_page, count)]``).
    fn header(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = self.dump.dump();
        let i = d.info();
        let h = PyDict::new(py);
        h.set_item("file", self.dump.path().to_path_buf())?;
        h.set_item("architecture", self.architecture())?;
        h.set_item("dump_type", d.dump_type())?;
        h.set_item("dump_type_name", dump_type_name(d.dump_type()))?;
        h.set_item("machine_image_type", d.machine_image_type())?;
        h.set_item("machine", machine_name(d.machine_image_type()))?;
        h.set_item("pae_enabled", d.pae_enabled())?;
        h.set_item("major_version", i.major_version)?;
        h.set_item("minor_version", i.minor_version)?;
        h.set_item("directory_table_base", i.directory_table_base)?;
        h.set_item("pfn_database", i.pfn_database)?;
        h.set_item("ps_loaded_module_list", i.ps_loaded_module_list)?;
        h.set_item("ps_active_process_head", i.ps_active_process_head)?;
        h.set_item("kd_debugger_data_block", i.kd_debugger_data_block)?;
        h.set_item("number_processors", i.number_processors)?;
        h.set_item("bugcheck_code", i.bugcheck_code)?;
        h.set_item("bugcheck_parameters", i.bugcheck_parameters.to_vec())?;
        h.set_item("system_time", i.system_time)?;
        h.set_item("system_uptime", i.system_uptime)?;
        h.set_item("comment", &i.comment)?;
        h.set_item("product_type", i.product_type)?;
        h.set_item("suite_mask", i.suite_mask)?;
        let runs: Vec<(u64, u64)> = d
            .runs()
            .iter()
            .map(|r| (r.base_page, r.page_count))
            .collect();
        h.set_item("runs", runs)?;
        h.set_item("bitmap_pages", d.bitmap().map(|b| b.pages))?;
        h.set_item("present_pages", d.present_page_count())?;
        h.set_item("required_dump_space", d.required_dump_space())?;
        h.set_item("file_size", d.file_size())?;
        Ok(h.into_any().unbind())
    }

    /// True when the dump stores guest page ``pfn``.
    fn has_page(&self, pfn: u64) -> bool {
        self.dump.has_page(pfn)
    }

    /// ``size`` bytes of physical memory from ``gpa``.
    ///
    /// Raises:
    ///     vm2dmp.errors.DumpError: the dump does not hold a page of the range.
    fn read_phys<'py>(
        &self,
        py: Python<'py>,
        gpa: u64,
        size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = py
            .detach(|| {
                let mut buf = vec![0u8; size];
                self.dump.read_phys(gpa, &mut buf).map(|()| buf)
            })
            .map_err(to_py_err)?;
        Ok(PyBytes::new(py, &data))
    }

    fn __repr__(&self) -> String {
        let d = self.dump.dump();
        format!(
            "<vm2dmp.DumpFile {} type {} ({}), {} pages>",
            self.dump.path().display(),
            d.dump_type(),
            dump_type_name(d.dump_type()),
            d.present_page_count()
        )
    }
}

/// Compares `source` page by page with the dump at `dump`; the report as a dict with `ok`.
pub fn verify_source(
    py: Python<'_>,
    source: &dyn MemorySource,
    dump: &Path,
    symbols: Option<&Path>,
) -> PyResult<Py<PyAny>> {
    let cancel = Cancel::new();
    let reporter = PyProgress::new(None, &cancel);
    let result = reporter.run(py, || {
        let file = vm2dmp::DumpFile::open(dump)?;
        vm2dmp::verify(&file, source, symbols, &reporter, &cancel)
    });
    if let Some(e) = reporter.take_error() {
        return Err(e);
    }
    let report = result.map_err(to_py_err)?;
    let dict = to_py(py, &report)?;
    dict.bind(py).set_item("ok", report.ok())?;
    Ok(dict)
}

/// Checks the kernel dump at ``dump_path`` against the input it was made from
/// (``input_path``, a path or an opened :class:`SavedState`): every guest page is compared.
///
/// Returns:
///     a dict: ``pages_compared``, ``mismatched_pages``, ``absent_zero_pages``,
///     ``absent_nonzero_pages``, ``extra_pages``, ``patched_pages``, ``first_bad_pages`` and
///     ``ok`` (the dump holds every page's bytes).
#[pyfunction]
#[pyo3(signature = (dump_path, input_path, symbols=None))]
pub fn verify(
    py: Python<'_>,
    dump_path: PathBuf,
    input_path: &Bound<'_, PyAny>,
    symbols: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    if let Ok(state) = input_path.cast::<SavedState>() {
        return verify_source(py, state.get().input(), &dump_path, symbols.as_deref());
    }
    let path: PathBuf = input_path.extract()?;
    let input = py
        .detach(|| Input::open(&path, &OpenOptions::default()))
        .map_err(to_py_err)?;
    verify_source(py, &input, &dump_path, symbols.as_deref())
}
