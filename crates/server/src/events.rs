//! Wake-ups from other replicas: the store's change events, fired into this server's own
//! wake-ups, so that a node made ready through one replica wakes a claim held on another.
//!
//! Only a store shared by several servers (PostgreSQL, through LISTEN/NOTIFY) has events. A
//! replica also hears its own changes, which it has already fired locally; the echo costs
//! each held request one spurious look, which is one query.

use baton_store::StoreEvent;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;

/// Forwards store events to the wake-ups until shutdown or until the store stops sending.
pub(crate) async fn forward(state: AppState, mut events: Receiver<StoreEvent>) {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = state.shutdown().cancelled() => return,
        };
        match event {
            // Work may also mean that a run is being canceled, whose agents learn of it
            // through their held claims: wake the cancel waiters too.
            Ok(StoreEvent::Work) => state.wake().work_changed(),
            Ok(StoreEvent::Run(_)) => state.wake().run_changed(),
            Err(RecvError::Lagged(missed)) => {
                // Which changes were missed is unknown: every held request looks again.
                tracing::debug!(missed, "store events lagged; waking every held request");
                state.wake().work_changed();
                state.wake().run_changed();
            }
            Err(RecvError::Closed) => {
                tracing::warn!(
                    "the store stopped sending change events; changes made through other \
                     replicas now reach held requests only when these time out"
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::time::Duration;

    use baton_store::testing::{fresh_pg_store, node, pg_url, workflow};
    use baton_store::{PgOptions, PgStore, Store as _};
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::forward;
    use crate::wake::{Woken, arm, wait};
    use crate::{AppState, ServerConfig, ServerTokens};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_through_another_replica_wake_held_requests() {
        let Some(url) = pg_url() else {
            // Past the test harness's capture, so that a plain `cargo test` shows it.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no BATON_TEST_PG_URL): postgres test \
                 changes_through_another_replica_wake_held_requests"
            );
            return;
        };
        let (a, schema) = fresh_pg_store(&url).await;
        let b = PgStore::connect(
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
        let config = ServerConfig::new(dir.path().join("data"));
        let tokens = ServerTokens::load_or_create(&config.data_dir).unwrap();
        let shutdown = CancellationToken::new();
        let state = AppState::new(Arc::new(b), &config, &tokens, shutdown.clone())
            .await
            .unwrap();
        let events = state.store().events().expect("postgres tells of changes");
        let task = tokio::spawn(forward(state.clone(), events));
        a.apply_workflow(&workflow("w", vec![node("a", &[])]), "# test\n")
            .await
            .unwrap();

        // The listener connects in the background: make changes until one is heard.
        let never = CancellationToken::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut work = std::pin::pin!(state.wake().work().notified());
            arm(work.as_mut());
            let mut runs = std::pin::pin!(state.wake().runs().notified());
            arm(runs.as_mut());
            a.create_run(&baton_api::CreateRun::latest("w"))
                .await
                .unwrap();
            let soon = Instant::now() + Duration::from_millis(500);
            if wait(work, soon, &never).await == Woken::Notified {
                // The new run's change arrives too.
                let far = Instant::now() + Duration::from_secs(30);
                assert_eq!(wait(runs, far, &never).await, Woken::Notified);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no wake-up from the other replica"
            );
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("forwarding ends on shutdown")
            .unwrap();
    }
}
