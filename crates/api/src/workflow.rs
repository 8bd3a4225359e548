//! Workflow routes: apply, list, show versions.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/workflows`: apply a workflow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyWorkflow {
    /// The file's name as the user gave it (for messages, and `.json` picks nothing special:
    /// JSON is read by the same YAML 1.2 parser, so positions are reported the same way).
    pub filename: String,
    /// The file's text.
    pub source: String,
}

/// One stored version of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowVersion {
    /// Workflow name.
    pub name: String,
    /// 1, 2, 3… per name.
    pub version: i64,
    /// When this version was applied (RFC 3339).
    pub created_at: String,
    /// Number of nodes.
    pub nodes: usize,
    /// True when this apply made the version; false when the same definition was already the
    /// latest version, which is then returned.
    #[serde(default)]
    pub created: bool,
}

/// A version with its definition and source, `GET /api/v1/workflows/{name}/versions/{v}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowVersionDoc {
    /// The version.
    #[serde(flatten)]
    pub version: WorkflowVersion,
    /// The validated definition the runs of this version use.
    pub definition: baton_core::Workflow,
    /// The file text as applied.
    pub source: String,
}

/// A row of `GET /api/v1/workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    /// Workflow name.
    pub name: String,
    /// Newest version number.
    pub latest_version: i64,
    /// When the newest version was applied (RFC 3339).
    pub updated_at: String,
    /// Runs of any version.
    pub runs: i64,
}

/// `GET /api/v1/workflows/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDoc {
    /// Workflow name.
    pub name: String,
    /// Every version, newest first.
    pub versions: Vec<WorkflowVersion>,
}
