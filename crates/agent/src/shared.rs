//! State shared by the loops and attempt tasks of one registered agent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::RequestError;
use crate::held::Held;
use crate::registry::Registry;
use crate::reports::Reports;
use crate::workdir::Workspace;

pub(crate) struct Shared {
    /// Calls with the agent's own token.
    pub(crate) client: Client,
    /// Where the attempts' work dirs are, and what their processes' environment holds.
    pub(crate) workspace: Workspace,
    /// What each `uses:` name means here.
    pub(crate) functions: Registry,
    pub(crate) held: Held,
    /// Endings waiting to be sent in the next batch.
    pub(crate) reports: Reports,
    /// Cancelled when the agent stops claiming: shutdown, or a fatal error.
    pub(crate) stopping: CancellationToken,
    /// Cancelled when the shutdown grace is over: retries end, each call gets one more try.
    pub(crate) give_up: CancellationToken,
    lease_ms: AtomicU64,
    heartbeat_ms: u64,
    fatal: Mutex<Option<RequestError>>,
}

impl Shared {
    pub(crate) fn new(
        client: Client,
        workspace: Workspace,
        functions: Registry,
        slots: u32,
        lease_ms: u64,
        heartbeat_ms: u64,
        stopping: CancellationToken,
    ) -> Shared {
        Shared {
            client,
            workspace,
            functions,
            held: Held::new(slots),
            reports: Reports::new(),
            stopping,
            give_up: CancellationToken::new(),
            lease_ms: AtomicU64::new(lease_ms),
            heartbeat_ms,
            fatal: Mutex::new(None),
        }
    }

    /// The lease term the server last announced.
    pub(crate) fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn set_lease(&self, ms: u64) {
        if ms > 0 {
            self.lease_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// The server's heartbeat interval, or a third of the lease when it gave none.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        let ms = if self.heartbeat_ms > 0 {
            self.heartbeat_ms
        } else {
            self.lease_ms.load(Ordering::Relaxed) / 3
        };
        Duration::from_millis(ms.max(50))
    }

    /// Records an error the agent cannot go on after, and stops claiming.
    pub(crate) fn fail(&self, error: RequestError) {
        let mut fatal = self.fatal.lock().unwrap_or_else(PoisonError::into_inner);
        if fatal.is_none() {
            tracing::error!(error = %error, "the server refused the agent's token; stopping");
            *fatal = Some(error);
        }
        drop(fatal);
        self.stopping.cancel();
    }

    pub(crate) fn take_fatal(&self) -> Option<RequestError> {
        self.fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}
