//! What `SavedState.summary()` returns: the same document as `vm2dmp info --json`
//! ([`vm2dmp::info::InfoReport`]), turned into Python objects through JSON.

use pyo3::prelude::*;
use serde::Serialize;
use vm2dmp::info::InfoReport;
use vm2dmp::input::Input;

/// `v` as Python objects (dicts, lists, ints, strings), through its JSON form.
pub fn to_py<T: Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "cannot represent the report: {e} (a file name that is not valid UTF-8?)"
        ))
    })?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// The `info --json` document of `input` as JSON text ([`vm2dmp::info::InfoReport`]): for a
/// Hyper-V saved state its summary, page encodings, processors and kernel; for any other input
/// the generic report.
pub fn info_json(input: &Input, kernel: &vm2dmp::guest::KernelInfo) -> vm2dmp::Result<String> {
    serde_json::to_string(&InfoReport::new(input, kernel)?).map_err(|e| {
        vm2dmp::Error::InvalidArgument(format!(
            "cannot write the report as JSON: {e} (a file name that is not valid UTF-8?)"
        ))
    })
}
