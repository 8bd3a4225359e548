//! Draining on shutdown: running attempts get the grace, then are killed and reported.

use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::shared::Shared;
use crate::stop::StopReason;

/// Waits for the attempt tasks up to `grace`, then stops the rest as `shutdown` and waits
/// for their reports (one try each).
pub(crate) async fn drain(shared: &Shared, tracker: &TaskTracker, grace: Duration) {
    tracker.close();
    if tracker.is_empty() {
        return;
    }
    tracing::info!(attempts = tracker.len(), grace = ?grace, "stopped claiming; letting running attempts finish");
    if tokio::time::timeout(grace, tracker.wait()).await.is_ok() {
        return;
    }
    let stopped = shared.held.stop_all(StopReason::Shutdown);
    tracing::info!(
        attempts = stopped,
        "shutdown grace over; killing the remaining attempts"
    );
    shared.give_up.cancel();
    tracker.wait().await;
}
