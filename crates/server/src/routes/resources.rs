//! `GET /api/v1/resources`.

use axum::extract::State;
use baton_api::ResourceDoc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;

pub(crate) async fn list(
    _: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<ResourceDoc>>, ApiError> {
    Ok(Json(state.store().resources().await?))
}
