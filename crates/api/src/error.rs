//! The error body every non-2xx response carries.

use serde::{Deserialize, Serialize};

/// `{"error": {"code": "...", "message": "...", "details": [...]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Stable machine-readable code: `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `stale_attempt`, `invalid_workflow`, `bad_request`, `too_large`, `unavailable`, `internal`.
    pub code: String,
    /// One line for people.
    pub message: String,
    /// For `invalid_workflow`: every problem, each pinned to file, line and column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<baton_core::Diagnostic>,
}
