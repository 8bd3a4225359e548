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
    /// Runs' priority (`priority`): among ready nodes an agent can run, higher goes first.
    /// `baton run --priority` overrides it for one run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// The cap on this workflow's active runs (`concurrency`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Nodes in file order. Ids are unique; `needs` name existing nodes; the graph is acyclic.
    pub nodes: Vec<NodeSpec>,
}

/// One step of a workflow, with the workflow-level defaults already merged in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// `[A-Za-z0-9_-]+`, unique within the workflow.
    pub id: String,
    /// Upstream nodes; `when` says what of them the node waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The trigger rule over `needs`.
    #[serde(default, skip_serializing_if = "When::is_default")]
    pub when: When,
    /// What the node does.
    pub action: Action,
    /// Environment for the process (workflow `env` merged under node `env`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment variables whose value is a stored secret: variable name to secret name
    /// (`env: {API_KEY: {secret: API_KEY}}`). The value reaches only the agent running an
    /// attempt, for that attempt; it is never stored with the workflow or the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
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
    /// Named locks (semaphores) held while an attempt runs, each name once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceUse>,
    /// Glob patterns of files collected from the work dir after the attempt ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// `concurrency: {limit: N, on_conflict: ...}`: at most `limit` runs of the workflow are
/// active (pending or running) at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concurrency {
    /// Most active runs, at least 1.
    pub limit: u32,
    /// What a new run does when the limit is reached.
    #[serde(default)]
    pub on_conflict: OnConflict,
}

/// What happens to a run created while its workflow is at its concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// The new run waits (`created`) and starts when a place frees, oldest first.
    #[default]
    Queue,
    /// The new run is canceled at once.
    CancelNew,
    /// The oldest active runs are canceled; the new run starts once they have stopped.
    CancelRunning,
}

impl OnConflict {
    /// The file-format names, for messages.
    pub const NAMES: &'static [&'static str] = &["queue", "cancel_new", "cancel_running"];

    /// The file-format name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Queue => "queue",
            OnConflict::CancelNew => "cancel_new",
            OnConflict::CancelRunning => "cancel_running",
        }
    }
}

/// A node's trigger rule: what of its upstream nodes it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every upstream node succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream node ended, whatever its result.
    AllDone,
    /// One upstream node succeeded; the others are not waited for.
    AnySuccess,
    /// One upstream node ended `failure` or `error` (clean-up and alert nodes).
    AnyFailure,
}

impl When {
    /// The file-format names, for messages.
    pub const NAMES: &'static [&'static str] =
        &["all_success", "all_done", "any_success", "any_failure"];

    /// The file-format name.
    pub fn as_str(self) -> &'static str {
        match self {
            When::AllSuccess => "all_success",
            When::AllDone => "all_done",
            When::AnySuccess => "any_success",
            When::AnyFailure => "any_failure",
        }
    }

    /// True for `all_success`, the rule a node has when it names none.
    pub fn is_default(&self) -> bool {
        *self == When::AllSuccess
    }
}

/// One entry of `resources:`: a name and how many holders it admits at once.
///
/// Stored as a bare name when `count` is 1 (what versions written before capacities
/// hold), else as `{name, count}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceUse {
    /// The resource's name.
    pub name: String,
    /// Most attempts holding it at once, at least 1 (1: an exclusive lock).
    pub count: u32,
}

impl ResourceUse {
    /// An exclusive lock on `name`.
    pub fn exclusive(name: impl Into<String>) -> ResourceUse {
        ResourceUse {
            name: name.into(),
            count: 1,
        }
    }
}

impl From<&str> for ResourceUse {
    fn from(name: &str) -> ResourceUse {
        ResourceUse::exclusive(name)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ResourceForm {
    Name(String),
    Counted { name: String, count: u32 },
}

impl Serialize for ResourceUse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.count == 1 {
            s.serialize_str(&self.name)
        } else {
            ResourceForm::Counted {
                name: self.name.clone(),
                count: self.count,
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ResourceUse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match ResourceForm::deserialize(d)? {
            ResourceForm::Name(name) => ResourceUse { name, count: 1 },
            ResourceForm::Counted { name, count } => ResourceUse { name, count },
        })
    }
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
