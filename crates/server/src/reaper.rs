//! The lease reaper routine: ends attempts whose lease ran out, so their nodes retry.
//!
//! It sleeps until the next lease is due to expire, but never longer than a second, since
//! a claim made while it sleeps may lease an attempt for less than that.

use std::time::Duration;

use tokio::time::Instant;

use crate::AppState;
use crate::error::error_chain;

/// The longest the reaper sleeps, and how long it backs off after a store error.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest it sleeps, so that a lease due this very millisecond cannot make it spin.
const MIN_SLEEP_MS: u64 = 5;

/// Reaps expired leases until shutdown.
pub(crate) async fn run(state: AppState) {
    let store = state.store();
    loop {
        let until = match store.reap_expired().await {
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
                let now = Instant::now();
                let next = reaped.next_expiry.map(|at| {
                    let ms = u64::try_from(at.saturating_sub(store.now_ms())).unwrap_or(0);
                    now + Duration::from_millis(ms.max(MIN_SLEEP_MS))
                });
                next.map_or(now + MAX_SLEEP, |next| next.min(now + MAX_SLEEP))
            }
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "lease reaping failed; retrying");
                Instant::now() + MAX_SLEEP
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = state.shutdown().cancelled() => return,
        }
    }
}
