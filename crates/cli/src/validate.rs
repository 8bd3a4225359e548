//! `baton validate FILE`, and the local check every command that sends a file runs first.

use std::io::Read as _;
use std::path::Path;

use baton_core::{Diagnostic, MAX_FILE_BYTES, Workflow};

use crate::args::ValidateArgs;
use crate::exit::{CliError, Exit};
use crate::output::write_stdout;

/// A workflow file that passed local validation.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    /// The file name as the user gave it.
    pub file: String,
    /// The file's text, sent to the server as is.
    pub source: String,
    /// What it means.
    pub workflow: Workflow,
}

impl LoadedWorkflow {
    /// Node ids in file order.
    pub fn node_order(&self) -> Vec<String> {
        self.workflow.nodes.iter().map(|n| n.id.clone()).collect()
    }
}

/// Reads and validates a workflow file: every problem comes back in one
/// [`CliError::InvalidWorkflow`]; an unreadable file is [`CliError::ReadFile`].
pub fn load(path: &Path) -> Result<LoadedWorkflow, CliError> {
    let file = path.display().to_string();
    let read_err = |source| CliError::ReadFile {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    // One byte past the limit is enough to know the file is too large, without reading
    // all of a huge file into memory.
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    let whole_file = |message: String| CliError::InvalidWorkflow {
        file: file.clone(),
        diagnostics: vec![Diagnostic {
            file: file.clone(),
            line: None,
            column: None,
            node: None,
            message,
        }],
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(whole_file(format!(
            "the file is larger than the limit of {} KiB",
            MAX_FILE_BYTES / 1024
        )));
    }
    let workflow =
        baton_core::parse_workflow(&file, &bytes).map_err(|d| CliError::InvalidWorkflow {
            file: file.clone(),
            diagnostics: d.0,
        })?;
    let source = String::from_utf8(bytes)
        .map_err(|e| whole_file(format!("the file is not UTF-8 text ({e})")))?;
    Ok(LoadedWorkflow {
        file,
        source,
        workflow,
    })
}

/// `baton validate FILE`: `FILE: ok (N nodes)` on stdout, or every problem on stderr.
pub fn validate(args: &ValidateArgs) -> Result<Exit, CliError> {
    let loaded = load(&args.file)?;
    write_stdout(&format!("{}\n", ok_line(&loaded)))?;
    Ok(Exit::Success)
}

/// `FILE: ok (N nodes)`.
fn ok_line(loaded: &LoadedWorkflow) -> String {
    let n = loaded.workflow.nodes.len();
    let nodes = if n == 1 { "node" } else { "nodes" };
    format!("{}: ok ({n} {nodes})", loaded.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_invalid_input_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.yaml");
        let err = load(&path).unwrap_err();
        assert_eq!(err.exit().code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("nope.yaml") && text.contains("No such file"),
            "{text}"
        );
    }

    #[test]
    fn a_directory_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, CliError::ReadFile { .. }), "{err:?}");
    }

    #[test]
    fn an_oversized_file_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES + 10]).unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(err.exit().code(), 2);
        let lines = err.report();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("big.yaml: the file is larger than the limit of 1024 KiB"),
            "{lines:?}"
        );
    }

    #[test]
    fn ok_line_counts_nodes() {
        let loaded = LoadedWorkflow {
            file: "wf.yaml".into(),
            source: String::new(),
            workflow: Workflow {
                name: "x".into(),
                description: None,
                timeout_ms: None,
                priority: 0,
                concurrency: None,
                nodes: Vec::new(),
            },
        };
        assert_eq!(ok_line(&loaded), "wf.yaml: ok (0 nodes)");
    }
}
