//! The functions an agent implements: `shell` (`run:`), the built-ins `noop` and `sleep`
//! (Rust [`Function`]s like any an embedding program adds), and plugins; and running an
//! attempt's action with the one it names.

use std::ffi::OsString;
use std::time::Duration;

use baton_api::Assignment;
use baton_core::{Action, Outcome, Outputs, Reason, Script};
use tokio::process::Command;

use crate::call;
use crate::exec::{self, ProcessEnd};
use crate::function::{CallContext, CallOutcome, Function, FunctionError};
use crate::logs::LogBuffer;
use crate::outputs;
use crate::plugins;
use crate::registry::{Implementation, Registry};
use crate::step_env;
use crate::stop::{Stop, StopReason};
use crate::workdir::{WorkDir, Workspace};

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
        /// What the work wrote to `$BATON_OUTPUT` (or set, for a Rust function).
        outputs: Outputs,
    },
    /// Stopped because the attempt is no longer ours: report nothing.
    Dropped,
}

impl Ended {
    fn outcome(outcome: Outcome) -> Ended {
        Ended::Finished {
            outcome,
            message: None,
            outputs: Outputs::new(),
        }
    }

    fn with_message(outcome: Outcome, message: String) -> Ended {
        Ended::Finished {
            outcome,
            message: Some(message),
            outputs: Outputs::new(),
        }
    }

    pub(crate) fn setup(message: String) -> Ended {
        Ended::with_message(Outcome::error(Reason::Setup), message)
    }

    pub(crate) fn stopped(reason: StopReason) -> Ended {
        match reason {
            StopReason::Cancel => Ended::outcome(Outcome::canceled(Reason::Canceled)),
            StopReason::Shutdown => Ended::outcome(Outcome::canceled(Reason::Shutdown)),
            StopReason::Stale | StopReason::LeaseLost => Ended::Dropped,
        }
    }

    pub(crate) fn timed_out(limit: Duration) -> Ended {
        Ended::with_message(
            Outcome::error(Reason::Timeout),
            format!(
                "timed out after {}",
                baton_core::format_duration(limit_ms(limit))
            ),
        )
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

/// Runs the action of `a` with the function it names.
pub(crate) async fn execute(
    workspace: &Workspace,
    functions: &Registry,
    a: &Assignment,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> Execution {
    let timeout = a.timeout_ms.map(Duration::from_millis);
    let (function, with) = match &a.action {
        Action::Run(script) => return shell(workspace, a, script, timeout, stop, logs).await,
        Action::Uses { function, with } => (function, with),
    };
    let ended = match functions.get(function) {
        Some(Implementation::Rust(f)) => {
            call::call(f.as_ref(), a, function, with, stop, logs).await
        }
        Some(Implementation::Plugin(p)) => {
            return plugins::run(p, workspace, a, with, timeout, stop, logs).await;
        }
        Some(Implementation::Shell) => {
            Ended::setup("the shell function is used with `run:`, not `uses:`".into())
        }
        None => Ended::setup(format!(
            "this agent does not implement the function {function:?}"
        )),
    };
    Execution {
        ended,
        work_dir: None,
    }
}

async fn shell(
    workspace: &Workspace,
    a: &Assignment,
    script: &Script,
    timeout: Option<Duration>,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> Execution {
    let dir = match WorkDir::create(&workspace.root, a) {
        Ok(dir) => dir,
        Err(e) => {
            return Execution {
                ended: Ended::setup(format!("cannot create the work dir: {e}")),
                work_dir: None,
            };
        }
    };
    // A node that sets its own PATH finds `sh` there, as its script finds everything else.
    let sh = match a.env.get("PATH") {
        Some(path) => step_env::find_on("sh", path.as_ref()).unwrap_or_else(|| "sh".into()),
        None => shell_program().to_owned(),
    };
    let mut cmd = Command::new(sh);
    cmd.arg("-e").arg("-c").arg(script.to_shell());
    prepare(&mut cmd, a, &dir, &workspace.pass_env);
    let ended = process_ended(exec::run(cmd, timeout, stop, logs).await, "sh", timeout);
    let ended = outputs::collect(ended, dir.output_file()).await;
    Execution {
        ended,
        work_dir: Some(dir),
    }
}

/// `sh` as an absolute path, found once (see [`step_env::find_program`]); plain `sh` when it
/// is on no `PATH` entry, which then fails to start with the usual message.
fn shell_program() -> &'static std::path::Path {
    static SH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    SH.get_or_init(|| step_env::find_program("sh").unwrap_or_else(|| "sh".into()))
}

/// The work dir and environment every process of a node gets: a clean environment (the
/// allow-listed and `pass_env` variables of the agent, never its tokens), its inputs, the
/// node's env and the `BATON_*` variables, each overriding the one before.
pub(crate) fn prepare(cmd: &mut Command, a: &Assignment, dir: &WorkDir, pass_env: &[String]) {
    let baton = [
        ("BATON_RUN_ID", OsString::from(&a.run_id)),
        ("BATON_WORKFLOW", OsString::from(&a.workflow)),
        ("BATON_NODE", OsString::from(&a.node)),
        ("BATON_ATTEMPT", OsString::from(a.attempt.to_string())),
        ("BATON_WORK_DIR", dir.path().into()),
        ("BATON_OUTPUT", dir.output_file().into()),
        ("BATON_INPUTS", dir.inputs_file().into()),
    ];
    // Secret values reach the step as variables only, never as script text; a secret
    // reference replaced the plain variable of the same name when the file was read.
    let mut node_env = a.env.clone();
    node_env.extend(a.secrets.iter().map(|(k, v)| (k.clone(), v.0.clone())));
    let env = step_env::step_env(
        std::env::vars_os(),
        pass_env,
        &outputs::exported(&a.inputs),
        &node_env,
        &baton,
    );
    cmd.current_dir(dir.path()).env_clear().envs(env);
}

/// How the run of the process `program` ended, as the attempt reports it.
pub(crate) fn process_ended(
    result: std::io::Result<ProcessEnd>,
    program: &str,
    timeout: Option<Duration>,
) -> Ended {
    match result {
        Err(e) => Ended::setup(format!("cannot start {program}: {e}")),
        Ok(ProcessEnd::Exited(status)) => exit_status(status),
        Ok(ProcessEnd::TimedOut) => Ended::timed_out(timeout.unwrap_or_default()),
        Ok(ProcessEnd::Stopped(reason)) => Ended::stopped(reason),
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

/// `uses: noop`: succeeds at once.
pub(crate) struct Noop;

#[async_trait::async_trait]
impl Function for Noop {
    fn name(&self) -> &str {
        "noop"
    }

    async fn call(&self, _ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
        Ok(CallOutcome::Success)
    }
}

/// `uses: sleep` with `with: {seconds: N}`: succeeds after N seconds.
pub(crate) struct Sleep;

#[async_trait::async_trait]
impl Function for Sleep {
    fn name(&self) -> &str {
        "sleep"
    }

    async fn call(&self, ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
        let seconds = match ctx
            .with()
            .get("seconds")
            .and_then(serde_json::Value::as_f64)
        {
            Some(s) if (0.0..=MAX_SLEEP_SECS).contains(&s) => s,
            _ => {
                return Err(FunctionError::new(format!(
                    "sleep takes `with: {{seconds: N}}` with N a number from 0 to {MAX_SLEEP_SECS}"
                )));
            }
        };
        // The caller decides how a cancelled call ends; returning is all that is asked.
        tokio::select! {
            () = ctx.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => {}
        }
        Ok(CallOutcome::Success)
    }
}

#[cfg(test)]
#[path = "functions_tests.rs"]
pub(crate) mod tests;
