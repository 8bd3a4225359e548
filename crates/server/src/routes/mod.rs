//! The HTTP routes, one file per resource, and the router that joins them.

mod agent_protocol;
mod agents;
mod artifacts;
mod audit;
mod health;
mod resources;
mod runs;
mod secrets;
mod tokens;
mod workflows;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use tokio::time::Instant;

use crate::AppState;
use crate::auth;
use crate::error::ApiError;

/// Limit of a workflow apply: a 1 MiB file, escaped into JSON.
const WORKFLOW_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Limit of a log chunk.
const LOG_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Limit of a report or a batch of them: their outputs (at most 64 KiB each) may need up to
/// six bytes of JSON per byte; agents batch no more outputs than fit.
const REPORT_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Limit of every other JSON body.
const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Every route of the API, on the given state.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/workflows",
            post(workflows::apply)
                .layer(DefaultBodyLimit::max(WORKFLOW_BODY_LIMIT))
                .get(workflows::list),
        )
        .route("/workflows/{name}", get(workflows::show))
        .route(
            "/workflows/{name}/versions/{version}",
            get(workflows::version),
        )
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/retry", post(runs::retry))
        .route("/runs/{id}/logs", get(runs::logs))
        .route("/runs/{id}/artifacts", get(artifacts::list))
        .route(
            "/runs/{id}/artifacts/{node}/{attempt}/{*path}",
            get(artifacts::download),
        )
        .route("/agents", get(agents::list))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{name}/revoke", post(tokens::revoke))
        .route("/secrets", get(secrets::list))
        .route("/secrets/{name}", put(secrets::put).delete(secrets::delete))
        .route("/resources", get(resources::list))
        .route("/audit", get(audit::list))
        .route("/agent/register", post(agent_protocol::register))
        .route("/agent/claim", post(agent_protocol::claim))
        .route("/agent/heartbeat", post(agent_protocol::heartbeat))
        .route("/agent/attempts/{id}/start", post(agent_protocol::start))
        .route(
            "/agent/attempts/{id}/report",
            post(agent_protocol::report).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .route(
            "/agent/reports",
            post(agent_protocol::report_batch).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .route(
            "/agent/attempts/{id}/logs",
            post(agent_protocol::logs).layer(DefaultBodyLimit::max(LOG_BODY_LIMIT)),
        )
        .route(
            "/agent/attempts/{id}/artifacts/{*path}",
            put(artifacts::upload),
        )
        .route("/agent/deregister", post(agent_protocol::deregister))
        // Every route above: the access table decides who may call it, before any handler.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ));

    Router::new()
        .route("/healthz", get(health::healthz))
        .nest(baton_api::API_PREFIX, api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

async fn log_request(req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    // The path only: query strings and headers may carry things that do not belong in logs.
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
