//! The claim loop: one long poll outstanding at all times.
//!
//! The poll asks for as many attempts as there are free slots, possibly 0 so that cancels
//! still arrive through it. Under load slots are mostly refilled by the answers to
//! reports (`reports`), not by this poll. When a slot frees while a `max: 0` poll is out
//! and stays free, that poll is dropped and a new one asks for work at once. A poll with
//! `max > 0` is never dropped for that, since an answer lost in flight would strand its
//! attempts until their leases end.

use std::sync::Arc;
use std::time::Duration;

use baton_api::{Assignment, AttemptRef, ClaimRequest, ClaimResponse};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::attempt;
use crate::backoff::{Backoff, RETRY_MIN};
use crate::shared::Shared;
use crate::stop::{Stop, StopReason};

/// How long the server may hold a claim.
pub(crate) const CLAIM_WAIT_MS: u64 = 30_000;
/// Longest pause after answers that bring nothing new.
const IDLE_MAX: Duration = Duration::from_secs(1);

/// Claims and starts work until `shared.stopping` is cancelled.
pub(crate) async fn run(shared: &Arc<Shared>, tracker: &TaskTracker) {
    let mut errors = Backoff::default();
    let mut idle = Backoff::new(RETRY_MIN, IDLE_MAX);
    loop {
        let max = shared.held.free_slots();
        let request = ClaimRequest {
            max,
            wait_ms: CLAIM_WAIT_MS,
        };
        let sent = Instant::now();
        let call = shared.client.claim(&request);
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                biased;
                () = shared.stopping.cancelled() => return,
                // A slot may free only for a report's answer to fill it again at once:
                // keep the poll (dropping it costs its connection) unless one is free.
                () = shared.held.freed(), if max == 0 => {
                    if shared.held.free_slots() > 0 {
                        break None;
                    }
                }
                r = &mut call => break Some(r),
            }
        };
        let Some(result) = result else {
            continue;
        };
        let response = match result {
            Ok(response) => response,
            Err(e) if e.is_auth() => {
                shared.fail(e);
                return;
            }
            Err(e) => {
                if e.is_retryable() {
                    tracing::warn!(error = %e, "claim failed; retrying");
                } else {
                    tracing::error!(error = %e, "claim rejected; retrying");
                }
                if pause(shared, errors.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        errors.reset();
        let news = take(shared, tracker, response);
        // A server that keeps answering at once with nothing new (cancels already being
        // carried out) must not turn this loop into a busy one.
        let quick = sent.elapsed() < Duration::from_millis(CLAIM_WAIT_MS / 2);
        if news || !quick {
            idle.reset();
        } else if pause(shared, idle.next_delay()).await {
            return;
        }
    }
}

/// Starts the assignments and carries out the cancels; true when anything was new.
fn take(shared: &Arc<Shared>, tracker: &TaskTracker, response: ClaimResponse) -> bool {
    let mut news = !response.assignments.is_empty();
    for id in response.cancel {
        if !shared.held.is_stopping(id) && shared.held.stop(id, StopReason::Cancel) {
            tracing::debug!(attempt = id, "canceled by the server");
            news = true;
        }
    }
    start_assignments(shared, tracker, response.assignments);
    news
}

/// Holds each new attempt and starts its task on `tracker`.
pub(crate) fn start_assignments(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    assignments: Vec<Assignment>,
) {
    for a in assignments {
        let stop = Stop::new();
        let r = AttemptRef {
            attempt_id: a.attempt_id,
            fence: a.fence,
        };
        if shared.held.insert(r, stop.clone(), Instant::now()) {
            tracker.spawn(attempt::run(Arc::clone(shared), a, stop));
        } else {
            tracing::warn!(
                attempt = a.attempt_id,
                "the server handed out an attempt already held"
            );
        }
    }
}

/// Waits `delay`, or less when a slot frees; true when the agent is stopping.
async fn pause(shared: &Shared, delay: Duration) -> bool {
    tokio::select! {
        () = shared.stopping.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
        () = shared.held.freed() => false,
    }
}
