//! Baton's agent: registers with the control plane, claims ready nodes, runs them, and
//! reports how they ended.
//!
//! [`run`] drives an agent described by an [`AgentConfig`] until its shutdown token is
//! cancelled. Inside, the pieces are:
//!
//! - `client`: HTTP calls to the server (`docs/api.md`), failing over across servers;
//! - `claim`: the claim long poll, always one outstanding, asking for the free slots;
//! - `heartbeat`: lease renewal, cancels and stale verdicts from the server, and killing
//!   work whose lease could not be renewed in time;
//! - `attempt`: one attempt's life (start, run, logs, artifacts, report);
//! - `reports`: reports sent in batches that also claim work for the slots they free;
//! - `functions` and `exec`: the built-in functions ([`BUILTIN_FUNCTIONS`]) and running a
//!   shell step in its own process group, with timeout and kill;
//! - `step_env`: the clean environment every process of an attempt starts from (an
//!   allow-list of the agent's variables, never its tokens);
//! - `function`, `call`, `plugins` and `registry`: functions written in Rust ([`Function`],
//!   registered with [`AgentConfig::with_function`]) and plugins (executables in
//!   [`AgentConfig::plugins`]), and which one a `uses:` name means;
//! - `outputs`: a node's inputs as variables and `$BATON_INPUTS`, and reading what it
//!   wrote to `$BATON_OUTPUT`;
//! - `logs`: cutting output into chunks; `artifacts` and `glob`: collecting files;
//! - `shutdown`: the grace period and the final reports.

mod agent;
mod artifacts;
mod attempt;
mod backoff;
mod call;
mod claim;
mod client;
mod config;
mod error;
mod exec;
mod function;
mod functions;
mod glob;
mod heartbeat;
mod held;
mod logs;
mod outputs;
mod plugins;
mod registry;
mod reports;
mod shared;
mod shutdown;
mod step_env;
mod stop;
mod tls;
mod workdir;

pub use agent::run;
pub use config::{AgentConfig, ServerTrust};
pub use error::{AgentError, RequestError};
pub use exec::kill_running_steps;
pub use function::{CANCEL_GRACE, CallContext, CallOutcome, Function, FunctionError, LogWriter};
pub use functions::BUILTIN_FUNCTIONS;
pub use registry::{FunctionsError, plugin_functions};
pub use step_env::{PassEnvError, check_pass_env};

/// The attribute that implements [`Function`] for a type with an `async fn call`.
pub use async_trait::async_trait;
