//! `GET /api/v1/agents`.

use axum::extract::State;
use baton_api::AgentDoc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;

pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentDoc>>, ApiError> {
    Ok(Json(state.store().list_agents(state.lease_ms()).await?))
}
