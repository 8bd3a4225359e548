//! The reaper routine: ends attempts whose lease ran out, so their nodes retry, and
//! enforces deadlines (a run's `timeout`, a node's queue timeout).
//!
//! It sleeps until the next lease expiry or deadline, but never longer than a second,
//! since a claim or a run created while it sleeps may set an earlier one.

use std::time::Duration;

use tokio::time::Instant;

use crate::AppState;
use crate::error::error_chain;

/// The longest the reaper sleeps, and how long it backs off after a store error.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest it sleeps, so that a lease due this very millisecond cannot make it spin.
const MIN_SLEEP_MS: u64 = 5;

/// Reaps expired leases and enforces deadlines until shutdown.
pub(crate) async fn run(state: AppState) {
    let store = state.store();
    loop {
        let leases = reap(&state).await;
        let deadlines = expire(&state).await;
        let now = Instant::now();
        let next = leases.into_iter().chain(deadlines).min().map(|at| {
            let ms = u64::try_from(at.saturating_sub(store.now_ms())).unwrap_or(0);
            now + Duration::from_millis(ms.max(MIN_SLEEP_MS))
        });
        let until = next.map_or(now + MAX_SLEEP, |next| next.min(now + MAX_SLEEP));
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = state.shutdown().cancelled() => return,
        }
    }
}

/// One reaping pass; returns when the next lease expires (epoch ms), if one is known.
async fn reap(state: &AppState) -> Option<i64> {
    match state.store().reap_expired().await {
        Ok(reaped) => {
            for attempt in &reaped.lost {
                tracing::info!(attempt, "attempt lost: its lease expired");
            }
            if !reaped.lost.is_empty() {
                state.wake().run_changed();
                // A lost attempt may be retried at once or after a back-off; held claims
                // must look again either way.
                state.wake().work_changed();
            }
            reaped.next_expiry
        }
        Err(err) => {
            tracing::warn!(error = %error_chain(&err), "lease reaping failed; retrying");
            None
        }
    }
}

/// One deadline pass; returns when the next deadline falls due (epoch ms), if one is known.
async fn expire(state: &AppState) -> Option<i64> {
    match state.store().expire_deadlines().await {
        Ok(expired) => {
            for run in &expired.runs {
                tracing::info!(run = %run, "run stopped: its timeout passed");
            }
            for (run, node) in &expired.nodes {
                tracing::info!(run = %run, node = %node, "node ended: no agent claimed it in time");
            }
            if !expired.runs.is_empty() || !expired.nodes.is_empty() {
                state.wake().run_changed();
            }
            if expired.canceling {
                // Agents holding attempts of a stopped run learn of it through held claims.
                state.wake().work_changed();
            }
            expired.next_due
        }
        Err(err) => {
            tracing::warn!(error = %error_chain(&err), "enforcing deadlines failed; retrying");
            None
        }
    }
}
