//! A self-contained `baton run`: an embedded server on SQLite plus local agents, for the
//! length of one run.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_agent::AgentConfig;
use baton_cli::args::RunArgs;
use baton_cli::run::OnInterrupt;
use baton_cli::validate::LoadedWorkflow;
use baton_cli::{Client, Connection, Exit};
use baton_server::{Server, ServerConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::report::{chain, client_error, failure};

/// Shutdown grace of the local agents: a finished run leaves them nothing to drain, and a
/// canceled one has already stopped its work.
const AGENT_GRACE: Duration = Duration::from_secs(5);

/// Runs `loaded` on an embedded server with `--agents` local agents, then stops them all and
/// removes the temporary data dir. The first Ctrl-C (`interrupt`) cancels the run.
pub(crate) async fn run(
    loaded: &LoadedWorkflow,
    args: &RunArgs,
    interrupt: &CancellationToken,
    tracker: &TaskTracker,
) -> Exit {
    // Before anything starts: a bad plugins dir is a bad flag, not a failed run.
    if let Some(dir) = &args.plugins
        && let Err(e) = baton_agent::plugin_functions(dir)
    {
        return failure("bad --plugins", &e, Exit::Invalid);
    }
    let (data_dir, temp) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => match tempfile::Builder::new().prefix("baton-run-").tempdir() {
            Ok(t) => (t.path().to_owned(), Some(t)),
            Err(e) => return failure("cannot create a temporary data dir", &e, Exit::Failure),
        },
    };
    // Never under the data dir: a step walking up from its work dir (`../../admin.token`)
    // must not find the server's tokens and database. Made 0700 by `tempfile`.
    let work = match tempfile::Builder::new().prefix("baton-work-").tempdir() {
        Ok(w) => w,
        Err(e) => return failure("cannot create a temporary work dir", &e, Exit::Failure),
    };
    let exit = run_in(loaded, args, data_dir, work.path(), interrupt, tracker).await;
    let work_path = work.path().to_owned();
    if let Err(e) = work.close() {
        eprintln!("warning: cannot remove {}: {e}", work_path.display());
    }
    if let Some(temp) = temp {
        let path = temp.path().to_owned();
        if let Err(e) = temp.close() {
            eprintln!("warning: cannot remove {}: {e}", path.display());
        }
    }
    exit
}

async fn run_in(
    loaded: &LoadedWorkflow,
    args: &RunArgs,
    data_dir: PathBuf,
    work_root: &Path,
    interrupt: &CancellationToken,
    tracker: &TaskTracker,
) -> Exit {
    let mut config = ServerConfig::new(data_dir);
    config.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server_stop = CancellationToken::new();
    let server = match Server::start(config, server_stop.clone()).await {
        Ok(s) => s,
        Err(e) => return failure("cannot start the embedded server", &e, Exit::Failure),
    };
    let url = server.url();
    let connection = Connection::local(
        &url,
        server.admin_token().to_owned(),
        server.admin_token_path().to_owned(),
    );
    let enroll = server.enroll_token().to_owned();
    let server_task = tracker.spawn(server.wait());

    let agents_stop = CancellationToken::new();
    let mut agents = Vec::new();
    for i in 1..=args.agents.unwrap_or(1) {
        let name = format!("local-{i}");
        let mut config = AgentConfig::new(vec![url.clone()], enroll.clone(), name.clone());
        if let Some(slots) = args.slots {
            config.slots = slots;
        }
        config.work_root = work_root.to_owned();
        config.shutdown_grace = AGENT_GRACE;
        config.plugins.clone_from(&args.plugins);
        let stop = agents_stop.clone();
        let interrupt = interrupt.clone();
        agents.push(tracker.spawn(async move {
            if let Err(e) = baton_agent::run(config, stop.clone()).await {
                eprintln!("error: local agent {name} stopped: {}", chain(&e));
                // Nothing else would run the nodes: give up on the run as Ctrl-C does.
                if !stop.is_cancelled() {
                    interrupt.cancel();
                }
            }
        }));
    }

    let exit = match connection.and_then(Client::new) {
        Ok(client) => {
            let result =
                baton_cli::run::run(loaded, args, &client, OnInterrupt::Cancel, interrupt).await;
            result.unwrap_or_else(|e| client_error(&e))
        }
        Err(e) => client_error(&e),
    };

    // Agents first, so they can still report to the server while they stop.
    agents_stop.cancel();
    for agent in agents {
        let _ = agent.await;
    }
    server_stop.cancel();
    // The run's result stands: a failure to stop cleanly afterwards is only worth a warning.
    match server_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!(
            "warning: the embedded server stopped with an error: {}",
            chain(&e)
        ),
        Err(e) => eprintln!("warning: the embedded server task failed: {e}"),
    }
    exit
}
