//! `GET /healthz`: no token, for load balancers and tests waiting on a start.

use serde::Serialize;

use crate::extract::Json;

#[derive(Debug, Serialize)]
pub(crate) struct Health {
    status: &'static str,
}

pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}
