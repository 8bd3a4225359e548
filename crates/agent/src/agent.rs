//! The agent's top level: register, then claim and heartbeat until shutdown, then drain and
//! deregister.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;

use baton_api::{RegisterAgent, Registered};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::config::AgentConfig;
use crate::error::{AgentError, RequestError};
use crate::registry::Registry;
use crate::shared::Shared;
use crate::workdir::Workspace;
use crate::{claim, heartbeat, reports, shutdown};

/// Runs an agent until `shutdown` is cancelled.
///
/// Registers with the enrollment token (waiting, with back-off, for a server to be
/// reachable), then claims and runs work. On shutdown it stops claiming at once, gives
/// running attempts `shutdown_grace` to finish, kills and reports the rest as canceled
/// (`shutdown`), deregisters and returns `Ok`. It fails at once when the server refuses the
/// registration, and after draining when the server stops accepting the agent's token.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    if config.slots == 0 {
        return Err(AgentError::NoSlots);
    }
    crate::step_env::check_pass_env(&config.pass_env).map_err(AgentError::PassEnv)?;
    let functions = Registry::new(&config.functions, config.plugins.as_deref())
        .map_err(AgentError::Functions)?;
    // Checked here too, so a bad name or label stops the agent at start with the same
    // words the server would answer with.
    let body = registration(&config, &functions);
    body.check().map_err(AgentError::BadRegistration)?;
    let work_root = prepare_work_root(&config)?;
    let enroll = Client::new(&config.servers, &config.token, &config.trust)?;
    let Some(registered) = register(&enroll, &body, &shutdown).await? else {
        return Ok(());
    };
    tracing::info!(
        agent = %registered.agent_id, name = %config.name, slots = config.slots,
        "registered"
    );
    let client = enroll.with_token(&registered.token)?;
    let shared = Arc::new(Shared::new(
        client,
        Workspace {
            root: work_root,
            pass_env: config.pass_env.clone(),
        },
        functions,
        config.slots,
        registered.lease_ms,
        registered.heartbeat_ms,
        shutdown.child_token(),
    ));
    let tracker = TaskTracker::new();
    let beats_done = CancellationToken::new();
    let work = async {
        claim::run(&shared, &tracker).await;
        // A revoked token makes every report fail: no point in a grace.
        let grace = if shared.has_failed() {
            Duration::ZERO
        } else {
            config.shutdown_grace
        };
        shutdown::drain(&shared, &tracker, grace).await;
        beats_done.cancel();
    };
    // The reporting loop outlives the drain: draining attempts wait on it for verdicts.
    tokio::join!(
        work,
        heartbeat::run(&shared, &beats_done),
        reports::run(&shared, &tracker, &beats_done),
    );
    if let Some(e) = shared.take_fatal() {
        return Err(AgentError::Revoked(e));
    }
    match shared.client.deregister().await {
        Ok(()) => tracing::info!(name = %config.name, "deregistered"),
        Err(e) => {
            tracing::warn!(error = %e, "deregistering failed; the server will mark the agent offline")
        }
    }
    Ok(())
}

fn prepare_work_root(config: &AgentConfig) -> Result<std::path::PathBuf, AgentError> {
    let fail = |source| AgentError::WorkRoot {
        path: config.work_root.clone(),
        source,
    };
    let root = std::path::absolute(&config.work_root).map_err(fail)?;
    // Private when the agent makes it: other users of the machine have no business in
    // the steps' files.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(fail)?;
    Ok(root)
}

/// What the agent registers with.
fn registration(config: &AgentConfig, functions: &Registry) -> RegisterAgent {
    RegisterAgent {
        name: config.name.clone(),
        labels: config.labels.clone(),
        slots: config.slots,
        functions: functions.names(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// Registers, retrying while no server is reachable; `None` when shut down first.
async fn register(
    client: &Client,
    body: &RegisterAgent,
    shutdown: &CancellationToken,
) -> Result<Option<Registered>, AgentError> {
    let mut backoff = Backoff::default();
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            r = client.register(body) => r,
        };
        match result {
            Ok(registered) => return Ok(Some(registered)),
            // Waiting would not help: it takes a flag or a server fix, so say so at once.
            Err(e @ RequestError::Tls { .. }) => return Err(AgentError::Tls(e)),
            Err(e) if e.is_retryable() => {
                // Once, then every tenth time: a server that is down for long should not
                // flood the log.
                if failures.is_multiple_of(10) {
                    tracing::warn!(error = %e, "cannot register yet; retrying");
                }
                failures += 1;
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            Err(e) => return Err(AgentError::Register(e)),
        }
    }
}
