//! Asking a running attempt to stop, and why.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why an attempt is being stopped before its work ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The user canceled the run: kill, report `canceled`/`canceled`.
    Cancel,
    /// The server says the attempt is no longer ours: kill, report nothing.
    Stale,
    /// The lease could not be renewed in time: kill, report nothing (the server reaps it).
    LeaseLost,
    /// The agent is shutting down past its grace: kill, report `canceled`/`shutdown`.
    Shutdown,
}

impl StopReason {
    /// Whether the attempt's ending is still ours to report.
    pub(crate) fn reports(self) -> bool {
        matches!(self, StopReason::Cancel | StopReason::Shutdown)
    }
}

/// A one-shot stop signal carrying its first reason; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Stop {
    pub(crate) fn new() -> Stop {
        Stop::default()
    }

    /// Asks the attempt to stop; the first reason given wins.
    pub(crate) fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// The reason, once stopped.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// Resolves when the attempt is asked to stop.
    pub(crate) async fn stopped(&self) -> StopReason {
        self.token.cancelled().await;
        // `stop` sets the reason before it cancels the token.
        self.reason().unwrap_or(StopReason::Cancel)
    }

    /// True when stopped for a reason that leaves nothing to report.
    pub(crate) fn is_dropped(&self) -> bool {
        self.reason().is_some_and(|r| !r.reports())
    }
}
