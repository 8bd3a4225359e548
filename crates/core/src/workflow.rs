//! The validated workflow model: what a workflow file means once parsed.
//!
//! These types are also the stored form of a workflow version (as JSON), so a
//! run always keeps the exact graph it ran with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::state::{AttemptState, Outcome, Reason};

/// A validated workflow: a named DAG of nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// `[a-z0-9][a-z0-9_-]*`.
    pub name: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The run's time limit in milliseconds (the file's top-level `timeout`), counted from
    /// the run's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Nodes in file order. Ids are unique; `needs` name existing nodes; the graph is acyclic.
    pub nodes: Vec<NodeSpec>,
}

/// One step of a workflow, with the workflow-level defaults already merged in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// `[A-Za-z0-9_-]+`, unique within the workflow.
    pub id: String,
    /// Nodes that must succeed before this one is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// What the node does.
    pub action: Action,
    /// Environment for the process (workflow `env` merged under node `env`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Labels an agent must have, every one of them (workflow default merged under the node's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// Per-attempt time limit in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How long the node may wait in `ready` for an agent, in milliseconds (node value, else
    /// the workflow's); the server's default applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout_ms: Option<u64>,
    /// When and how often the node is tried again.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Exclusive locks held while an attempt runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Glob patterns of files collected from the work dir after the attempt ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A shell script or a list of commands (`run:`), run with `sh -e`.
    Run(Script),
    /// A call of a function the agent implements (`uses:` with `with:` arguments).
    Uses {
        /// The function's name.
        function: String,
        /// Its arguments, as given in the file (an object).
        #[serde(default)]
        with: serde_json::Value,
    },
}

impl Action {
    /// The function an agent must implement to run this action (`shell` for `run:`).
    pub fn function(&self) -> &str {
        match self {
            Action::Run(_) => "shell",
            Action::Uses { function, .. } => function,
        }
    }
}

/// A `run:` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    /// One script, run as is.
    One(String),
    /// Commands run in order in one shell; the first failure fails the node.
    List(Vec<String>),
}

impl Script {
    /// The script text handed to `sh -e`.
    ///
    /// A list is joined with newlines: under `-e` the shell stops at the first failing
    /// command, and later commands see the effects (`cd`, variables) of earlier ones.
    pub fn to_shell(&self) -> String {
        match self {
            Script::One(s) => s.clone(),
            Script::List(cmds) => cmds.join("\n"),
        }
    }
}

/// The conditions a retry may be made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// The work ran and exited non-zero.
    Failure,
    /// The work could not run (setup error).
    Error,
    /// The node's `timeout` elapsed.
    Timeout,
    /// The agent was lost (lease expired).
    Lost,
}

impl RetryOn {
    /// The file-format names, for messages.
    pub const NAMES: &'static [&'static str] = &["failure", "error", "timeout", "lost"];

    /// The condition an outcome falls under, if it is retryable at all.
    pub fn of(outcome: &Outcome) -> Option<RetryOn> {
        match (outcome.state, outcome.reason) {
            (AttemptState::Failure, _) => Some(RetryOn::Failure),
            (AttemptState::Error, Reason::Lost) => Some(RetryOn::Lost),
            (AttemptState::Error, Reason::Timeout) => Some(RetryOn::Timeout),
            (AttemptState::Error, Reason::NoAgent) => None,
            (AttemptState::Error, _) => Some(RetryOn::Error),
            // An agent that shuts down hands its work back: retried like a lost agent.
            (AttemptState::Canceled, Reason::Shutdown) => Some(RetryOn::Lost),
            _ => None,
        }
    }
}

/// `retry: {attempts: N, on: [...], backoff: 2s, max_backoff: 1m}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts allowed for the conditions in `on` (the first try counts).
    pub attempts: u32,
    /// Which endings may be retried.
    pub on: Vec<RetryOn>,
    /// Back-off before the second attempt, doubled each time after.
    pub backoff_ms: u64,
    /// Cap on the back-off.
    pub max_backoff_ms: u64,
    /// Extra attempts granted when the agent is lost, on top of `attempts`, unless `on`
    /// names `lost` explicitly (then `attempts` governs it).
    pub lost_attempts: u32,
}

impl Default for RetryPolicy {
    /// No retry on failure; up to 2 more attempts when an agent is lost.
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            on: Vec::new(),
            backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            lost_attempts: 2,
        }
    }
}
