//! A running control plane: the listener, the HTTP server and the routines.

use std::net::SocketAddr;
use std::path::Path;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tls::{self, TlsListener};
use crate::tokens::ServerTokens;
use crate::{AppState, ServerConfig, ServerError, events, reaper, router};

/// A started server. Stop it by cancelling the token given to [`Server::start`], then
/// [`Server::wait`] for it to drain.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    /// `https` when serving TLS, else `http`.
    scheme: &'static str,
    tokens: ServerTokens,
    tracker: TaskTracker,
    serve: JoinHandle<Result<(), ServerError>>,
}

impl Server {
    /// Opens the store, writes the token files, binds the socket, and spawns the HTTP server
    /// and the routines; returns once it listens.
    pub async fn start(
        config: ServerConfig,
        shutdown: CancellationToken,
    ) -> Result<Server, ServerError> {
        // A child token, so that a failing HTTP server can stop the routines without
        // cancelling the caller's token.
        let shutdown = shutdown.child_token();
        // Before anything else: a bad certificate file should cost no database work.
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let (state, tokens) = AppState::open(&config, shutdown.clone()).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;

        let tracker = TaskTracker::new();
        tracker.spawn(reaper::run(state.clone()));
        // A store shared with other replicas tells of their changes.
        if let Some(changes) = state.store().events() {
            tracker.spawn(events::forward(state.clone(), changes));
        }
        let app = router(state);
        let serve_shutdown = shutdown.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let serve = tracker.spawn(async move {
            let drained = serve_shutdown.clone().cancelled_owned();
            let result = match tls {
                Some(tls) => {
                    axum::serve(TlsListener::new(listener, tls), app)
                        .with_graceful_shutdown(drained)
                        .await
                }
                None => {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(drained)
                        .await
                }
            }
            .map_err(ServerError::Serve);
            serve_shutdown.cancel();
            result
        });
        tracker.close();
        // The URL without its password: a PostgreSQL URL may hold one.
        let database = config
            .database()
            .map(|db| db.describe())
            .unwrap_or_default();
        tracing::info!(
            %addr,
            scheme,
            data_dir = %config.data_dir.display(),
            %database,
            admin_token = %tokens.admin_path().display(),
            enroll_token = %tokens.enroll_path().display(),
            "server listening"
        );
        Ok(Server {
            addr,
            scheme,
            tokens,
            tracker,
            serve,
        })
    }

    /// The address it listens on (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, or `https://ADDR` when serving TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        self.tokens.admin()
    }

    /// The enrollment token agents register with.
    pub fn enroll_token(&self) -> &str {
        self.tokens.enroll()
    }

    /// Where the admin token is kept.
    pub fn admin_token_path(&self) -> &Path {
        self.tokens.admin_path()
    }

    /// Where the enrollment token is kept.
    pub fn enroll_token_path(&self) -> &Path {
        self.tokens.enroll_path()
    }

    /// Resolves once shutdown was asked for, held requests were answered, connections were
    /// drained and every routine ended.
    pub async fn wait(self) -> Result<(), ServerError> {
        let result = match self.serve.await {
            Ok(result) => result,
            // The task is never aborted, so this is a panic, already printed by the runtime.
            Err(_) => Err(ServerError::Serve(std::io::Error::other(
                "the http server task panicked",
            ))),
        };
        self.tracker.wait().await;
        tracing::info!(addr = %self.addr, "server stopped");
        result
    }
}
