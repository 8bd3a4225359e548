//! Named tokens: create (the token is shown once), list, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use baton_api::{AuditAction, CreateToken, CreatedToken, TokenDoc};
use baton_store::{ADMIN_TOKEN_NAME, NewToken};
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::tokens::{hash_token, new_user_token};

/// Longest lifetime a token may be given: ten years.
const MAX_EXPIRES_SECS: u64 = 10 * 366 * 24 * 3600;

pub(crate) async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    baton_core::check_token_name(&body.name).map_err(ApiError::bad_request)?;
    if body.name == ADMIN_TOKEN_NAME {
        return Err(ApiError::bad_request(format!(
            "the name {ADMIN_TOKEN_NAME:?} is the admin token file's; pick another"
        )));
    }
    let expires_in_ms = match body.expires_in_secs {
        Some(0) => return Err(ApiError::bad_request("expires_in_secs must be at least 1")),
        Some(s) if s > MAX_EXPIRES_SECS => {
            return Err(ApiError::bad_request(format!(
                "expires_in_secs is at most {MAX_EXPIRES_SECS} (ten years)"
            )));
        }
        s => s.map(|s| s * 1000),
    };
    let (token, prefix) = new_user_token();
    let info = state
        .store()
        .create_token(&NewToken {
            name: body.name,
            role: body.role,
            hash: hash_token(&token),
            prefix,
            expires_in_ms,
            created_by: caller.name.clone(),
        })
        .await?;
    tracing::info!(token = %info.name, role = %info.role, by = %caller.name, "token created");
    let detail = json!({"role": info.role, "expires_at": info.expires_at});
    state
        .audit(&caller.name, AuditAction::TokenCreate, &info.name, detail)
        .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<TokenDoc>>, ApiError> {
    Ok(Json(state.store().list_tokens().await?))
}

pub(crate) async fn revoke(
    caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TokenDoc>, ApiError> {
    let doc = state.store().revoke_token(&name).await?;
    tracing::info!(token = %doc.name, by = %caller.name, "token revoked");
    state
        .audit(&caller.name, AuditAction::TokenRevoke, &doc.name, json!({}))
        .await;
    Ok(Json(doc))
}
