//! SIGINT and SIGTERM: the first cancels a token so work drains; the second exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Exit status after a second signal: 128 + SIGINT, the shell's convention.
const EXIT_AT_ONCE: i32 = 130;

/// Listens for SIGINT and SIGTERM until `done` is canceled: the first cancels `first`, the
/// second ends the process at once.
///
/// The handlers are installed before this returns, so a signal that arrives right after is
/// never lost to the default action.
pub(crate) fn listen(tracker: &TaskTracker, first: CancellationToken, done: CancellationToken) {
    let handlers =
        signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
    let (mut int, mut term) = match handlers {
        Ok(h) => h,
        Err(e) => {
            // Without handlers the default actions stay: a signal still ends the process.
            tracing::warn!(error = %e, "cannot install signal handlers");
            return;
        }
    };
    tracker.spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            () = done.cancelled() => return,
        }
        first.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            () = done.cancelled() => return,
        }
        eprintln!("second signal: exiting at once");
        // `exit` runs no destructor: end the steps of any agent in this process first.
        baton_agent::kill_running_steps();
        std::process::exit(EXIT_AT_ONCE);
    });
}
