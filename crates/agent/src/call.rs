//! Calling a [`Function`] for an attempt: its log lines into the attempt's log, and its
//! end by return, timeout or stop.
//!
//! The call is polled in the attempt's own task, beside the log pump, so nothing is
//! spawned. A timeout or stop cancels the call's token and gives it [`CANCEL_GRACE`] to
//! return; after that the call's future is dropped, which ends it at its next `.await`.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use baton_api::{Assignment, Stream};
use baton_core::{AttemptState, Outcome, Outputs, Reason};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::function::{CANCEL_GRACE, CallContext, CallOutcome, Function, FunctionError, LogWriter};
use crate::functions::Ended;
use crate::logs::LogBuffer;
use crate::stop::{Stop, StopReason};

/// Log lines waiting for the pump before the function's writes wait too.
const LOG_QUEUE: usize = 64;

/// How the first phase of a call ended.
enum First {
    Returned(Result<CallOutcome, FunctionError>),
    Stopped(StopReason),
    TimedOut(Duration),
}

/// Calls `f` for `a` and waits for it to end, its time limit, or `stop`.
pub(crate) async fn call(
    f: &dyn Function,
    a: &Assignment,
    function: &str,
    with: &serde_json::Value,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> Ended {
    // A map of strings always converts.
    let inputs = serde_json::to_value(&a.inputs).unwrap_or_default();
    let outputs = Mutex::new(Outputs::new());
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(LOG_QUEUE);
    let ctx = CallContext {
        function,
        with,
        inputs: &inputs,
        outputs: &outputs,
        assignment: a,
        cancel: cancel.clone(),
        log: LogWriter { tx },
    };
    let mut running = f.call(ctx);
    let timeout = a.timeout_ms.map(Duration::from_millis);
    let deadline = timeout.map(|t| Instant::now() + t);
    let first = loop {
        let flush_at = logs.deadline();
        tokio::select! {
            biased;
            r = &mut running => break First::Returned(r),
            reason = stop.stopped() => break First::Stopped(reason),
            () = sleep_until(deadline) => break First::TimedOut(timeout.unwrap_or_default()),
            Some(line) = rx.recv() => logs.push(line.stream, line.text.as_bytes()).await,
            () = sleep_until(flush_at) => logs.flush().await,
        }
    };
    if !matches!(first, First::Returned(_)) {
        cancel.cancel();
        let give_up = Instant::now() + CANCEL_GRACE;
        loop {
            let flush_at = logs.deadline();
            tokio::select! {
                biased;
                _ = &mut running => break,
                () = tokio::time::sleep_until(give_up) => {
                    logs.note(
                        Stream::Stderr,
                        &format!("{function} did not return within {}s of being cancelled; abandoned", CANCEL_GRACE.as_secs()),
                    ).await;
                    break;
                }
                Some(line) = rx.recv() => logs.push(line.stream, line.text.as_bytes()).await,
                () = sleep_until(flush_at) => logs.flush().await,
            }
        }
    }
    drop(running);
    while let Ok(line) = rx.try_recv() {
        logs.push(line.stream, line.text.as_bytes()).await;
    }
    let outputs = outputs.into_inner().unwrap_or_else(PoisonError::into_inner);
    match first {
        First::Returned(Ok(outcome)) => returned(outcome, outputs),
        First::Returned(Err(e)) if e.is_output() => Ended::Finished {
            outcome: Outcome::error(Reason::Output),
            message: Some(format!("bad output: {}", e.chain())),
            outputs: Outputs::new(),
        },
        First::Returned(Err(e)) => Ended::setup(e.chain()),
        First::Stopped(reason) => Ended::stopped(reason),
        First::TimedOut(limit) => Ended::timed_out(limit),
    }
}

fn returned(outcome: CallOutcome, outputs: Outputs) -> Ended {
    // `set_output` kept them within the limits.
    match outcome {
        CallOutcome::Success => Ended::Finished {
            outcome: Outcome {
                state: AttemptState::Success,
                reason: Reason::Exit,
                exit_code: None,
            },
            message: None,
            outputs,
        },
        CallOutcome::Failure { exit_code, message } => Ended::Finished {
            outcome: Outcome {
                state: AttemptState::Failure,
                reason: Reason::Exit,
                exit_code: Some(exit_code),
            },
            message,
            outputs,
        },
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
