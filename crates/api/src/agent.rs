//! The agent protocol: register, claim, heartbeat, report, logs, deregister;
//! and the agents list.

use std::collections::BTreeMap;

use baton_core::mask::Masker;
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

/// Longest agent name, in bytes.
pub const MAX_AGENT_NAME_BYTES: usize = 128;
/// Most labels one agent may offer.
pub const MAX_AGENT_LABELS: usize = 64;
/// Most slots one agent may offer.
pub const MAX_AGENT_SLOTS: u32 = 1024;
/// Most functions one agent may offer.
pub const MAX_AGENT_FUNCTIONS: usize = 1024;
/// Longest agent version, in bytes.
pub const MAX_AGENT_VERSION_BYTES: usize = 64;

/// Why a [`RegisterAgent`] was refused: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRegistration {
    /// The JSON field: `name`, `labels`, `slots`, `functions` or `version`.
    pub field: &'static str,
    /// What is wrong, in words.
    pub problem: String,
}

impl std::fmt::Display for BadRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad agent {}: {}", self.field, self.problem)
    }
}

impl std::error::Error for BadRegistration {}

impl RegisterAgent {
    /// Checks what an agent says about itself, which the server treats as untrusted input
    /// (and the agent checks before sending, to fail at start rather than at the server).
    ///
    /// The name is 1 to [`MAX_AGENT_NAME_BYTES`] bytes without control characters; labels
    /// are at most [`MAX_AGENT_LABELS`], each one a `selector:` can ask for
    /// ([`baton_core::check_label`]); functions are names `uses:` can name; slots are 1 to
    /// [`MAX_AGENT_SLOTS`]; the version is short text without control characters.
    pub fn check(&self) -> Result<(), BadRegistration> {
        let bad = |field, problem: String| Err(BadRegistration { field, problem });
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".into());
        }
        if self.name.len() > MAX_AGENT_NAME_BYTES {
            return bad(
                "name",
                format!(
                    "is {} bytes long; the limit is {MAX_AGENT_NAME_BYTES}",
                    self.name.len()
                ),
            );
        }
        if let Some(c) = self.name.chars().find(|c| c.is_control()) {
            return bad(
                "name",
                format!("{:?} holds the control character {c:?}", self.name),
            );
        }
        if self.labels.len() > MAX_AGENT_LABELS {
            return bad(
                "labels",
                format!(
                    "{} labels; the limit is {MAX_AGENT_LABELS}",
                    self.labels.len()
                ),
            );
        }
        for (key, value) in &self.labels {
            if let Err(problem) = baton_core::check_label(key, value) {
                return bad("labels", problem);
            }
        }
        if self.slots == 0 || self.slots > MAX_AGENT_SLOTS {
            return bad(
                "slots",
                format!("{} is not from 1 to {MAX_AGENT_SLOTS}", self.slots),
            );
        }
        if self.functions.len() > MAX_AGENT_FUNCTIONS {
            return bad(
                "functions",
                format!(
                    "{} functions; the limit is {MAX_AGENT_FUNCTIONS}",
                    self.functions.len()
                ),
            );
        }
        for function in &self.functions {
            if let Err(problem) = baton_core::check_function_name(function) {
                return bad("functions", problem);
            }
        }
        if self.version.len() > MAX_AGENT_VERSION_BYTES
            || self.version.chars().any(char::is_control)
        {
            return bad(
                "version",
                format!(
                    "must be at most {MAX_AGENT_VERSION_BYTES} bytes without control characters"
                ),
            );
        }
        Ok(())
    }
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

impl AttemptReport {
    /// Hides every value `masker` knows in what the report carries on: its message and its
    /// outputs (which reach other nodes and the run document).
    pub fn mask(&mut self, masker: &Masker) {
        if masker.is_empty() {
            return;
        }
        if let Some(message) = &mut self.message {
            masker.mask_string(message);
        }
        for value in self.outputs.values_mut() {
            masker.mask_string(value);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> RegisterAgent {
        RegisterAgent {
            name: "build-1.example".into(),
            labels: [("os".to_owned(), "linux".to_owned())].into(),
            slots: 4,
            functions: vec!["shell".into(), "my-plugin".into()],
            version: "0.1.0".into(),
        }
    }

    fn field_of(change: impl FnOnce(&mut RegisterAgent)) -> &'static str {
        let mut r = good();
        change(&mut r);
        r.check().expect_err("refused").field
    }

    #[test]
    fn a_plain_registration_passes() {
        assert_eq!(good().check(), Ok(()));
        let mut edge = good();
        edge.name = "n".repeat(MAX_AGENT_NAME_BYTES);
        edge.slots = MAX_AGENT_SLOTS;
        edge.labels = (0..MAX_AGENT_LABELS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert_eq!(edge.check(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn FnOnce(&mut RegisterAgent)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|r| r.name = String::new())),
            ("name", Box::new(|r| r.name = "  ".into())),
            ("name", Box::new(|r| r.name = "a\0b".into())),
            ("name", Box::new(|r| r.name = "\u{1b}[2Jevil".into())),
            ("name", Box::new(|r| r.name = "a\rb".into())),
            (
                "name",
                Box::new(|r| r.name = "n".repeat(MAX_AGENT_NAME_BYTES + 1)),
            ),
            (
                "labels",
                Box::new(|r| {
                    r.labels.insert("os".into(), "linux\nfake: row".into());
                }),
            ),
            (
                "labels",
                Box::new(|r| {
                    r.labels.insert("bad key".into(), "x".into());
                }),
            ),
            (
                "labels",
                Box::new(|r| {
                    r.labels = (0..=MAX_AGENT_LABELS)
                        .map(|i| (format!("k{i}"), String::new()))
                        .collect();
                }),
            ),
            ("slots", Box::new(|r| r.slots = 0)),
            ("slots", Box::new(|r| r.slots = MAX_AGENT_SLOTS + 1)),
            ("slots", Box::new(|r| r.slots = u32::MAX)),
            (
                "functions",
                Box::new(|r| r.functions.push("Bad Name".into())),
            ),
            ("functions", Box::new(|r| r.functions.push(String::new()))),
            ("version", Box::new(|r| r.version = "1\u{7}".into())),
        ];
        for (field, change) in cases {
            assert_eq!(field_of(change), field);
        }
    }

    #[test]
    fn the_message_names_the_field() {
        let mut r = good();
        r.slots = 0;
        let message = r.check().unwrap_err().to_string();
        assert!(message.starts_with("bad agent slots:"), "{message}");
    }
}
