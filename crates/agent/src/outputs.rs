//! Outputs and inputs on the agent: the upstream outputs a node's process gets (the
//! `BATON_<NODE>_<KEY>` variables and the `$BATON_INPUTS` file), and reading what it wrote
//! to `$BATON_OUTPUT` once it exited.
//!
//! Values only ever travel as environment variables, file contents and JSON: nothing is
//! pasted into a script, so an output such as `"; rm -rf / #` stays data.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use baton_core::{
    AttemptState, MAX_OUTPUT_BYTES, Outcome, OutputError, OutputProblem, Outputs, Reason,
    input_env_name, parse_outputs,
};
use tokio::io::AsyncReadExt;

use crate::functions::Ended;

/// Inputs as the agent receives them: each needed node's outputs, by node id.
pub(crate) type Inputs = BTreeMap<String, Outputs>;

/// The variable `BATON_<NODE>_<KEY>` of every input, in order. Of names two inputs share
/// (after upper-casing and `_` for other characters), the last by node id, then key, is
/// set last and so wins.
pub(crate) fn exported(inputs: &Inputs) -> Vec<(String, String)> {
    inputs
        .iter()
        .flat_map(|(node, outputs)| {
            outputs
                .iter()
                .map(move |(key, value)| (input_env_name(node, key), value.clone()))
        })
        .collect()
}

/// The `$BATON_INPUTS` document: `{"node": {"key": "value"}}`, `{}` when there are none.
pub(crate) fn inputs_json(inputs: &Inputs) -> Vec<u8> {
    // A map of strings always serialises.
    serde_json::to_vec(inputs).unwrap_or_else(|_| b"{}".to_vec())
}

/// Reads the outputs of work that ran to its end (success or failure) from `file`; other
/// endings keep none. Outputs that break the format or its limits end the attempt `error`
/// (`output`), with the work's own exit code kept.
pub(crate) async fn collect(ended: Ended, file: &Path) -> Ended {
    let Ended::Finished {
        outcome,
        message,
        outputs: _,
    } = ended
    else {
        return ended;
    };
    if outcome.reason != Reason::Exit {
        return Ended::Finished {
            outcome,
            message,
            outputs: Outputs::new(),
        };
    }
    match read(file).await {
        Ok(outputs) => Ended::Finished {
            outcome,
            message,
            outputs,
        },
        Err(why) => refused(
            outcome,
            message.as_deref(),
            &format!("$BATON_OUTPUT: {why}"),
        ),
    }
}

/// The ending of work whose outputs were refused for `why`.
pub(crate) fn refused(outcome: Outcome, message: Option<&str>, why: &str) -> Ended {
    let mut text = format!("bad {why}");
    match outcome.exit_code {
        Some(code) => text.push_str(&format!(" (the work exited with code {code}")),
        None => text.push_str(&format!(" (the work ended {}", outcome.state)),
    }
    if let Some(message) = message {
        text.push_str(": ");
        text.push_str(message);
    }
    text.push(')');
    Ended::Finished {
        outcome: Outcome {
            state: AttemptState::Error,
            reason: Reason::Output,
            exit_code: outcome.exit_code,
        },
        message: Some(text),
        outputs: Outputs::new(),
    }
}

/// Reads and parses an output file without ever holding more than the limit (plus one byte)
/// of it; a missing file holds no outputs.
async fn read(file: &Path) -> Result<Outputs, String> {
    let opened = match tokio::fs::File::open(file).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outputs::new()),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let size = opened.metadata().await.map(|m| m.len()).ok();
    let mut bytes = Vec::new();
    let limit = MAX_OUTPUT_BYTES as u64 + 1;
    if let Err(e) = opened.take(limit).read_to_end(&mut bytes).await {
        return Err(format!("cannot read it: {e}"));
    }
    if bytes.len() > MAX_OUTPUT_BYTES {
        let size = size
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(bytes.len());
        let e = OutputError {
            line: None,
            problem: OutputProblem::TooLarge(size.max(bytes.len())),
        };
        return Err(e.to_string());
    }
    parse_outputs(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> Ended {
        Ended::Finished {
            outcome: Outcome::exited(code),
            message: None,
            outputs: Outputs::new(),
        }
    }

    #[tokio::test]
    async fn outputs_of_work_that_exited_are_read_whatever_its_code() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("out");
        std::fs::write(&file, "a=1\nnotes<<EOF\nx\ny\nEOF\n").expect("write");
        for code in [0, 3] {
            let Ended::Finished {
                outcome, outputs, ..
            } = collect(exited(code), &file).await
            else {
                panic!("dropped");
            };
            assert_eq!(outcome, Outcome::exited(code));
            assert_eq!(outputs["a"], "1");
            assert_eq!(outputs["notes"], "x\ny");
        }
        // A missing file is no outputs.
        let gone = collect(exited(0), &dir.path().join("gone")).await;
        assert_eq!(gone, exited(0));
    }

    #[tokio::test]
    async fn bad_outputs_end_the_attempt_error_output_keeping_the_exit_code() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("out");
        std::fs::write(&file, "ok=1\n2bad=x\n").expect("write");
        let Ended::Finished {
            outcome,
            message,
            outputs,
        } = collect(exited(4), &file).await
        else {
            panic!("dropped");
        };
        assert_eq!(outcome.state, AttemptState::Error);
        assert_eq!(outcome.reason, Reason::Output);
        assert_eq!(outcome.exit_code, Some(4));
        assert!(outputs.is_empty());
        let message = message.expect("message");
        assert!(
            message.starts_with("bad $BATON_OUTPUT: line 2: \"2bad\" is not an output key"),
            "{message}"
        );
        assert!(
            message.ends_with("(the work exited with code 4)"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn an_oversized_file_is_refused_with_its_size_without_reading_it_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("out");
        let size = 10 * MAX_OUTPUT_BYTES;
        std::fs::write(&file, "k=".to_string() + &"x".repeat(size - 2)).expect("write");
        let Ended::Finished { message, .. } = collect(exited(0), &file).await else {
            panic!("dropped");
        };
        assert_eq!(
            message.as_deref(),
            Some(
                format!(
                    "bad $BATON_OUTPUT: outputs of {size} bytes are too large: at most \
                     65536 bytes (the work exited with code 0)"
                )
                .as_str()
            )
        );
    }

    #[tokio::test]
    async fn endings_other_than_an_exit_keep_no_outputs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("out");
        std::fs::write(&file, "not an output line\n").expect("write");
        let timed_out = Ended::timed_out(std::time::Duration::from_secs(1));
        assert_eq!(collect(timed_out.clone(), &file).await, timed_out);
        assert_eq!(collect(Ended::Dropped, &file).await, Ended::Dropped);
    }

    #[test]
    fn inputs_become_variables_and_a_json_document() {
        let inputs: Inputs = [(
            "build-app".to_string(),
            [("out-dir".to_string(), "\"; rm -rf / #".to_string())].into(),
        )]
        .into();
        let vars = exported(&inputs);
        assert_eq!(vars.len(), 1);
        assert_eq!(vars[0].0, "BATON_BUILD_APP_OUT_DIR");
        assert_eq!(vars[0].1, "\"; rm -rf / #");
        assert_eq!(
            inputs_json(&inputs),
            br#"{"build-app":{"out-dir":"\"; rm -rf / #"}}"#
        );
        assert_eq!(inputs_json(&Inputs::new()), b"{}");
    }
}
