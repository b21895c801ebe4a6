//! `vm2dmp convert --out-dir DIR INPUT...`: many inputs (files, VM folders, Hyper-V roots,
//! globs) converted side by side, with a bar per running conversion, a JSON report, and an exit
//! code that says whether any input failed.
//!
//! - [`plan`] expands the inputs into conversions to run and entries already decided, and
//!   names their outputs;
//! - [`run`](mod@run) runs the conversions and shows their progress;
//! - [`report`] holds what happened to each entry and writes it out, and merges the reports
//!   of shards.

mod plan;
mod report;
mod run;

pub(crate) use report::{finished_written, merge_reports, Entry, Outcome, Report};
pub(crate) use run::run;
