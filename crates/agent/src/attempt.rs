//! One attempt's life on the agent: start, run, logs, artifacts, report.

use std::sync::Arc;

use baton_api::{Assignment, AttemptReport};
use baton_core::mask::Masker;
use baton_core::{Action, Reason};
use tokio_util::sync::CancellationToken;

use crate::artifacts;
use crate::backoff::Backoff;
use crate::functions::{self, Ended, Execution};
use crate::logs::{self, LogBuffer};
use crate::shared::Shared;
use crate::stop::{Stop, StopReason};

/// Runs an assignment to its report; the attempt must already be in `shared.held`, and is
/// let go of when this ends (even by a panic).
pub(crate) async fn run(shared: Arc<Shared>, a: Assignment, stop: Stop) {
    let _release = Release {
        shared: &shared,
        attempt_id: a.attempt_id,
    };
    tracing::debug!(
        attempt = a.attempt_id, run = %a.run_id, node = %a.node, number = a.attempt,
        "claimed"
    );
    // `start` goes out beside the work, so it never delays the spawn; the report waits for
    // it, so the server never sees them out of order. A `noop` has nothing to start: its
    // report alone (accepted from a pending attempt) saves a round trip.
    let starts = !matches!(&a.action, Action::Uses { function, .. } if function == "noop");
    let started = async {
        if starts {
            start(&shared, &a, &stop).await;
        }
    };
    let working = async {
        if starts {
            // The start request was just handed to its connection task, which runs on this
            // thread next (tokio's LIFO slot, which no other thread can steal from): let
            // it write the request before the spawn (a fork and an exec) holds the thread
            // for a millisecond. Otherwise the start reaches the server only then.
            tokio::task::yield_now().await;
        }
        work(&shared, &a, &stop).await
    };
    let ((), (execution, execution_masker)) = tokio::join!(started, working);
    let Execution { ended, work_dir } = execution;
    match ended {
        Ended::Finished {
            outcome,
            message,
            outputs,
        } if !stop.is_dropped() => {
            tracing::debug!(
                attempt = a.attempt_id, node = %a.node, state = %outcome.state,
                reason = %outcome.reason, "finished"
            );
            let mut report = AttemptReport {
                attempt_id: a.attempt_id,
                fence: a.fence,
                outcome,
                message,
                outputs,
            };
            // The message and outputs travel on to the server and to other nodes: no
            // secret value of this attempt goes with them.
            report.mask(&execution_masker);
            shared.reports.send(report, &stop).await;
        }
        _ => tracing::info!(attempt = a.attempt_id, node = %a.node, "attempt dropped unreported"),
    }
    if let Some(dir) = work_dir {
        dir.remove().await;
    }
}

struct Release<'a> {
    shared: &'a Shared,
    attempt_id: i64,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.shared.held.remove(self.attempt_id);
    }
}

/// Runs the action, collects artifacts and ships all output; returns how it ended and the
/// masker of the attempt's secret values.
async fn work(shared: &Shared, a: &Assignment, stop: &Stop) -> (Execution, Masker) {
    let (mut logs, rx) = LogBuffer::channel();
    let masker = match Masker::new(a.secrets.values().map(|v| v.0.as_bytes())) {
        Ok(masker) => masker,
        Err(e) => {
            // Running unmasked would leak; refusing is the only safe answer.
            let ended = Ended::setup(format!("cannot mask this attempt's secrets: {e}"));
            return (
                Execution {
                    ended,
                    work_dir: None,
                },
                Masker::default(),
            );
        }
    };
    logs.mask_with(&masker);
    let produce = async move {
        let execution = match &a.refused {
            // The server could not give the attempt what it needs (a secret): nothing runs.
            Some(why) => Execution {
                ended: Ended::setup(why.clone()),
                work_dir: None,
            },
            None => {
                functions::execute(&shared.workspace, &shared.functions, a, stop, &mut logs).await
            }
        };
        shared.held.mark_finished(a.attempt_id);
        // Artifacts of work that ran to its end, successful or not (or with its outputs
        // refused).
        let ran = matches!(
            execution.ended,
            Ended::Finished { outcome, .. } if matches!(outcome.reason, Reason::Exit | Reason::Output)
        );
        if let Some(dir) = &execution.work_dir
            && ran
            && !stop.is_dropped()
            && !a.artifacts.is_empty()
        {
            let (id, fence) = (a.attempt_id, a.fence);
            artifacts::collect(
                &shared.client,
                id,
                fence,
                dir.path(),
                &a.artifacts,
                &mut logs,
            )
            .await;
        }
        logs.finish().await;
        execution
    };
    let upload = logs::upload(
        &shared.client,
        a.attempt_id,
        a.fence,
        rx,
        stop,
        &shared.give_up,
    );
    let (execution, ()) = tokio::join!(produce, upload);
    (execution, masker)
}

/// Tells the server the attempt started; a `409` stops the attempt as stale.
async fn start(shared: &Shared, a: &Assignment, stop: &Stop) {
    let mut backoff = Backoff::default();
    loop {
        match shared.client.start(a.attempt_id, a.fence).await {
            Ok(()) => return,
            Err(e) if e.is_stale() => {
                tracing::info!(
                    attempt = a.attempt_id,
                    "start refused as stale; stopping the attempt"
                );
                stop.stop(StopReason::Stale);
                return;
            }
            Err(e) if e.is_retryable() && !shared.give_up.is_cancelled() && !stop.is_dropped() => {
                tracing::warn!(attempt = a.attempt_id, error = %e, "sending start failed; retrying");
                wait(&mut backoff, &shared.give_up).await;
            }
            Err(e) => {
                tracing::warn!(attempt = a.attempt_id, error = %e, "start not recorded");
                return;
            }
        }
    }
}

/// Sleeps the next back-off delay, cut short when retries must end.
async fn wait(backoff: &mut Backoff, give_up: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(backoff.next_delay()) => {}
        () = give_up.cancelled() => {}
    }
}
