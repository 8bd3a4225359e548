//! Secrets: set (value in the body, sealed at once), list (never values), remove.

use axum::extract::State;
use axum::http::StatusCode;
use baton_api::{AuditAction, PutSecret, SecretDoc};
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Path};

pub(crate) async fn put(
    caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<PutSecret>,
) -> Result<Json<SecretDoc>, ApiError> {
    let doc = state
        .secrets()
        .put(state.store().as_ref(), &name, body)
        .await?;
    tracing::info!(secret = %doc.name, by = %caller.name, "secret set");
    let detail = json!({"workflows": doc.workflows});
    state
        .audit(&caller.name, AuditAction::SecretSet, &doc.name, detail)
        .await;
    Ok(Json(doc))
}

pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<SecretDoc>>, ApiError> {
    Ok(Json(state.store().list_secrets().await?))
}

pub(crate) async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store().delete_secret(&name).await?;
    tracing::info!(secret = %name, by = %caller.name, "secret removed");
    state
        .audit(&caller.name, AuditAction::SecretDelete, &name, json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
