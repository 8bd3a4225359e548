//! `baton`: one binary for the whole product. It parses the command line, sets up logging,
//! signals and shutdown, and hands each subcommand to its crate: client commands to
//! `baton-cli`, `server` to `baton-server`, `agent` to `baton-agent`, and `up` and
//! self-contained `run` to both at once.
//!
//! `main` owns the root [`CancellationToken`] and a [`TaskTracker`]: every task is spawned
//! on the tracker and waited for before the process exits.

mod agent;
mod cli_args;
mod embedded;
mod logging;
mod report;
mod server;
mod signals;
mod up;

use std::process::ExitCode;
use std::time::Duration;

use baton_cli::run::OnInterrupt;
use baton_cli::{Client, Connection, Exit, TokenOrigin};
use clap::{CommandFactory as _, FromArgMatches as _};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli_args::{Cli, Command};
use crate::report::{client_error, client_result, failure};

/// How long leftover runtime work may take once the command is done.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    // Every TLS config in the process (server, agent, CLI, PostgreSQL) uses aws-lc-rs, the
    // only provider built in; installing it as the default before anything asks rustls for
    // one means no code path can ever find the choice ambiguous. It fails only when a
    // default is already installed, which is just as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let origin = cli_args::token_origin(&matches);
    logging::init(cli.command.default_log_filter(), cli.command.log_format());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failure("cannot start the async runtime", &e, Exit::Failure).into(),
    };
    let exit = runtime.block_on(dispatch(cli.command, origin));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    exit.into()
}

/// Runs one subcommand, then waits for every task it spawned.
async fn dispatch(command: Command, origin: TokenOrigin) -> Exit {
    // `shutdown` asks the work to drain (first signal); `done` ends the helpers (signal
    // listeners) once the command returned.
    let shutdown = CancellationToken::new();
    let done = CancellationToken::new();
    let tracker = TaskTracker::new();
    let exit = match &command {
        Command::Validate(args) => client_result(baton_cli::validate::validate(args)),
        Command::Run(args) => run(args, origin, &done, &tracker).await,
        Command::Server(args) => server::serve(args, &shutdown, &done, &tracker).await,
        Command::Agent(args) => agent::agent(args, &shutdown, &done, &tracker).await,
        Command::Up(args) => up::up(args, &shutdown, &done, &tracker).await,
        Command::Runs(cmd) => match client(cmd.conn(), origin) {
            Ok(c) => {
                // A command that follows a run stops following on the first Ctrl-C, as
                // `baton run` does; the others keep the default (end at once).
                let interrupt = CancellationToken::new();
                if cmd.follows_a_run() {
                    signals::listen(&tracker, interrupt.clone(), done.clone());
                }
                client_result(baton_cli::runs::runs(cmd, &c, &interrupt).await)
            }
            Err(exit) => exit,
        },
        Command::Agents(cmd) => match client(cmd.conn(), origin) {
            Ok(c) => client_result(baton_cli::agents::agents(cmd, &c).await),
            Err(exit) => exit,
        },
        Command::Resources(cmd) => match client(cmd.conn(), origin) {
            Ok(c) => client_result(baton_cli::resources::resources(cmd, &c).await),
            Err(exit) => exit,
        },
        Command::Workflows(cmd) => match client(cmd.conn(), origin) {
            Ok(c) => client_result(baton_cli::workflows::workflows(cmd, &c).await),
            Err(exit) => exit,
        },
        Command::Tokens(cmd) => match client(cmd.conn(), origin) {
            Ok(c) => client_result(baton_cli::tokens::tokens(cmd, &c).await),
            Err(exit) => exit,
        },
        Command::Secrets(cmd) => match client(cmd.conn(), origin) {
            Ok(c) => client_result(baton_cli::secrets::secrets(cmd, &c).await),
            Err(exit) => exit,
        },
        Command::Audit(args) => match client(&args.conn, origin) {
            Ok(c) => client_result(baton_cli::audit::audit(args, &c).await),
            Err(exit) => exit,
        },
    };
    done.cancel();
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    exit
}

/// A client for the server and token the flags, environment or defaults name.
fn client(conn: &baton_cli::args::ConnectionArgs, origin: TokenOrigin) -> Result<Client, Exit> {
    Connection::resolve(conn, origin)
        .and_then(Client::new)
        .map_err(|e| client_error(&e))
}

/// `baton run FILE`: against a server, or self-contained without one.
async fn run(
    args: &baton_cli::args::RunArgs,
    origin: TokenOrigin,
    done: &CancellationToken,
    tracker: &TaskTracker,
) -> Exit {
    if let Err(e) = args.check() {
        return client_error(&e);
    }
    // Checked before anything starts: a bad file costs no server start-up.
    let loaded = match baton_cli::validate::load(&args.file) {
        Ok(l) => l,
        Err(e) => return client_error(&e),
    };
    let interrupt = CancellationToken::new();
    signals::listen(tracker, interrupt.clone(), done.clone());
    if args.is_embedded() {
        return embedded::run(&loaded, args, &interrupt, tracker).await;
    }
    match client(&args.conn.to_connection_args(), origin) {
        Ok(c) => client_result(
            baton_cli::run::run(&loaded, args, &c, OnInterrupt::Detach, &interrupt).await,
        ),
        Err(exit) => exit,
    }
}
