//! Who is calling: the authorization layer in front of every API route, and the extractors
//! handlers use to learn the caller it let in.
//!
//! The server's own two token files are compared in memory; every other token (named
//! tokens, agents' tokens) is the store's to look up, so a revoked or expired token is
//! refused on its very next request. The SQLite store answers an agent token it found valid
//! from memory and forgets every remembered token when an agent registers or deregisters.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use baton_api::Role;
use baton_store::Principal;

use crate::AppState;
use crate::access::{access_for, decide};
use crate::error::ApiError;
use crate::tokens::{hash_token, hashes_equal};

/// The authorization layer: finds what the matched route needs in the access table,
/// authenticates the bearer token and checks it, then hands the caller to the handler.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let access = {
        let path = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let route = path.strip_prefix(baton_api::API_PREFIX).unwrap_or(path);
        let access = access_for(req.method(), route);
        if access.is_none() {
            tracing::error!(method = %req.method(), route, "route missing from the access table");
        }
        access
    };
    let Some(access) = access else {
        return Err(ApiError::forbidden("this route has no access rule"));
    };
    let principal = principal(req.headers(), &state).await?;
    decide(access, &principal).map_err(|d| ApiError::forbidden(d.0))?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// A person's token that the access table let in: its name and role.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The token's name (`admin` for the admin token file).
    pub(crate) name: String,
    /// What it may do.
    pub(crate) role: Role,
}

/// A registered agent's own token.
#[derive(Debug)]
pub(crate) struct Agent {
    /// The agent's id.
    pub(crate) id: String,
}

/// The enrollment token.
#[derive(Debug)]
pub(crate) struct Enroll;

fn let_in(parts: &Parts) -> Result<&Principal, ApiError> {
    // Only reachable when a handler is mounted without the layer: refuse, never guess.
    parts
        .extensions
        .get::<Principal>()
        .ok_or_else(|| ApiError::internal("a route without the authorization layer"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match let_in(parts)? {
            Principal::User { name, role } => Ok(Caller {
                name: name.clone(),
                role: *role,
            }),
            _ => Err(ApiError::forbidden("this route needs a person's token")),
        }
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match let_in(parts)? {
            Principal::Agent { agent_id } => Ok(Agent {
                id: agent_id.clone(),
            }),
            _ => Err(ApiError::forbidden("this route needs an agent's own token")),
        }
    }
}

impl FromRequestParts<AppState> for Enroll {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match let_in(parts)? {
            Principal::Enroll => Ok(Enroll),
            _ => Err(ApiError::forbidden(
                "registration needs the enrollment token (agent.token)",
            )),
        }
    }
}

async fn principal(
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Result<Principal, ApiError> {
    let token = bearer(headers)?;
    let hash = hash_token(token);
    if hashes_equal(&hash, state.admin_hash()) {
        return Ok(Principal::admin());
    }
    if hashes_equal(&hash, state.enroll_hash()) {
        return Ok(Principal::Enroll);
    }
    state
        .store()
        .authenticate(&hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown, revoked or expired token"))
}

fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("missing bearer token (Authorization: Bearer TOKEN)");
    let value = headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}
