//! Library errors as the exceptions of `vm2dmp.errors`, with their facts as attributes.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The exception for `e`: an instance of the `vm2dmp.errors` class that fits it, its message
/// the one the command prints, its fields (path, structure, offset, guest address...) set as
/// attributes.
pub fn to_py_err(e: vm2dmp::Error) -> PyErr {
    Python::attach(|py| build(py, &e).unwrap_or_else(|import_failed| import_failed))
}

fn build(py: Python<'_>, e: &vm2dmp::Error) -> PyResult<PyErr> {
    use vm2dmp::Error as E;
    let kw = PyDict::new(py);
    let path_str = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let class = match e {
        E::Io {
            path,
            action,
            source,
        }
        | E::Input {
            path,
            action,
            source,
        } => {
            kw.set_item("path", path_str(path))?;
            kw.set_item("action", *action)?;
            kw.set_item("errno", source.raw_os_error())?;
            "InputError"
        }
        E::MissingBin { vsv, tried } => {
            kw.set_item("path", path_str(vsv))?;
            kw.set_item("tried", tried)?;
            "MissingFileError"
        }
        E::Corrupt {
            path,
            structure,
            offset,
            detail,
        } => {
            kw.set_item("path", path_str(path))?;
            kw.set_item("structure", *structure)?;
            kw.set_item("offset", *offset)?;
            kw.set_item("detail", detail)?;
            "CorruptError"
        }
        E::Unsupported { path, detail } => {
            kw.set_item("path", path_str(path))?;
            kw.set_item("detail", detail)?;
            "UnsupportedError"
        }
        E::NoMemoryImage { path, detail } => {
            kw.set_item("path", path_str(path))?;
            kw.set_item("detail", detail)?;
            "NoMemoryError"
        }
        E::Hole { gpa } => {
            kw.set_item("gpa", *gpa)?;
            "HoleError"
        }
        E::Dump { path, source } => {
            kw.set_item("path", path_str(path))?;
            kw.set_item("detail", source.to_string())?;
            "DumpError"
        }
        E::OutputExists { path } => {
            kw.set_item("path", path_str(path))?;
            "OutputExistsError"
        }
        E::NoSpace {
            path,
            needed,
            available,
        } => {
            kw.set_item("path", path_str(path))?;
            kw.set_item("needed", *needed)?;
            kw.set_item("available", *available)?;
            "NoSpaceError"
        }
        E::Cancelled => "CancelledError",
        E::NoMatch { path, .. } | E::Ambiguous { path, .. } | E::TooManyFiles { path, .. } => {
            kw.set_item("path", path_str(path))?;
            "Error"
        }
        _ => "Error",
    };
    let cls = py.import("vm2dmp.errors")?.getattr(class)?;
    let value = cls.call((e.to_string(),), Some(&kw))?;
    Ok(PyErr::from_value(value))
}

/// `r` with its error turned into the exception that fits it.
pub fn py_result<T>(r: vm2dmp::Result<T>) -> PyResult<T> {
    r.map_err(to_py_err)
}
