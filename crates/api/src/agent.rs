//! The agent protocol: register, claim, heartbeat, report, logs, deregister;
//! and the agents list.

use std::collections::BTreeMap;

use baton_core::{Action, Outcome, Outputs};
use serde::{Deserialize, Serialize};

use crate::Stream;

/// `POST /api/v1/agent/register`, with the enrollment token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterAgent {
    /// Unique among online agents; a restarted agent may reuse its name.
    pub name: String,
    /// `key=value` labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Attempts it runs at once.
    pub slots: u32,
    /// Functions it implements (`shell`, built-ins, plugins).
    pub functions: Vec<String>,
    /// The agent's version, for the agents list.
    #[serde(default)]
    pub version: String,
}

/// Answer to a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The new agent's id.
    pub agent_id: String,
    /// The agent's own token for every later call.
    pub token: String,
    /// Lease term of a claimed attempt, in milliseconds.
    pub lease_ms: u64,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
}

/// `POST /api/v1/agent/claim`: a long poll for work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// Free slots: at most this many attempts are handed out.
    pub max: u32,
    /// How long the server may hold the request when nothing is ready (capped at 60 s).
    pub wait_ms: u64,
}

/// Work handed to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The attempt's id, used in every later call about it.
    pub attempt_id: i64,
    /// The fencing token: every write about the attempt must carry it.
    pub fence: i64,
    /// Run id.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Node id.
    pub node: String,
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// What to run.
    pub action: Action,
    /// Environment for the work.
    pub env: BTreeMap<String, String>,
    /// Attempt time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Artifact patterns to collect from the work dir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    /// Outputs of the nodes this one `needs` (direct needs only), by node id, each from
    /// that node's current attempt; needs that wrote none are absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Outputs>,
    /// Environment variables whose values are secrets: the values, for this attempt only.
    /// The agent masks each of them in everything it sends back (logs, outputs, messages).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretValue>,
    /// The node's secret references (variable to secret name), for the server to resolve
    /// into [`secrets`](Self::secrets) before the assignment leaves it; never sent.
    #[serde(skip)]
    pub secret_refs: BTreeMap<String, String>,
    /// Set by the server when the attempt cannot be given what it needs (a secret that was
    /// removed or is not for this workflow): the agent ends the attempt `error` with this
    /// message without running anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// A secret's value. Its `Debug` shows `***`, so an assignment in a log never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Answer to a claim.
///
/// An agent keeps one claim outstanding at all times, with `max: 0` when its slots are
/// full, so a cancel reaches it at once through `cancel` rather than at its next heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// Possibly empty when the wait ran out.
    pub assignments: Vec<Assignment>,
    /// Attempts of this agent whose run was canceled: stop them and report them `canceled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel: Vec<i64>,
}

/// An attempt an agent holds, named with its fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptRef {
    /// Attempt id.
    pub attempt_id: i64,
    /// Its fencing token.
    pub fence: i64,
}

/// `POST /api/v1/agent/heartbeat`: renews the leases of the attempts the agent holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Attempts still running on the agent.
    pub attempts: Vec<AttemptRef>,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Renewed attempts' new lease term, in milliseconds from now.
    pub lease_ms: u64,
    /// Attempts whose run was canceled: stop them and report them `canceled`.
    pub cancel: Vec<i64>,
    /// Attempts that are no longer the agent's (reaped, or stale): stop them, report nothing.
    pub stale: Vec<i64>,
}

/// `POST /api/v1/agent/attempts/{id}/start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartAttempt {
    /// Fencing token.
    pub fence: i64,
}

/// `POST /api/v1/agent/attempts/{id}/report`: how the attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Fencing token.
    pub fence: i64,
    /// The ending.
    pub outcome: Outcome,
    /// A short explanation (spawn error, signal that killed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the work wrote to `$BATON_OUTPUT`, within the limits of
    /// [`baton_core::parse_outputs`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: Outputs,
}

/// Answer to a report: the stored ending (the same for a repeated report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportResponse {
    /// The attempt's stored ending.
    pub outcome: Outcome,
}

/// `POST /api/v1/agent/reports`: how several attempts ended, and a claim for the slots
/// their ends free, in one round trip and one transaction.
///
/// Each report means what `attempts/{id}/report` means. The claim part never waits: it
/// hands out what is ready now, which makes a chain's next node follow its predecessor's
/// report without a second request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportBatch {
    /// The endings, at least one.
    pub reports: Vec<AttemptReport>,
    /// Slots to fill from ready work: at most this many attempts come back in
    /// [`ReportBatchResponse::assignments`]. At most the number of reports, since only
    /// their slots are known to be free.
    #[serde(default)]
    pub want: u32,
}

/// One ending in a [`ReportBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// Attempt id.
    pub attempt_id: i64,
    /// Fencing token.
    pub fence: i64,
    /// The ending.
    pub outcome: Outcome,
    /// A short explanation (spawn error, signal that killed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the work wrote to `$BATON_OUTPUT`, within the limits of
    /// [`baton_core::parse_outputs`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: Outputs,
}

/// Answer to a [`ReportBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportBatchResponse {
    /// One result per report, in the order sent.
    pub results: Vec<ReportResult>,
    /// New attempts for the agent, as a claim would hand them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<Assignment>,
}

/// What became of one report of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportResult {
    /// Attempt id.
    pub attempt_id: i64,
    /// The attempt's stored ending (the same for a repeated report); absent when the
    /// attempt is not the agent's current one (what a single report answers with `409`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// `POST /api/v1/agent/attempts/{id}/logs`: one chunk of output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppendLogs {
    /// Fencing token.
    pub fence: i64,
    /// The agent's per-attempt chunk number from 0; a repeated number is ignored.
    pub seq: u32,
    /// Stream.
    pub stream: Stream,
    /// UTF-8 text (the agent replaces invalid sequences).
    pub data: String,
}

/// A row of `GET /api/v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDoc {
    /// Agent id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `online`, `offline` (no heartbeat within the lease) or `gone` (deregistered).
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Functions it implements.
    pub functions: Vec<String>,
    /// Slots in all.
    pub slots: u32,
    /// Slots in use (pending or running attempts).
    pub used_slots: u32,
    /// Agent version.
    pub version: String,
    /// RFC 3339.
    pub registered_at: String,
    /// RFC 3339.
    pub last_seen_at: String,
}

/// One collected file of an attempt, `GET /api/v1/runs/{id}/artifacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactDoc {
    /// Node id.
    pub node: String,
    /// Attempt number.
    pub attempt: u32,
    /// Path relative to the attempt's work dir, `/`-separated, never `..` or absolute.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}
