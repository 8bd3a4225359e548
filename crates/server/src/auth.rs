//! Who is calling: extractors that turn the bearer token into a principal of the right kind.
//!
//! The server's own two tokens are compared in memory; agent tokens are the store's to
//! look up. The SQLite store answers a token it found valid from memory and forgets every
//! remembered token when an agent registers or deregisters, so a deregistered agent's
//! token still stops working on its very next request.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use baton_store::Principal;

use crate::AppState;
use crate::error::ApiError;
use crate::tokens::{hash_token, hashes_equal};

/// The admin token: every route but the agent protocol.
#[derive(Debug)]
pub(crate) struct Admin;

/// The enrollment token: only registration.
#[derive(Debug)]
pub(crate) struct Enroll;

/// A registered agent's own token: the agent protocol.
#[derive(Debug)]
pub(crate) struct Agent {
    /// The agent's id.
    pub(crate) id: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await? {
            Principal::Admin => Ok(Admin),
            _ => Err(ApiError::forbidden("this route needs the admin token")),
        }
    }
}

impl FromRequestParts<AppState> for Enroll {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await? {
            Principal::Enroll => Ok(Enroll),
            _ => Err(ApiError::forbidden(
                "registration needs the enrollment token (agent.token)",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await? {
            Principal::Agent { agent_id } => Ok(Agent { id: agent_id }),
            _ => Err(ApiError::forbidden("this route needs an agent's own token")),
        }
    }
}

async fn principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let token = bearer(parts)?;
    let hash = hash_token(token);
    if hashes_equal(&hash, state.admin_hash()) {
        return Ok(Principal::Admin);
    }
    if hashes_equal(&hash, state.enroll_hash()) {
        return Ok(Principal::Enroll);
    }
    state
        .store()
        .authenticate(&hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("missing bearer token (Authorization: Bearer TOKEN)");
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}
