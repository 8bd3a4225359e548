//! Functions written in Rust: the [`Function`] trait a program embedding the agent
//! implements, what one call gets ([`CallContext`], [`LogWriter`]) and what it gives back
//! ([`CallOutcome`], [`FunctionError`]).

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use baton_api::{Assignment, Stream};
use baton_core::{OutputError, Outputs, check_outputs};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::exec::KILL_GRACE;

/// How long a cancelled [`Function::call`] may take to return before the attempt ends
/// without it; the same grace a process gets between SIGTERM and SIGKILL.
pub const CANCEL_GRACE: Duration = KILL_GRACE;

/// A function the agent implements in Rust, run for nodes that say `uses: NAME`.
///
/// Register it with [`AgentConfig::with_function`](crate::AgentConfig::with_function); the
/// agent then offers it to the server, so only agents that implement it claim such nodes.
///
/// The agent calls [`call`](Function::call) once per attempt, on its tokio runtime, so a
/// call must not block its thread (use `tokio::task::spawn_blocking` for blocking work).
/// When the attempt is canceled, times out or is taken away, the context's token is
/// cancelled; a call still running [`CANCEL_GRACE`] later is dropped at its next `.await`
/// and the attempt ends without it.
///
/// ```
/// use baton_agent::{CallContext, CallOutcome, Function, FunctionError, async_trait};
///
/// struct Greet;
///
/// #[async_trait]
/// impl Function for Greet {
///     fn name(&self) -> &str {
///         "greet"
///     }
///
///     async fn call(&self, ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
///         let who = ctx.with()["who"]
///             .as_str()
///             .ok_or_else(|| FunctionError::new("greet takes `with: {who: NAME}`"))?;
///         ctx.log().line(format!("hello, {who}")).await;
///         Ok(CallOutcome::Success)
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Function: Send + Sync {
    /// The name nodes use it by: lowercase letters, digits, `_` and `-`, starting with a
    /// letter or digit, at most 64 characters (the rule of `uses:`).
    fn name(&self) -> &str;

    /// Runs one attempt of a node that uses this function.
    async fn call(&self, ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError>;
}

/// How a call that ran to its end went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The work succeeded: the attempt ends `success`.
    Success,
    /// The work ran and failed: the attempt ends `failure`, retried when the node's policy
    /// retries failures.
    Failure {
        /// Recorded as the attempt's exit code.
        exit_code: i32,
        /// Shown with the attempt.
        message: Option<String>,
    },
}

impl CallOutcome {
    /// A failure with exit code 1 and a message.
    pub fn failure(message: impl Into<String>) -> CallOutcome {
        CallOutcome::Failure {
            exit_code: 1,
            message: Some(message.into()),
        }
    }
}

/// The function could not do its work (bad arguments, a missing tool): the attempt ends
/// `error` with reason `setup` and this error's text as its message. Made from an
/// [`OutputError`] (a refused [`CallContext::set_output`] passed on with `?`), it ends the
/// attempt `error` with reason `output` instead.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct FunctionError {
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
    /// Made from a refused output.
    output: bool,
}

impl From<OutputError> for FunctionError {
    fn from(e: OutputError) -> FunctionError {
        FunctionError {
            message: e.to_string(),
            source: None,
            output: true,
        }
    }
}

impl FunctionError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> FunctionError {
        FunctionError {
            message: message.into(),
            source: None,
            output: false,
        }
    }

    /// An error with a message and the error that caused it.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> FunctionError {
        FunctionError {
            message: message.into(),
            source: Some(source.into()),
            output: false,
        }
    }

    /// Whether the error is a refused output.
    pub(crate) fn is_output(&self) -> bool {
        self.output
    }

    /// The message followed by every source, `: `-separated.
    pub(crate) fn chain(&self) -> String {
        let mut text = self.message.clone();
        let mut next = self.source.as_deref().map(|s| s as &dyn StdError);
        while let Some(e) = next {
            text.push_str(": ");
            text.push_str(&e.to_string());
            next = e.source();
        }
        text
    }
}

/// What one call of a [`Function`] gets: the node's arguments and inputs, the ids of the
/// attempt, a cancellation token, a writer for the node's log, and a place for its outputs.
pub struct CallContext<'a> {
    pub(crate) function: &'a str,
    pub(crate) with: &'a serde_json::Value,
    pub(crate) inputs: &'a serde_json::Value,
    pub(crate) outputs: &'a Mutex<Outputs>,
    pub(crate) assignment: &'a Assignment,
    pub(crate) cancel: CancellationToken,
    pub(crate) log: LogWriter,
}

impl<'a> CallContext<'a> {
    /// The function's name as the node wrote it.
    pub fn function(&self) -> &'a str {
        self.function
    }

    /// The node's `with:` arguments: a JSON object, empty when the node gave none.
    pub fn with(&self) -> &'a serde_json::Value {
        self.with
    }

    /// The outputs of the nodes this one needs (direct needs only), as a JSON object
    /// `{"node": {"key": "value"}}`; needs that wrote none are absent.
    pub fn inputs(&self) -> &'a serde_json::Value {
        self.inputs
    }

    /// Output `key` of the needed node `node`, if it wrote one.
    pub fn input(&self, node: &str, key: &str) -> Option<&'a str> {
        self.assignment
            .inputs
            .get(node)?
            .get(key)
            .map(String::as_str)
    }

    /// Sets output `key` to `value` (a later call with the same key replaces it), for the
    /// nodes that need this one, as a process's `key=value` line in `$BATON_OUTPUT` does.
    /// Outputs are kept when the call returns `Ok`, success or failure.
    ///
    /// A key or value outside the rules and limits of outputs (see
    /// [`baton_core::parse_outputs`]) is refused and changes nothing; passed on with `?`,
    /// the refusal ends the attempt `error` with reason `output`.
    pub fn set_output(
        &self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), OutputError> {
        // Never held across an await, and nothing panics while holding it.
        let mut outputs = self.outputs.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key.into();
        let old = outputs.insert(key.clone(), value.into());
        let checked = check_outputs(&outputs);
        if checked.is_err() {
            match old {
                Some(old) => outputs.insert(key, old),
                None => outputs.remove(&key),
            };
        }
        checked
    }

    /// The run's id.
    pub fn run_id(&self) -> &'a str {
        &self.assignment.run_id
    }

    /// The workflow's name.
    pub fn workflow(&self) -> &'a str {
        &self.assignment.workflow
    }

    /// The node's id.
    pub fn node(&self) -> &'a str {
        &self.assignment.node
    }

    /// The attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.assignment.attempt
    }

    /// The node's environment (`env:` of the workflow and the node).
    pub fn env(&self) -> &'a BTreeMap<String, String> {
        &self.assignment.env
    }

    /// The value of a secret the node refers to in `env` (`{secret: NAME}`), by the variable
    /// name it is given under; `None` when the node has no such variable. Whatever the
    /// function logs or outputs is masked, so the value never shows.
    pub fn secret(&self, var: &str) -> Option<&'a str> {
        self.assignment.secrets.get(var).map(|v| v.0.as_str())
    }

    /// The node's time limit, if it has one; the agent enforces it (the token is
    /// cancelled when it runs out).
    pub fn timeout(&self) -> Option<Duration> {
        self.assignment.timeout_ms.map(Duration::from_millis)
    }

    /// Cancelled when the attempt must stop: the run was canceled, the node timed out, the
    /// agent shuts down or lost the attempt.
    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Resolves when the attempt must stop (see [`token`](CallContext::token)).
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether the attempt must stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Writes to the node's log.
    pub fn log(&self) -> &LogWriter {
        &self.log
    }
}

impl fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("function", &self.function)
            .field("run_id", &self.assignment.run_id)
            .field("node", &self.assignment.node)
            .field("attempt", &self.assignment.attempt)
            .finish_non_exhaustive()
    }
}

/// Lines of a node's log, sent to the server in chunks like a process's output.
///
/// Cheap to clone. Lines written after the attempt ended are dropped.
#[derive(Debug, Clone)]
pub struct LogWriter {
    pub(crate) tx: mpsc::Sender<LogLine>,
}

/// Text for one of the node's streams.
#[derive(Debug)]
pub(crate) struct LogLine {
    pub(crate) stream: Stream,
    pub(crate) text: String,
}

impl LogWriter {
    /// Appends a line to the node's stdout log; a missing newline is added.
    pub async fn line(&self, text: impl Into<String>) {
        self.send(Stream::Stdout, text.into()).await;
    }

    /// Appends a line to the node's stderr log; a missing newline is added.
    pub async fn error_line(&self, text: impl Into<String>) {
        self.send(Stream::Stderr, text.into()).await;
    }

    async fn send(&self, stream: Stream, mut text: String) {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        // A closed channel means the attempt is over: its log is complete.
        let _ = self.tx.send(LogLine { stream, text }).await;
    }
}
