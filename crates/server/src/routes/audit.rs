//! `GET /api/v1/audit`: the audit trail, newest first, for admins.

use axum::extract::State;
use baton_api::{AuditPage, AuditQuery};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query};

pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(state.store().list_audit(&query).await?))
}
