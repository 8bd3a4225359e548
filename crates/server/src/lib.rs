//! Baton's control plane: the HTTP API of `docs/api.md` on top of a [`baton_store::Store`].
//!
//! [`Server::start`] prepares the data dir (token files, SQLite database) or connects to
//! PostgreSQL, binds the socket and spawns the HTTP server, the lease reaper and, on a
//! database shared by several replicas, the task that turns their changes into local
//! wake-ups (`events`); [`router`] gives the bare routes on an [`AppState`] for tests. Admin routes (workflows, runs, agents) take the admin token;
//! the agent protocol takes each agent's own token, which agents get by registering with
//! the enrollment token.
//!
//! Nothing polls: a held claim or run read arms a wake-up (`wake`) before it looks at the
//! store, and the handler that changed something fires it. Every task is tracked and ends
//! on the shutdown token; held requests answer at once when it is cancelled.

pub mod access;
mod auth;
mod config;
mod error;
mod events;
mod extract;
mod reaper;
mod routes;
mod secrets;
mod secrets_key;
mod server;
mod state;
mod tls;
mod tokens;
mod wake;

pub use config::{
    DEFAULT_LEASE_MS, DEFAULT_LISTEN, DEFAULT_MAX_ARTIFACT_BYTES, DEFAULT_PORT,
    DEFAULT_QUEUE_TIMEOUT_MS, ServerConfig, TlsFiles,
};
pub use error::ServerError;
pub use routes::router;
pub use secrets_key::{OLD_SECRETS_KEY_FILE, SECRETS_KEY_FILE};
pub use server::Server;
pub use state::AppState;
pub use tokens::{ADMIN_TOKEN_FILE, ENROLL_TOKEN_FILE, ServerTokens};
