//! Wake-ups for held requests: "work may be claimable", "an agent may have attempts to
//! cancel" and "some run changed".
//!
//! A held request arms its wake-up *before* it looks at the store (`Notified::enable`),
//! so a change that lands between the look and the wait still wakes it: no lost wake-up,
//! and no polling interval. The cost is a spurious look now and then, which is one query.
//! Claims of agents with no free slot wait only for cancels, so that the steady stream
//! of "work is ready" wake-ups under load never reaches them.

use std::pin::Pin;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The two wake-up channels, shared by every handler and routine.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    work: Notify,
    cancels: Notify,
    runs: Notify,
}

impl Wake {
    /// Nodes may have become claimable, or an agent's attempts were canceled.
    pub(crate) fn work_changed(&self) {
        self.work.notify_waiters();
        self.cancels.notify_waiters();
    }

    /// Nodes may have become claimable (and nothing was canceled).
    pub(crate) fn work_ready(&self) {
        self.work.notify_waiters();
    }

    /// Some run's document changed.
    pub(crate) fn run_changed(&self) {
        self.runs.notify_waiters();
    }

    /// The wake-up for claimable work; arm it with [`arm`] before looking at the store.
    pub(crate) fn work(&self) -> &Notify {
        &self.work
    }

    /// The wake-up for cancels (a subset of [`work`](Self::work)'s events); arm it with
    /// [`arm`] before looking at the store.
    pub(crate) fn cancels(&self) -> &Notify {
        &self.cancels
    }

    /// The wake-up for run changes; arm it with [`arm`] before looking at the store.
    pub(crate) fn runs(&self) -> &Notify {
        &self.runs
    }
}

/// Registers a pinned `notified()` future as a waiter now, so that a `notify_waiters`
/// from here on reaches it even before it is first polled.
pub(crate) fn arm(notified: Pin<&mut Notified<'_>>) {
    notified.enable();
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The wake-up fired: look again.
    Notified,
    /// The given instant passed.
    Timeout,
    /// The server is shutting down: answer now.
    Shutdown,
}

/// Waits for an armed wake-up, an instant, or shutdown, whichever comes first.
pub(crate) async fn wait(
    notified: Pin<&mut Notified<'_>>,
    until: Instant,
    shutdown: &CancellationToken,
) -> Woken {
    tokio::select! {
        () = notified => Woken::Notified,
        () = tokio::time::sleep_until(until) => Woken::Timeout,
        () = shutdown.cancelled() => Woken::Shutdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_change_between_look_and_wait_is_not_lost() {
        let wake = Wake::default();
        let mut armed = std::pin::pin!(wake.work().notified());
        arm(armed.as_mut());
        // The change lands after arming but before waiting.
        wake.work_changed();
        let far = Instant::now() + Duration::from_secs(3600);
        let woken = wait(armed, far, &CancellationToken::new()).await;
        assert_eq!(woken, Woken::Notified);
    }

    #[tokio::test]
    async fn ready_work_does_not_wake_cancel_waiters() {
        let wake = Wake::default();
        let mut cancels = std::pin::pin!(wake.cancels().notified());
        arm(cancels.as_mut());
        let mut work = std::pin::pin!(wake.work().notified());
        arm(work.as_mut());
        wake.work_ready();
        let soon = Instant::now() + Duration::from_millis(20);
        let token = CancellationToken::new();
        assert_eq!(wait(work, soon, &token).await, Woken::Notified);
        assert_eq!(wait(cancels.as_mut(), soon, &token).await, Woken::Timeout);
        // A change that may cancel attempts reaches both.
        wake.work_changed();
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(wait(cancels, far, &token).await, Woken::Notified);
    }

    #[tokio::test]
    async fn shutdown_ends_a_wait() {
        let wake = Wake::default();
        let token = CancellationToken::new();
        token.cancel();
        let far = Instant::now() + Duration::from_secs(3600);
        let mut armed = std::pin::pin!(wake.runs().notified());
        arm(armed.as_mut());
        assert_eq!(wait(armed, far, &token).await, Woken::Shutdown);
    }
}
