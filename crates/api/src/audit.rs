//! The audit trail: who (a token's name) did what to which thing, and when.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Entries in a page when the query names no `limit`.
pub const AUDIT_PAGE_DEFAULT: u32 = 100;
/// The most entries in one page.
pub const AUDIT_PAGE_MAX: u32 = 1000;
/// The longest actor or target kept, in bytes; longer ones are cut (at a character
/// boundary) rather than lose the entry.
pub const AUDIT_NAME_MAX: usize = 256;
/// The largest `detail`, in bytes of compact JSON; a larger one is refused.
pub const AUDIT_DETAIL_MAX: usize = 16 * 1024;

/// What was done, as a dotted name (`run.cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AuditAction {
    /// A workflow file was applied (`POST /workflows`).
    #[serde(rename = "workflow.apply")]
    WorkflowApply,
    /// A run was started.
    #[serde(rename = "run.create")]
    RunCreate,
    /// A run was canceled.
    #[serde(rename = "run.cancel")]
    RunCancel,
    /// A finished run was run again.
    #[serde(rename = "run.retry")]
    RunRetry,
    /// A run waiting for approval was approved.
    #[serde(rename = "run.approve")]
    RunApprove,
    /// A run waiting for approval was rejected.
    #[serde(rename = "run.reject")]
    RunReject,
    /// A run was paused.
    #[serde(rename = "run.pause")]
    RunPause,
    /// A paused run was resumed.
    #[serde(rename = "run.resume")]
    RunResume,
    /// A run was deleted.
    #[serde(rename = "run.delete")]
    RunDelete,
    /// A named token was made.
    #[serde(rename = "token.create")]
    TokenCreate,
    /// A named token was revoked.
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    /// A secret was set or replaced.
    #[serde(rename = "secret.set")]
    SecretSet,
    /// A secret was deleted.
    #[serde(rename = "secret.delete")]
    SecretDelete,
}

impl AuditAction {
    /// Every action, in the order the docs list them.
    pub const ALL: [AuditAction; 13] = [
        AuditAction::WorkflowApply,
        AuditAction::RunCreate,
        AuditAction::RunCancel,
        AuditAction::RunRetry,
        AuditAction::RunApprove,
        AuditAction::RunReject,
        AuditAction::RunPause,
        AuditAction::RunResume,
        AuditAction::RunDelete,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::SecretSet,
        AuditAction::SecretDelete,
    ];

    /// The dotted name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::WorkflowApply => "workflow.apply",
            AuditAction::RunCreate => "run.create",
            AuditAction::RunCancel => "run.cancel",
            AuditAction::RunRetry => "run.retry",
            AuditAction::RunApprove => "run.approve",
            AuditAction::RunReject => "run.reject",
            AuditAction::RunPause => "run.pause",
            AuditAction::RunResume => "run.resume",
            AuditAction::RunDelete => "run.delete",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::SecretSet => "secret.set",
            AuditAction::SecretDelete => "secret.delete",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an [`AuditAction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAction(pub String);

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        write!(
            f,
            "unknown audit action {:?}; use one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownAction {}

impl FromStr for AuditAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Store-wide order of recording; larger is newer.
    pub id: i64,
    /// When it was recorded, on the store's clock (RFC 3339 UTC).
    pub at: String,
    /// Who did it: the name of the token the request carried (`admin` for the admin
    /// token file).
    pub actor: String,
    /// What was done: an [`AuditAction`] name. Kept as text so entries written by a newer
    /// server still read.
    pub action: String,
    /// What it was done to: a run id, a workflow, token or secret name.
    pub target: String,
    /// Whatever else is worth keeping (a JSON object, maybe empty); never a secret's value.
    pub detail: serde_json::Value,
}

/// `GET /api/v1/audit`: a page of entries, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many entries (default 100, 1 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only entries with a smaller id (older): the previous page's `next_before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// Only entries by this actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only entries of this action (`run.cancel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl AuditQuery {
    /// The page size asked for, checked: the default when absent.
    pub fn page_size(&self) -> Result<u32, String> {
        match self.limit {
            None => Ok(AUDIT_PAGE_DEFAULT),
            Some(n) if (1..=AUDIT_PAGE_MAX).contains(&n) => Ok(n),
            Some(n) => Err(format!(
                "limit {n} is out of range: use 1 to {AUDIT_PAGE_MAX}"
            )),
        }
    }

    /// Checks what serde cannot: the limit's range, the action's name, the actor's length.
    pub fn check(&self) -> Result<(), String> {
        self.page_size()?;
        if let Some(action) = &self.action {
            action.parse::<AuditAction>().map_err(|e| e.to_string())?;
        }
        if let Some(actor) = &self.actor
            && actor.len() > AUDIT_NAME_MAX
        {
            return Err(format!(
                "actor is {} bytes long: names are at most {AUDIT_NAME_MAX}",
                actor.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_names() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse::<AuditAction>(), Ok(action));
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::Value::String(action.as_str().to_owned())
            );
        }
        let err = "run.explode".parse::<AuditAction>().unwrap_err();
        assert!(
            err.to_string().starts_with(
                "unknown audit action \"run.explode\"; use one of workflow.apply, run.create"
            ),
            "{err}"
        );
    }

    #[test]
    fn query_checks_limit_action_and_actor() {
        let mut q = AuditQuery::default();
        assert_eq!(q.page_size(), Ok(AUDIT_PAGE_DEFAULT));
        q.limit = Some(AUDIT_PAGE_MAX);
        assert_eq!(q.check(), Ok(()));
        for bad in [0, AUDIT_PAGE_MAX + 1] {
            q.limit = Some(bad);
            assert_eq!(
                q.check(),
                Err(format!("limit {bad} is out of range: use 1 to 1000"))
            );
        }
        q.limit = None;
        q.action = Some("token.create".into());
        assert_eq!(q.check(), Ok(()));
        q.action = Some("token.eat".into());
        assert!(q.check().unwrap_err().contains("\"token.eat\""));
        q.action = None;
        q.actor = Some("x".repeat(AUDIT_NAME_MAX + 1));
        assert!(q.check().unwrap_err().contains("257 bytes"));
    }

    #[test]
    fn query_refuses_unknown_fields() {
        let err = serde_json::from_str::<AuditQuery>(r#"{"who": "admin"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `who`"), "{err}");
    }
}
