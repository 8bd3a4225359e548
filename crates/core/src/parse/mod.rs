//! Workflow files (YAML or JSON) to a validated [`Workflow`].
//!
//! Reading goes in three steps, each its own file:
//! - `tree`: parser events to a spanned value tree, refusing syntax errors, several
//!   documents, deep nesting and alias bombs as it reads;
//! - `model` (with `node` and `fields`): the tree to a [`Workflow`], checking every key,
//!   type and name (`names`);
//! - `graph`: `needs` resolution and cycles.
//!
//! Every problem is collected in a `report` and handed back together, in file order.
//! The format itself is described in `docs/workflow-format.md`.

mod fields;
mod graph;
mod model;
pub(crate) mod names;
mod node;
mod report;
mod scalar;
mod sched;
mod tree;

use crate::diag::Diagnostics;
use crate::workflow::Workflow;

pub use names::{MAX_LABEL_LEN, check_function_name, check_label};
use report::Report;

/// Largest workflow file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most nodes accepted in one workflow.
pub const MAX_NODES: usize = 10_000;

/// Parses and validates a workflow file, reporting every problem at once.
///
/// `file` is the name used in messages; `bytes` is the file's content, YAML or JSON. Never
/// panics, whatever the input.
pub fn parse_workflow(file: &str, bytes: &[u8]) -> Result<Workflow, Diagnostics> {
    let mut report = Report::new(file);
    let workflow = read(bytes, &mut report);
    match workflow {
        Some(wf) if report.is_empty() => Ok(wf),
        _ => Err(report.finish()),
    }
}

fn read(bytes: &[u8], report: &mut Report) -> Option<Workflow> {
    if bytes.len() > MAX_FILE_BYTES {
        report.file(format!(
            "file is {} bytes, over the limit of {MAX_FILE_BYTES} bytes (1 MiB)",
            bytes.len()
        ));
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let (line, col) = line_col(bytes, err.valid_up_to());
            let byte = bytes.get(err.valid_up_to()).copied().unwrap_or_default();
            report.at_line(
                line,
                col,
                format!("file is not valid utf-8 (byte 0x{byte:02x})"),
            );
            return None;
        }
    };
    let root = match tree::build(text, report) {
        Ok(root) => root,
        Err(tree::Stop::Empty) => {
            report.file(EMPTY);
            return None;
        }
        Err(tree::Stop::Refused) => return None,
    };
    if root.is_null() {
        report.file(EMPTY);
        return None;
    }
    model::workflow(&root, report)
}

const EMPTY: &str = "empty file: a workflow needs \"name\" and \"nodes\"";

/// The 1-based line and column (in characters) of byte `at`, all of whose prefix is UTF-8.
fn line_col(bytes: &[u8], at: usize) -> (usize, usize) {
    let prefix = &bytes[..at.min(bytes.len())];
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = String::from_utf8_lossy(&prefix[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}
