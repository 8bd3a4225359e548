//! `baton up`: a server and one local agent in one process, a whole single-machine install.

use baton_agent::{AgentConfig, ServerTrust};
use baton_cli::Exit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::{agent_failure, apply_work, hostname};
use crate::cli_args::UpArgs;
use crate::report::failure;
use crate::{server, signals};

/// Runs `baton up`. On the first signal the agent drains first, then the server stops,
/// so the agent can still report the work it finishes.
pub(crate) async fn up(
    args: &UpArgs,
    shutdown: &CancellationToken,
    done: &CancellationToken,
    tracker: &TaskTracker,
) -> Exit {
    let data_dir = match server::config(&args.server) {
        Ok(c) => c.data_dir,
        Err(exit) => return exit,
    };
    signals::listen(tracker, shutdown.clone(), done.clone());
    let server_stop = CancellationToken::new();
    let server = match server::start(&args.server, server_stop.clone()).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let mut config = AgentConfig::new(
        vec![server.url()],
        server.enroll_token().to_owned(),
        hostname(),
    );
    config.work_root = data_dir.join("work");
    // The certificate may name no address the agent dials (127.0.0.1): trust exactly the
    // one the server serves, read from the same file.
    if let (true, Some(cert)) = (server.is_tls(), &args.server.tls_cert) {
        config.trust = ServerTrust::Pinned(cert.clone());
    }
    apply_work(&mut config, &args.work);
    let mut server_task = tracker.spawn(server.wait());
    let agent_stop = shutdown.clone();
    let agent = baton_agent::run(config, agent_stop);
    tokio::pin!(agent);
    let mut exit = tokio::select! {
        result = &mut agent => match result {
            Ok(()) => Exit::Success,
            Err(e) => agent_failure(&e),
        },
        result = &mut server_task => {
            // The server ended on its own: stop the agent too, then report why.
            shutdown.cancel();
            let _ = agent.await;
            return match result {
                Ok(Ok(())) => Exit::Success,
                Ok(Err(e)) => failure("the server stopped", &e, Exit::Failure),
                Err(e) => failure("the server task failed", &e, Exit::Failure),
            };
        }
    };
    server_stop.cancel();
    match server_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => exit = failure("the server stopped", &e, Exit::Failure),
        Err(e) => exit = failure("the server task failed", &e, Exit::Failure),
    }
    exit
}
