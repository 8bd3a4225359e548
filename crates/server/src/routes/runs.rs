//! Run routes: create, list, show (optionally held until the run changes), cancel, retry,
//! logs.

use std::pin::pin;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use baton_api::{
    AuditAction, CreateRun, LogPage, LogQuery, RetryRun, RunDoc, RunFilter, RunSummary,
};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::wake::{self, Woken};

/// How long `GET /runs/{id}?wait_after=` holds when `wait_ms` is not given.
const DEFAULT_WAIT_MS: u64 = 25_000;
/// The longest a run read is held.
const MAX_WAIT_MS: u64 = 60_000;

pub(crate) async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<CreateRun>,
) -> Result<(StatusCode, Json<RunDoc>), ApiError> {
    body.check().map_err(ApiError::bad_request)?;
    let created = state.store().create_run(&body).await?;
    state.wake().work_changed();
    state.wake().run_changed();
    tracing::info!(run = %created.run.id, workflow = %created.run.workflow, version = created.run.version, status = %created.run.status, "run created");
    let detail = json!({"workflow": created.run.workflow, "version": created.run.version});
    state
        .audit(
            &caller.name,
            AuditAction::RunCreate,
            &created.run.id,
            detail,
        )
        .await;
    Ok((StatusCode::CREATED, Json(created.run)))
}

pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
    Query(filter): Query<RunFilter>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    Ok(Json(state.store().list_runs(&filter).await?))
}

/// Query of `GET /runs/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ShowQuery {
    /// Hold the answer until the run's `rev` is above this.
    wait_after: Option<i64>,
    /// How long to hold at most.
    wait_ms: Option<u64>,
}

/// `GET /runs/{id}`: the run document, held with `wait_after` until the run changes.
pub(crate) async fn show(
    _: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Json<RunDoc>, ApiError> {
    if let Some(after) = query.wait_after {
        let wait = query.wait_ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS);
        let deadline = Instant::now() + Duration::from_millis(wait);
        loop {
            let mut changed = pin!(state.wake().runs().notified());
            wake::arm(changed.as_mut());
            if state.store().run_rev(&id).await? > after {
                break;
            }
            match wake::wait(changed, deadline, state.shutdown()).await {
                Woken::Notified => continue,
                Woken::Timeout | Woken::Shutdown => break,
            }
        }
    }
    Ok(Json(state.store().run(&id).await?))
}

pub(crate) async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDoc>, ApiError> {
    let run = state.store().cancel_run(&id).await?;
    // Agents holding attempts of this run learn of it through their held claim.
    state.wake().work_changed();
    state.wake().run_changed();
    tracing::info!(run = %run.id, "run cancel requested");
    state
        .audit(&caller.name, AuditAction::RunCancel, &run.id, json!({}))
        .await;
    Ok(Json(run))
}

/// `POST /runs/{id}/retry`: a new run of the same version that keeps the finished run's
/// successes.
pub(crate) async fn retry(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<RunDoc>), ApiError> {
    // No body at all means `{}`: re-run what did not succeed.
    let body: RetryRun = if body.iter().all(u8::is_ascii_whitespace) {
        RetryRun::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::bad_request(format!("invalid json body: {err}")))?
    };
    let created = state.store().retry_run(&id, body.from.as_deref()).await?;
    state.wake().work_changed();
    state.wake().run_changed();
    tracing::info!(run = %created.run.id, retry_of = %id, from = ?body.from, "run retried");
    let detail = json!({"retry_of": id, "from": body.from});
    state
        .audit(&caller.name, AuditAction::RunRetry, &created.run.id, detail)
        .await;
    Ok((StatusCode::CREATED, Json(created.run)))
}

pub(crate) async fn logs(
    _: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    Ok(Json(state.store().logs(&id, &query).await?))
}
