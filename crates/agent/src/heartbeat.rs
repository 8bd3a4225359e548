//! The heartbeat loop: renews the leases of held attempts and kills those whose lease could
//! not be renewed in time.

use std::collections::HashSet;
use std::time::Duration;

use baton_api::{AttemptRef, Heartbeat};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, RETRY_MAX, RETRY_MIN};
use crate::shared::Shared;
use crate::stop::StopReason;

/// Beats every `heartbeat_ms` (sooner, with back-off, after a failure) until `done`.
pub(crate) async fn run(shared: &Shared, done: &CancellationToken) {
    let interval = shared.heartbeat_interval();
    let timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut backoff = Backoff::new(RETRY_MIN, interval.min(RETRY_MAX));
    let mut next = Instant::now() + interval;
    loop {
        // Until the next beat, kill attempts as their leases run out.
        while Instant::now() < next {
            let expiry = shared.held.expire(Instant::now(), shared.lease());
            let wake = expiry.map_or(next, |e| e.min(next));
            tokio::select! {
                () = done.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        let body = Heartbeat {
            attempts: shared.held.refs(),
        };
        let sent = Instant::now();
        let result = {
            let call = shared.client.heartbeat(&body, timeout);
            tokio::pin!(call);
            loop {
                let expiry = shared.held.expire(Instant::now(), shared.lease());
                tokio::select! {
                    r = &mut call => break r,
                    () = sleep_until(expiry) => {}
                    () = done.cancelled() => return,
                }
            }
        };
        match result {
            Ok(answer) => {
                backoff.reset();
                let stale: HashSet<i64> = answer.stale.iter().copied().collect();
                let renewed: Vec<AttemptRef> = body
                    .attempts
                    .into_iter()
                    .filter(|r| !stale.contains(&r.attempt_id))
                    .collect();
                shared.held.renewed(&renewed, sent);
                shared.set_lease(answer.lease_ms);
                for id in answer.cancel {
                    shared.held.stop(id, StopReason::Cancel);
                }
                for id in answer.stale {
                    if shared.held.stop(id, StopReason::Stale) {
                        tracing::info!(
                            attempt = id,
                            "the server says the attempt is stale; killing it"
                        );
                    }
                }
                next = sent + interval;
            }
            Err(e) if e.is_auth() => {
                shared.fail(e);
                next = Instant::now() + interval;
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; retrying");
                next = Instant::now() + backoff.next_delay();
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
