//! Workflow routes: apply a file, list, show versions.

use axum::extract::State;
use axum::http::StatusCode;
use baton_api::{
    ApplyWorkflow, AuditAction, Role, WorkflowDoc, WorkflowSummary, WorkflowVersion,
    WorkflowVersionDoc,
};
use baton_core::Workflow;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Path};

/// `POST /workflows`: validates the file and stores it as a new version unless the
/// definition equals the latest one.
pub(crate) async fn apply(
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<ApplyWorkflow>,
) -> Result<(StatusCode, Json<WorkflowVersion>), ApiError> {
    let workflow = baton_core::parse_workflow(&body.filename, body.source.as_bytes())
        .map_err(|diagnostics| ApiError::invalid_workflow(diagnostics.0))?;
    if caller.role < Role::Admin {
        return unchanged(&state, &workflow)
            .await
            .map(|v| (StatusCode::OK, Json(v)));
    }
    let version = state
        .store()
        .apply_workflow(&workflow, &body.source)
        .await?;
    let status = if version.created {
        tracing::info!(workflow = %version.name, version = version.version, "workflow applied");
        state
            .audit(
                &caller.name,
                AuditAction::WorkflowApply,
                &version.name,
                json!({"version": version.version}),
            )
            .await;
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(version)))
}

/// For a caller who may run but not change workflows: the latest version when `workflow`
/// is exactly it, else `403`.
async fn unchanged(state: &AppState, workflow: &Workflow) -> Result<WorkflowVersion, ApiError> {
    let needs_admin = || {
        ApiError::forbidden(format!(
            "workflow {:?} differs from its latest version (or has none): applying it needs \
             the admin role",
            workflow.name
        ))
    };
    let doc = match state.store().workflow(&workflow.name).await {
        Ok(doc) => doc,
        Err(baton_store::StoreError::NotFound(_)) => return Err(needs_admin()),
        Err(e) => return Err(e.into()),
    };
    let Some(latest) = doc.versions.iter().map(|v| v.version).max() else {
        return Err(needs_admin());
    };
    let current = state
        .store()
        .workflow_version(&workflow.name, latest)
        .await?;
    if current.definition != *workflow {
        return Err(needs_admin());
    }
    Ok(current.version)
}

pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<WorkflowSummary>>, ApiError> {
    Ok(Json(state.store().list_workflows().await?))
}

pub(crate) async fn show(
    _: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WorkflowDoc>, ApiError> {
    Ok(Json(state.store().workflow(&name).await?))
}

pub(crate) async fn version(
    _: Caller,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, i64)>,
) -> Result<Json<WorkflowVersionDoc>, ApiError> {
    Ok(Json(state.store().workflow_version(&name, version).await?))
}
