//! End-to-end tests: the real `baton` binary as server, agents and client.

mod auth;
mod dag;
mod embedded;
mod faults;
mod util;
