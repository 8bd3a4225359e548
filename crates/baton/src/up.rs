//! `baton up`: a server and one local agent in one process, a whole single-machine install.

use std::path::Path;

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
    if let Some(work) = &args.work.work_dir
        && inside(work, &data_dir)
    {
        eprintln!(
            "error: --work-dir {} is inside the data dir {}: steps could read the server's tokens and database through relative paths; pick a folder outside it",
            work.display(),
            data_dir.display()
        );
        return Exit::Invalid;
    }
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
    // Held until the agent stops. Never under the data dir: a step walking up from its
    // work dir (`../../admin.token`) must not find the server's tokens and database.
    let temp_work = match &args.work.work_dir {
        Some(_) => None,
        None => match tempfile::Builder::new().prefix("baton-work-").tempdir() {
            Ok(w) => Some(w),
            Err(e) => return failure("cannot create a temporary work dir", &e, Exit::Failure),
        },
    };
    if let Some(w) = &temp_work {
        config.work_root = w.path().to_owned();
    }
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

/// Whether `path` is `dir` or lies under it, comparing absolute paths.
fn inside(path: &Path, dir: &Path) -> bool {
    match (std::path::absolute(path), std::path::absolute(dir)) {
        (Ok(path), Ok(dir)) => path.starts_with(dir),
        // An unusable path fails later with its own error.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_dir_under_the_data_dir_is_inside_it() {
        assert!(inside(Path::new("/d/data/work"), Path::new("/d/data")));
        assert!(inside(Path::new("/d/data"), Path::new("/d/data")));
        assert!(!inside(Path::new("/d/data-work"), Path::new("/d/data")));
        assert!(!inside(Path::new("/tmp/w"), Path::new("/d/data")));
    }
}
