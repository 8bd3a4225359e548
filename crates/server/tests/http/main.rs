//! The HTTP API on a real SQLite store: through `router(state).oneshot` and through a
//! started server on 127.0.0.1 port 0.

mod agent_protocol;
mod artifacts;
mod audit;
mod auth;
mod outputs;
mod rerun;
mod resources;
mod roles;
mod runs;
mod secrets;
mod server;
mod support;
mod workflows;
