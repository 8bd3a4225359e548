//! Baton's command line, client side: every command that talks to a server through its
//! HTTP API ([`client::Client`] over the `baton-api` types), and the local checks and
//! text output around them.
//!
//! One module per subcommand ([`run`], [`validate`], [`runs`], [`agents`],
//! [`resources`], [`workflows`]); [`args`] holds their flags (clap derive), [`connection`] finds the
//! server and token, [`exit`] maps every failure to the contract's exit codes. The binary
//! (`crates/baton`) parses the command line, starts embedded servers and agents, and
//! calls in here. Data goes to stdout, messages and progress to stderr.

pub mod agents;
pub mod args;
pub mod audit;
pub mod client;
pub mod connection;
pub mod escape;
pub mod exit;
mod live;
mod logs;
pub mod output;
pub mod resources;
pub mod run;
pub mod runs;
pub mod secrets;
pub mod tokens;
pub mod validate;
pub mod workflows;

pub use client::Client;
pub use connection::{Connection, TokenOrigin, default_data_dir};
pub use exit::{CliError, Exit, TokenSource};
