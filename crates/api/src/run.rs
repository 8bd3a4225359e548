//! Run routes: create, list, show, cancel, logs.

use std::collections::BTreeMap;

use baton_core::{AttemptState, NodeState, Outputs, Reason, RunState};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRun {
    /// Workflow name.
    pub workflow: String,
    /// Version to run; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The run's priority; the workflow's `priority` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl CreateRun {
    /// A run of the latest version of `workflow`, at the workflow's priority.
    pub fn latest(workflow: impl Into<String>) -> CreateRun {
        CreateRun {
            workflow: workflow.into(),
            version: None,
            priority: None,
        }
    }

    /// A run of version `version` of `workflow`, at the workflow's priority.
    pub fn version(workflow: impl Into<String>, version: i64) -> CreateRun {
        CreateRun {
            workflow: workflow.into(),
            version: Some(version),
            priority: None,
        }
    }

    /// Checks what the server cannot leave to the store: a priority out of
    /// [`baton_core::PRIORITY_RANGE`] is refused, naming the bounds.
    pub fn check(&self) -> Result<(), String> {
        match self.priority {
            Some(p) if !baton_core::PRIORITY_RANGE.contains(&p) => Err(format!(
                "priority {p} is out of range: use a whole number from {} to {}",
                baton_core::PRIORITY_RANGE.start(),
                baton_core::PRIORITY_RANGE.end()
            )),
            _ => Ok(()),
        }
    }
}

/// `POST /api/v1/runs/{id}/retry`: a new run of the same version that keeps the old run's
/// successful nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryRun {
    /// Run this node and everything downstream of it again, even if they succeeded; without
    /// it, the nodes that did not succeed (and so everything downstream of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The run document: `GET /api/v1/runs/{id}` and `baton run --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDoc {
    /// Run id.
    pub id: String,
    /// Workflow name.
    pub workflow: String,
    /// Workflow version the run keeps.
    pub version: i64,
    /// Run state.
    pub status: RunState,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once an attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339, once terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// True once a cancel was asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
    /// Why the run was stopped, when it was not by a user: `timeout` once its time limit
    /// passed (it then ends `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The run this one re-runs (`baton runs retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// Its priority (the workflow's `priority`, or the one it was created with): among
    /// ready nodes an agent can run, higher goes first.
    #[serde(default)]
    pub priority: i64,
    /// For people: why the run waits (`created`: queued behind its workflow's concurrency
    /// limit) or why the limit canceled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Runs that re-run this one, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retried_by: Vec<String>,
    /// Bumped on every change of the run or its nodes; `GET …?wait_after=REV` waits for a
    /// higher one.
    pub rev: i64,
    /// Nodes by id.
    pub nodes: BTreeMap<String, NodeDoc>,
}

/// One node of a run document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDoc {
    /// Node state.
    pub status: NodeState,
    /// Nodes this one needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Why a node is waiting in `ready` (no agent offers what it needs), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Why the node ended without an attempt saying so: `no_agent` when nobody claimed it
    /// within its queue timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// A short explanation of `reason` (what no agent offers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The earlier run whose success this node keeps: it was not run again, and its
    /// attempts, logs and artifacts are that run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// The outputs of the node's current attempt (for a kept node, the attempt it keeps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: Outputs,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptDoc>,
}

/// One attempt of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptDoc {
    /// 1-based.
    pub number: u32,
    /// Attempt state.
    pub status: AttemptState,
    /// Why it ended so, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The agent's name.
    pub agent: String,
    /// Process exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A short explanation from the agent (spawn error, signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339, when the agent claimed it.
    pub claimed_at: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A row of `GET /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub id: String,
    /// Workflow name.
    pub workflow: String,
    /// Workflow version.
    pub version: i64,
    /// Run state.
    pub status: RunState,
    /// Its priority.
    #[serde(default)]
    pub priority: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Nodes in each state.
    pub counts: BTreeMap<NodeState, usize>,
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Only runs of this workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Only runs in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunState>,
    /// At most this many, newest first (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Which stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One stored chunk of a node's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Store-wide order of arrival; pass the last one as `after` to get only newer chunks.
    pub id: i64,
    /// Node id.
    pub node: String,
    /// Attempt number.
    pub attempt: u32,
    /// Stream.
    pub stream: Stream,
    /// The bytes, as UTF-8 (invalid sequences replaced).
    pub data: String,
}

/// Query of `GET /api/v1/runs/{id}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Only this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Only chunks with a larger id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many chunks (default and cap 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `GET /api/v1/runs/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// Chunks in order.
    pub chunks: Vec<LogChunk>,
    /// Pass as `after` for the next page; equal to the request's when nothing is newer.
    pub next: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_run_refuses_a_priority_out_of_range() {
        let mut req = CreateRun::latest("w");
        assert_eq!(req.check(), Ok(()));
        for ok in [-1_000_000, 0, 1_000_000] {
            req.priority = Some(ok);
            assert_eq!(req.check(), Ok(()), "{ok}");
        }
        req.priority = Some(1_000_001);
        assert_eq!(
            req.check(),
            Err(
                "priority 1000001 is out of range: use a whole number from -1000000 to 1000000"
                    .to_owned()
            )
        );
    }
}
