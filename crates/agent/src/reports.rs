//! Reports, sent in batches that also refill the slots they free.
//!
//! An attempt hands its ending to [`Reports::send`] and waits for the verdict. One loop,
//! [`run`], sends everything queued as one `POST /agent/reports` that asks for as many new
//! attempts as the batch frees slots. Whatever finishes while a batch is in flight goes
//! in the next one, so batches grow with the load by themselves, without a timer; and a
//! chain's next node comes back in the answer to its predecessor's report, so a step costs
//! one round trip.
//!
//! A batch is retried whole while the server is unreachable (reports are idempotent); a
//! stale verdict drops one report. New attempts from an answer are held before the
//! reported ones are let go, so the agent never runs more attempts than it has slots
//! (for a moment it may hold both, and then claims nothing).

use std::sync::{Arc, Mutex, PoisonError};

use baton_api::{AttemptReport, ReportBatch};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::Backoff;
use crate::claim;
use crate::shared::Shared;
use crate::stop::{Stop, StopReason};

/// Most reports in one batch, well under what the server takes.
const MAX_BATCH: usize = 128;
/// Bytes of outputs past which a batch takes no more reports: with the one report that may
/// pass it (at most 64 KiB), and every byte escaped in JSON, a batch stays under the
/// server's 4 MiB limit on a report body.
const MAX_BATCH_OUTPUT_BYTES: usize = 256 * 1024;

/// A report waiting to be sent, and how to tell its attempt it is settled.
struct Queued {
    report: AttemptReport,
    stop: Stop,
    /// Dropped (or sent on) once the report is taken, refused, or given up on.
    settled: oneshot::Sender<()>,
}

/// The queue between attempt tasks and the reporting loop.
pub(crate) struct Reports {
    tx: mpsc::UnboundedSender<Queued>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Queued>>>,
}

impl Reports {
    pub(crate) fn new() -> Reports {
        // Unbounded, yet never longer than the attempts held: each waits for its verdict.
        let (tx, rx) = mpsc::unbounded_channel();
        Reports {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Queues a report and waits until the server took it or refused it as stale, or it
    /// was given up on (end of the shutdown grace, a request the server rejects).
    pub(crate) async fn send(&self, report: AttemptReport, stop: &Stop) {
        let (settled, verdict) = oneshot::channel();
        let queued = Queued {
            report,
            stop: stop.clone(),
            settled,
        };
        // A closed queue means the reporting loop is gone (the agent is being torn down):
        // there is nobody left to send it.
        if self.tx.send(queued).is_ok() {
            let _ = verdict.await;
        }
    }

    fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Queued>> {
        self.rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Sends queued reports until `done`; new attempts from the answers go on `tracker`.
///
/// `done` must only be cancelled once no attempt task is left, since they wait on this
/// loop for their verdicts.
pub(crate) async fn run(shared: &Arc<Shared>, tracker: &TaskTracker, done: &CancellationToken) {
    let Some(mut queue) = shared.reports.take_receiver() else {
        return;
    };
    let mut batch: Vec<Queued> = Vec::new();
    loop {
        let first = tokio::select! {
            () = done.cancelled() => return,
            q = queue.recv() => q,
        };
        let Some(first) = first else {
            return;
        };
        batch.push(first);
        top_up(&mut batch, &mut queue);
        deliver(shared, tracker, &mut batch, &mut queue).await;
    }
}

/// Adds what is queued, up to a full batch (by count, or by bytes of outputs).
fn top_up(batch: &mut Vec<Queued>, queue: &mut mpsc::UnboundedReceiver<Queued>) {
    let mut bytes: usize = batch.iter().map(|q| output_bytes(&q.report)).sum();
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_OUTPUT_BYTES {
        match queue.try_recv() {
            Ok(q) => {
                bytes += output_bytes(&q.report);
                batch.push(q);
            }
            Err(_) => return,
        }
    }
}

fn output_bytes(report: &AttemptReport) -> usize {
    report.outputs.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Sends `batch` until it is settled, retrying while the server is unreachable (taking in
/// reports queued meanwhile); leaves `batch` empty.
async fn deliver(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    batch: &mut Vec<Queued>,
    queue: &mut mpsc::UnboundedReceiver<Queued>,
) {
    let mut backoff = Backoff::default();
    while !batch.is_empty() {
        // Every reported attempt holds a slot that its report frees; none while stopping.
        let want = if shared.stopping.is_cancelled() {
            0
        } else {
            u32::try_from(batch.len()).unwrap_or(u32::MAX)
        };
        let body = ReportBatch {
            reports: batch.iter().map(|q| q.report.clone()).collect(),
            want,
        };
        match shared.client.report_batch(&body).await {
            Ok(answer) => {
                // Held before the reported attempts let go of their slots (below).
                claim::start_assignments(shared, tracker, answer.assignments);
                let results = answer.results.into_iter().map(|r| r.outcome);
                for (q, stored) in batch.drain(..).zip(results.chain(std::iter::repeat(None))) {
                    match stored {
                        Some(stored) if stored != q.report.outcome => tracing::info!(
                            attempt = q.report.attempt_id, stored = %stored.state,
                            "the server kept another ending for the attempt"
                        ),
                        Some(_) => {}
                        None => {
                            tracing::info!(
                                attempt = q.report.attempt_id,
                                "report refused as stale"
                            );
                        }
                    }
                    let _ = q.settled.send(());
                }
            }
            Err(e) if e.is_retryable() && !shared.give_up.is_cancelled() => {
                // An attempt found stale meanwhile is not worth delivering.
                batch.retain(|q| q.stop.reason() != Some(StopReason::Stale));
                tracing::warn!(reports = batch.len(), error = %e, "sending reports failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = shared.give_up.cancelled() => {}
                }
                top_up(batch, queue);
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(reports = batch.len(), error = %e, "shutting down; reports not delivered");
                batch.clear();
            }
            Err(e) => {
                tracing::error!(reports = batch.len(), error = %e, "reports rejected");
                batch.clear();
            }
        }
    }
}
