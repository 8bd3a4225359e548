//! The agent protocol: register, claim (a long poll), heartbeat, start, report, logs,
//! deregister.

use std::pin::pin;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use baton_api::{
    AppendLogs, AttemptRef, AttemptReport, ClaimRequest, ClaimResponse, Heartbeat,
    HeartbeatResponse, RegisterAgent, Registered, Report, ReportBatch, ReportBatchResponse,
    ReportResponse, ReportResult, StartAttempt,
};
use baton_core::{AttemptState, Outputs};
use tokio::time::Instant;

use crate::AppState;
use crate::auth::{Agent, Enroll};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::tokens::{hash_token, new_agent_token};
use crate::wake::{self, Woken};

/// The longest a claim is held.
const MAX_CLAIM_WAIT_MS: u64 = 60_000;
/// Most reports in one batch.
const MAX_BATCH: usize = 1_000;

pub(crate) async fn register(
    _: Enroll,
    State(state): State<AppState>,
    Json(body): Json<RegisterAgent>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    // Whatever an agent says about itself ends up in lists, logs and terminals.
    body.check()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token = new_agent_token();
    let agent_id = state
        .store()
        .register_agent(&body, &hash_token(&token))
        .await?;
    tracing::info!(agent = %agent_id, name = %body.name, slots = body.slots, "agent registered");
    let lease_ms = state.lease_ms();
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            agent_id,
            token,
            lease_ms,
            heartbeat_ms: lease_ms / 3,
        }),
    ))
}

/// `POST /agent/claim`: answers as soon as there is work for the agent or news of a cancel,
/// else holds until a wake-up, a backed-off node falling due, the deadline, or shutdown.
pub(crate) async fn claim(
    agent: Agent,
    State(state): State<AppState>,
    Json(body): Json<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    let store = state.store();
    let deadline = Instant::now() + Duration::from_millis(body.wait_ms.min(MAX_CLAIM_WAIT_MS));
    // With no free slot only cancels matter: nodes becoming ready, which happens all
    // the time under load, must not make every full agent's claim look again.
    let channel = if body.max == 0 {
        state.wake().cancels()
    } else {
        state.wake().work()
    };
    loop {
        let mut woken = pin!(channel.notified());
        wake::arm(woken.as_mut());
        let looked_at = store.now_ms();
        let mut claimed = store.claim(&agent.id, body.max, state.lease_ms()).await?;
        if !claimed.assignments.is_empty() || !claimed.cancel.is_empty() {
            state
                .secrets()
                .resolve(store.as_ref(), &mut claimed.assignments)
                .await?;
            if !claimed.assignments.is_empty() {
                state.wake().run_changed();
            }
            return Ok(Json(ClaimResponse {
                assignments: claimed.assignments,
                cancel: claimed.cancel,
            }));
        }
        // A node already due when we looked, yet not handed out, is not for this agent
        // (selector, function, resource): waiting on it would spin.
        let due = claimed
            .next_ready_at
            .filter(|&at| at > looked_at)
            .map(|at| {
                let ms = u64::try_from(at - store.now_ms()).unwrap_or(0);
                Instant::now() + Duration::from_millis(ms)
            });
        let until = due.map_or(deadline, |due| due.min(deadline));
        match wake::wait(woken, until, state.shutdown()).await {
            Woken::Notified => continue,
            Woken::Timeout if Instant::now() < deadline => continue,
            Woken::Timeout | Woken::Shutdown => {
                return Ok(Json(ClaimResponse {
                    assignments: Vec::new(),
                    cancel: Vec::new(),
                }));
            }
        }
    }
}

pub(crate) async fn heartbeat(
    agent: Agent,
    State(state): State<AppState>,
    Json(body): Json<Heartbeat>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let lease_ms = state.lease_ms();
    let result = state
        .store()
        .heartbeat(&agent.id, &body.attempts, lease_ms)
        .await?;
    Ok(Json(HeartbeatResponse {
        lease_ms,
        cancel: result.cancel,
        stale: result.stale,
    }))
}

pub(crate) async fn start(
    agent: Agent,
    State(state): State<AppState>,
    Path(attempt_id): Path<i64>,
    Json(body): Json<StartAttempt>,
) -> Result<StatusCode, ApiError> {
    let attempt = AttemptRef {
        attempt_id,
        fence: body.fence,
    };
    state.store().start_attempt(&agent.id, attempt).await?;
    state.wake().run_changed();
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn report(
    agent: Agent,
    State(state): State<AppState>,
    Path(attempt_id): Path<i64>,
    Json(body): Json<Report>,
) -> Result<Json<ReportResponse>, ApiError> {
    if !body.outcome.state.is_terminal() {
        return Err(ApiError::bad_request(format!(
            "a report must end the attempt; {:?} is not an ending",
            body.outcome.state.as_str()
        )));
    }
    check_outputs(attempt_id, &body.outputs)?;
    let mut report = AttemptReport {
        attempt_id,
        fence: body.fence,
        outcome: body.outcome,
        message: body.message,
        outputs: body.outputs,
    };
    // Agents mask what they were given; this catches what reaches the server all the same.
    report.mask(&state.secrets().masker());
    let reported = state.store().report_attempt(&agent.id, &report).await?;
    if !reported.duplicate {
        state.wake().run_changed();
        // An ending other than success may have scheduled a retry after a back-off, which
        // `woke` does not cover: held claims must look again to learn when it falls due.
        if reported.woke || reported.outcome.state != AttemptState::Success {
            state.wake().work_ready();
        }
    }
    Ok(Json(ReportResponse {
        outcome: reported.outcome,
    }))
}

/// `POST /agent/reports`: several reports and a claim for the slots they free, answered at
/// once (the claim part never waits).
pub(crate) async fn report_batch(
    agent: Agent,
    State(state): State<AppState>,
    Json(body): Json<ReportBatch>,
) -> Result<Json<ReportBatchResponse>, ApiError> {
    if body.reports.is_empty() {
        return Err(ApiError::bad_request("a batch needs at least one report"));
    }
    if body.reports.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds at most {MAX_BATCH} reports"
        )));
    }
    if let Some(r) = body.reports.iter().find(|r| !r.outcome.state.is_terminal()) {
        return Err(ApiError::bad_request(format!(
            "a report must end the attempt; {:?} (attempt {}) is not an ending",
            r.outcome.state.as_str(),
            r.attempt_id
        )));
    }
    for r in &body.reports {
        check_outputs(r.attempt_id, &r.outputs)?;
    }
    // Only the reported attempts' slots are known to be free.
    let want = body
        .want
        .min(u32::try_from(body.reports.len()).unwrap_or(u32::MAX));
    let mut reports = body.reports;
    let masker = state.secrets().masker();
    for r in &mut reports {
        r.mask(&masker);
    }
    let mut done = state
        .store()
        .report_batch(&agent.id, &reports, want, state.lease_ms())
        .await?;
    state
        .secrets()
        .resolve(state.store().as_ref(), &mut done.assignments)
        .await?;
    let fresh = || done.reports.iter().flatten().filter(|r| !r.duplicate);
    if fresh().next().is_some() || !done.assignments.is_empty() {
        state.wake().run_changed();
    }
    // As for a single report: an ending other than success may have scheduled a retry
    // after a back-off, which held claims must learn the time of.
    if done.woke || fresh().any(|r| r.outcome.state != AttemptState::Success) {
        state.wake().work_ready();
    }
    let results = reports
        .iter()
        .zip(&done.reports)
        .map(|(sent, stored)| ReportResult {
            attempt_id: sent.attempt_id,
            outcome: stored.as_ref().map(|r| r.outcome),
        })
        .collect();
    Ok(Json(ReportBatchResponse {
        results,
        assignments: done.assignments,
    }))
}

/// Refuses outputs the agent should have refused itself: the server never trusts one.
fn check_outputs(attempt_id: i64, outputs: &Outputs) -> Result<(), ApiError> {
    baton_core::check_outputs(outputs)
        .map_err(|e| ApiError::bad_request(format!("outputs of attempt {attempt_id} refused: {e}")))
}

pub(crate) async fn logs(
    agent: Agent,
    State(state): State<AppState>,
    Path(attempt_id): Path<i64>,
    Json(body): Json<AppendLogs>,
) -> Result<StatusCode, ApiError> {
    let attempt = AttemptRef {
        attempt_id,
        fence: body.fence,
    };
    let masker = state.secrets().masker();
    let data = masker.mask_str(&body.data);
    state
        .store()
        .append_log(&agent.id, attempt, body.seq, body.stream, &data)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn deregister(
    agent: Agent,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    state.store().deregister_agent(&agent.id).await?;
    // Its attempts are left to their leases, but a claim it still holds should end.
    state.wake().work_changed();
    tracing::info!(agent = %agent.id, "agent deregistered");
    Ok(StatusCode::NO_CONTENT)
}
