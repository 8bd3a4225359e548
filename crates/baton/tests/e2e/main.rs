//! End-to-end tests: the real `baton` binary as server, agents and client.

mod audit;
mod auth;
mod concurrency;
mod dag;
mod embedded;
mod faults;
mod faults_agent;
mod faults_server;
mod faults_shutdown;
mod outputs;
mod plugins;
mod replicas;
mod rerun;
mod resources;
mod secrets;
mod step_env;
mod tls;
mod tokens;
mod triggers;
mod untrusted;
mod util;
