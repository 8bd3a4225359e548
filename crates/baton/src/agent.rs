//! `baton agent`: an agent in the foreground until SIGINT or SIGTERM.

use std::path::Path;

use baton_agent::{AgentConfig, AgentError, RequestError, ServerTrust};
use baton_cli::Exit;
use baton_cli::connection::{AGENT_TOKEN_FILE, read_token_file};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli_args::{AgentArgs, AgentWorkArgs};
use crate::report::failure;
use crate::signals;

/// Runs `baton agent`: the first signal drains (no new claims, running work gets the
/// shutdown grace), the second exits at once.
pub(crate) async fn agent(
    args: &AgentArgs,
    shutdown: &CancellationToken,
    done: &CancellationToken,
    tracker: &TaskTracker,
) -> Exit {
    let token = match enrollment_token(args) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Invalid;
        }
    };
    let name = match args.name.as_deref().map(str::trim) {
        Some("") => {
            eprintln!("error: --name must not be empty");
            return Exit::Invalid;
        }
        Some(n) => n.to_owned(),
        None => hostname(),
    };
    let mut config = AgentConfig::new(args.servers.clone(), token, name);
    apply_work(&mut config, &args.work);
    config.shutdown_grace = args.shutdown_grace;
    if let Some(ca) = &args.ca_cert {
        config.trust = ServerTrust::WithCa(ca.clone());
    }
    signals::listen(tracker, shutdown.clone(), done.clone());
    match baton_agent::run(config, shutdown.clone()).await {
        Ok(()) => Exit::Success,
        Err(e) => agent_failure(&e),
    }
}

/// Labels, slots and work dir from the flags.
pub(crate) fn apply_work(config: &mut AgentConfig, work: &AgentWorkArgs) {
    config.labels = work.labels.iter().cloned().collect();
    if let Some(slots) = work.slots {
        config.slots = slots;
    }
    if let Some(dir) = &work.work_dir {
        config.work_root.clone_from(dir);
    }
    config.plugins.clone_from(&work.plugins);
    config.pass_env.clone_from(&work.pass_env);
}

/// Prints why an agent stopped and gives the exit code: 2 for bad flags, 3 when a server
/// could not be reached or refused the token, 1 otherwise.
pub(crate) fn agent_failure(err: &AgentError) -> Exit {
    let exit = match err {
        AgentError::NoServers
        | AgentError::BadServerUrl { .. }
        | AgentError::NoSlots
        | AgentError::BadRegistration(_)
        | AgentError::PassEnv(_)
        | AgentError::BadToken
        | AgentError::CaCert { .. }
        | AgentError::Functions(_) => Exit::Invalid,
        AgentError::Tls(_) => Exit::Unreachable,
        AgentError::Register(r) | AgentError::Revoked(r) => match r {
            RequestError::Status {
                status: 400 | 422, ..
            } => Exit::Invalid,
            _ => Exit::Unreachable,
        },
        _ => Exit::Failure,
    };
    failure("the agent stopped", err, exit)
}

/// The enrollment token: `--token`, `--token-file`, `BATON_AGENT_TOKEN`, else `agent.token`
/// in the default data dir (an agent beside its server needs no flag).
fn enrollment_token(args: &AgentArgs) -> Result<String, String> {
    if let Some(t) = args
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(t.to_owned());
    }
    if let Some(path) = &args.token_file {
        return read_required(path);
    }
    if let Ok(t) = std::env::var("BATON_AGENT_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    baton_cli::default_data_dir()
        .and_then(|d| read_token_file(&d.join(AGENT_TOKEN_FILE)))
        .ok_or_else(|| {
            "no enrollment token: pass --token or --token-file, or set BATON_AGENT_TOKEN".to_owned()
        })
}

fn read_required(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_owned())
}

/// This machine's host name, the default agent name.
pub(crate) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .chain(std::env::var("HOSTNAME").ok())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "agent".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_must_hold_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.token");
        assert!(
            read_required(&path)
                .unwrap_err()
                .contains("cannot read the token file")
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(read_required(&path).unwrap_err().contains("is empty"));
        std::fs::write(&path, "baton_enroll_x\n").unwrap();
        assert_eq!(read_required(&path).as_deref(), Ok("baton_enroll_x"));
    }

    #[test]
    fn the_host_name_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
