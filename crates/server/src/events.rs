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
