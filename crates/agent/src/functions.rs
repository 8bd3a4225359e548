//! The functions an agent implements: `shell` (`run:`), and the built-ins `noop` and `sleep`.

use std::path::Path;
use std::time::Duration;

use baton_api::Assignment;
use baton_core::{Action, AttemptState, Outcome, Reason, Script};
use tokio::process::Command;

use crate::exec::{self, ProcessEnd};
use crate::logs::LogBuffer;
use crate::stop::{Stop, StopReason};
use crate::workdir::WorkDir;

/// The functions every agent implements.
pub const BUILTIN_FUNCTIONS: &[&str] = &["shell", "noop", "sleep"];

/// The longest `sleep`, in seconds.
const MAX_SLEEP_SECS: f64 = 86_400.0;

/// How the work of an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Report this.
    Finished {
        outcome: Outcome,
        message: Option<String>,
    },
    /// Stopped because the attempt is no longer ours: report nothing.
    Dropped,
}

impl Ended {
    fn outcome(outcome: Outcome) -> Ended {
        Ended::Finished {
            outcome,
            message: None,
        }
    }

    fn with_message(outcome: Outcome, message: String) -> Ended {
        Ended::Finished {
            outcome,
            message: Some(message),
        }
    }

    fn setup(message: String) -> Ended {
        Ended::with_message(Outcome::error(Reason::Setup), message)
    }

    fn stopped(reason: StopReason) -> Ended {
        match reason {
            StopReason::Cancel => Ended::outcome(Outcome::canceled(Reason::Canceled)),
            StopReason::Shutdown => Ended::outcome(Outcome::canceled(Reason::Shutdown)),
            StopReason::Stale | StopReason::LeaseLost => Ended::Dropped,
        }
    }

    fn timed_out(limit: Duration) -> Ended {
        Ended::with_message(
            Outcome::error(Reason::Timeout),
            format!(
                "timed out after {}",
                baton_core::format_duration(limit_ms(limit))
            ),
        )
    }
}

/// Success of work that ran no process.
fn success() -> Outcome {
    Outcome {
        state: AttemptState::Success,
        reason: Reason::Exit,
        exit_code: None,
    }
}

fn limit_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The result of running an attempt's action.
#[derive(Debug)]
pub(crate) struct Execution {
    pub(crate) ended: Ended,
    /// The work dir, for artifacts; the caller removes it.
    pub(crate) work_dir: Option<WorkDir>,
}

/// Runs the action of `a`.
pub(crate) async fn execute(
    work_root: &Path,
    a: &Assignment,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> Execution {
    let timeout = a.timeout_ms.map(Duration::from_millis);
    let ended = match &a.action {
        Action::Run(script) => return shell(work_root, a, script, timeout, stop, logs).await,
        Action::Uses { function, with } => match function.as_str() {
            "noop" => Ended::outcome(success()),
            "sleep" => sleep(with, timeout, stop).await,
            "shell" => Ended::setup("the shell function is used with `run:`, not `uses:`".into()),
            other => Ended::setup(format!(
                "this agent does not implement the function {other:?}"
            )),
        },
    };
    Execution {
        ended,
        work_dir: None,
    }
}

async fn shell(
    work_root: &Path,
    a: &Assignment,
    script: &Script,
    timeout: Option<Duration>,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> Execution {
    let dir = match WorkDir::create(work_root, a) {
        Ok(dir) => dir,
        Err(e) => {
            return Execution {
                ended: Ended::setup(format!("cannot create the work dir: {e}")),
                work_dir: None,
            };
        }
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-e")
        .arg("-c")
        .arg(script.to_shell())
        .current_dir(dir.path())
        // The enrollment token is the agent's secret, not the step's.
        .env_remove("BATON_AGENT_TOKEN")
        .envs(&a.env)
        .env("BATON_RUN_ID", &a.run_id)
        .env("BATON_WORKFLOW", &a.workflow)
        .env("BATON_NODE", &a.node)
        .env("BATON_ATTEMPT", a.attempt.to_string())
        .env("BATON_WORK_DIR", dir.path());
    let ended = match exec::run(cmd, timeout, stop, logs).await {
        Err(e) => Ended::setup(format!("cannot start sh: {e}")),
        Ok(ProcessEnd::Exited(status)) => exit_status(status),
        Ok(ProcessEnd::TimedOut) => {
            let limit = timeout.unwrap_or_default();
            Ended::timed_out(limit)
        }
        Ok(ProcessEnd::Stopped(reason)) => Ended::stopped(reason),
    };
    Execution {
        ended,
        work_dir: Some(dir),
    }
}

fn exit_status(status: std::process::ExitStatus) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return Ended::outcome(Outcome::exited(code));
    }
    match status.signal() {
        Some(signal) => Ended::with_message(
            Outcome::exited(128 + signal),
            format!("killed by {}", exec::signal_name(signal)),
        ),
        None => Ended::setup(format!("the process ended oddly: {status}")),
    }
}

async fn sleep(with: &serde_json::Value, timeout: Option<Duration>, stop: &Stop) -> Ended {
    let seconds = match with.get("seconds").and_then(serde_json::Value::as_f64) {
        Some(s) if (0.0..=MAX_SLEEP_SECS).contains(&s) => s,
        _ => {
            return Ended::setup(format!(
                "sleep takes `with: {{seconds: N}}` with N a number from 0 to {MAX_SLEEP_SECS}"
            ));
        }
    };
    let wanted = Duration::from_secs_f64(seconds);
    let limit = timeout.unwrap_or(Duration::MAX);
    tokio::select! {
        biased;
        reason = stop.stopped() => Ended::stopped(reason),
        () = tokio::time::sleep(wanted), if wanted <= limit => Ended::outcome(success()),
        () = tokio::time::sleep(limit), if limit < wanted => Ended::timed_out(limit),
    }
}

#[cfg(test)]
#[path = "functions_tests.rs"]
mod tests;
