//! The reaper routine: ends attempts whose lease ran out, so their nodes retry, and
//! enforces deadlines (a run's `timeout`, a node's queue timeout).
//!
//! It sleeps until the next lease expiry or deadline, but never longer than a second,
//! since a claim or a run created while it sleeps may set an earlier one.
//!
//! With several replicas on one database, one at a time runs the passes: each pass first
//! takes or renews the store's lead of the routine (`Store::try_lead`). The others only
//! try, once a second, so one of them takes over within [`LEAD_TTL_MS`] of the leader's
//! death. Two replicas passing at once would be harmless (every change is a
//! compare-and-set), only wasteful.

use std::time::Duration;

use tokio::time::Instant;

use crate::AppState;
use crate::error::error_chain;

/// The longest the reaper sleeps, and how long it backs off after a store error.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest it sleeps, so that a lease due this very millisecond cannot make it spin.
const MIN_SLEEP_MS: u64 = 5;
/// The routine's name in the store's leads.
const ROUTINE: &str = "reaper";
/// How long a lead lasts after its last renewal. The leader renews it every pass, at least
/// once per [`MAX_SLEEP`]; the margin covers a slow pass.
const LEAD_TTL_MS: u64 = 5_000;
/// How long a clean shutdown waits to hand the lead over, so that a database that is gone
/// cannot hold the shutdown up.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(2);

/// Reaps expired leases and enforces deadlines until shutdown, while this server leads.
pub(crate) async fn run(state: AppState) {
    let store = state.store();
    let holder = holder_id();
    // A single server always leads: assuming so from the start keeps its log quiet.
    let mut leading = true;
    loop {
        let now = Instant::now();
        let until = if lead(&state, &holder, &mut leading).await {
            let leases = reap(&state).await;
            let deadlines = expire(&state).await;
            let next = leases.into_iter().chain(deadlines).min().map(|at| {
                let ms = u64::try_from(at.saturating_sub(store.now_ms())).unwrap_or(0);
                Instant::now() + Duration::from_millis(ms.max(MIN_SLEEP_MS))
            });
            next.map_or(now + MAX_SLEEP, |next| next.min(now + MAX_SLEEP))
        } else {
            now + MAX_SLEEP
        };
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = state.shutdown().cancelled() => break,
        }
    }
    if leading {
        // Another replica takes over at its next try rather than when the lead runs out.
        match tokio::time::timeout(RESIGN_TIMEOUT, store.resign_lead(ROUTINE, &holder)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(error = %error_chain(&err), "could not hand the reaper over");
            }
            Err(_) => tracing::debug!("handing the reaper over timed out"),
        }
    }
}

/// Takes or renews the lead of the reaper; says whether this server runs the passes now,
/// logging each change.
async fn lead(state: &AppState, holder: &str, leading: &mut bool) -> bool {
    let now = match state.store().try_lead(ROUTINE, holder, LEAD_TTL_MS).await {
        Ok(now) => now,
        Err(err) => {
            tracing::warn!(error = %error_chain(&err), "taking the reaper's lead failed; retrying");
            false
        }
    };
    if now != *leading {
        if now {
            tracing::info!(holder, "this server now runs the reaper");
        } else {
            tracing::info!(holder, "another server runs the reaper");
        }
        *leading = now;
    }
    now
}

/// A name for this server among the replicas: its host, its process, and a random part so
/// that a restarted process with a reused pid is another holder.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut nonce = [0u8; 4];
    rand::fill(&mut nonce);
    format!(
        "{}:{}:{}",
        host.trim(),
        std::process::id(),
        hex::encode(nonce)
    )
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
            if expired.canceling || expired.woke {
                // Agents holding attempts of a stopped run learn of it through held claims,
                // and so do agents that can take a node a trigger rule just readied.
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::time::Duration;

    use baton_core::Reason;
    use baton_store::testing::{agent, fresh_pg_store, node, pg_url, start_run, workflow};
    use baton_store::{PgOptions, PgStore, Store};
    use tokio_util::sync::CancellationToken;

    use super::{LEAD_TTL_MS, ROUTINE, run};
    use crate::{AppState, ServerConfig, ServerTokens};

    async fn state(store: PgStore, dir: &std::path::Path) -> AppState {
        let mut config = ServerConfig::new(dir.to_path_buf());
        // Replicas of one database share the secrets key.
        config.secrets_key = Some("ab".repeat(32));
        let tokens = ServerTokens::load_or_create(dir).unwrap();
        AppState::new(Arc::new(store), &config, &tokens, CancellationToken::new())
            .await
            .unwrap()
    }

    async fn first_attempt_lost(store: &dyn Store, run: &str) -> bool {
        let doc = store.run(run).await.unwrap();
        doc.nodes["a"]
            .attempts
            .first()
            .is_some_and(|a| a.reason == Some(Reason::Lost))
    }

    /// A replica that dies while it runs the reaper (and so never hands it over) leaves
    /// it to another once its lead ran out: no lease stays unreaped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_replica_takes_the_reaper_over_from_a_dead_one() {
        let Some(url) = pg_url() else {
            // Past the test harness's capture, so that a plain `cargo test` shows it.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no BATON_TEST_PG_URL): postgres test \
                 another_replica_takes_the_reaper_over_from_a_dead_one"
            );
            return;
        };
        let (store_a, schema) = fresh_pg_store(&url).await;
        let store_b = PgStore::connect(
            &url,
            PgOptions {
                schema: Some(schema.name().to_owned()),
                pool_size: 2,
                ..PgOptions::default()
            },
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = state(store_a.clone(), &dir.path().join("a")).await;
        let b = state(store_b, &dir.path().join("b")).await;

        let leader = tokio::spawn(run(a));
        // Once replica a leads, nobody else may.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while store_a
            .try_lead(ROUTINE, "probe", LEAD_TTL_MS)
            .await
            .unwrap()
        {
            store_a.resign_lead(ROUTINE, "probe").await.unwrap();
            assert!(tokio::time::Instant::now() < deadline, "a never led");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Killed, as by SIGKILL: it does not resign.
        leader.abort();
        let _ = leader.await;

        let run_id = start_run(&store_a, &workflow("w", vec![node("a", &[])])).await;
        let agent_id = agent(&store_a, "silent", &[], &[]).await;
        let claimed = store_a.claim(&agent_id, 1, 100).await.unwrap();
        assert_eq!(claimed.assignments.len(), 1);
        let follower = tokio::spawn(run(b.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !first_attempt_lost(&store_a, &run_id).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the expired lease was never reaped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b.shutdown().cancel();
        follower.await.unwrap();
        // A clean shutdown hands the lead over at once.
        assert!(
            store_a
                .try_lead(ROUTINE, "next", LEAD_TTL_MS)
                .await
                .unwrap()
        );
    }
}
