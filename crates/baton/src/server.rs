//! `baton server`: the control plane in the foreground until SIGINT or SIGTERM.

use std::io::Write as _;

use baton_cli::Exit;
use baton_server::{Server, ServerConfig, ServerError, TlsFiles};
use baton_store::Synchronous;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli_args::{ServerArgs, SyncMode};
use crate::report::failure;
use crate::signals;

/// Runs `baton server`: graceful on the first signal, immediate on the second.
pub(crate) async fn serve(
    args: &ServerArgs,
    shutdown: &CancellationToken,
    done: &CancellationToken,
    tracker: &TaskTracker,
) -> Exit {
    signals::listen(tracker, shutdown.clone(), done.clone());
    let server = match start(args, shutdown.clone()).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    match server.wait().await {
        Ok(()) => Exit::Success,
        Err(e) => failure("the server stopped", &e, Exit::Failure),
    }
}

/// The server config the flags describe.
pub(crate) fn config(args: &ServerArgs) -> Result<ServerConfig, Exit> {
    let Some(data_dir) = args.data_dir.clone().or_else(baton_cli::default_data_dir) else {
        eprintln!("error: no data dir: pass --data-dir or set BATON_DATA_DIR (HOME is not set)");
        return Err(Exit::Invalid);
    };
    let mut config = ServerConfig::new(data_dir);
    config.listen = args.listen;
    config.db.clone_from(&args.db);
    config.lease_ms = u64::try_from(args.lease.as_millis()).unwrap_or(u64::MAX);
    config.queue_timeout_ms = u64::try_from(args.queue_timeout.as_millis()).unwrap_or(u64::MAX);
    // Only from the environment: a flag would show the key in `ps` and shell history.
    config.secrets_key = std::env::var("BATON_SECRETS_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    config.secrets_old_key = std::env::var("BATON_SECRETS_OLD_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    config.synchronous = match args.sync {
        SyncMode::Normal => Synchronous::Normal,
        SyncMode::Full => Synchronous::Full,
    };
    config.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        // clap makes each flag require the other; this covers the environment variables,
        // which `requires` does not see.
        (Some(_), None) | (None, Some(_)) => {
            eprintln!(
                "error: --tls-cert and --tls-key go together (or BATON_TLS_CERT and BATON_TLS_KEY): pass both or neither"
            );
            return Err(Exit::Invalid);
        }
    };
    Ok(config)
}

/// Starts a server from the flags and says where it listens (the first line on stdout,
/// which scripts and tests parse) and where its token files are (on stderr).
pub(crate) async fn start(args: &ServerArgs, shutdown: CancellationToken) -> Result<Server, Exit> {
    let config = config(args)?;
    let server = Server::start(config, shutdown)
        .await
        .map_err(|e| start_failure(&e))?;
    announce(&server);
    Ok(server)
}

fn start_failure(err: &ServerError) -> Exit {
    let exit = match err {
        ServerError::Config(_) => Exit::Invalid,
        _ => Exit::Failure,
    };
    failure("cannot start the server", err, exit)
}

fn announce(server: &Server) {
    let mut out = std::io::stdout().lock();
    // Nobody reading stdout is no reason to stop serving.
    let _ = writeln!(out, "listening on {}", server.url());
    let _ = out.flush();
    eprintln!(
        "admin token (full API access): {}",
        server.admin_token_path().display()
    );
    eprintln!(
        "agent enrollment token: {}",
        server.enroll_token_path().display()
    );
}
