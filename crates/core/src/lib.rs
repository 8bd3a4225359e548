//! Baton's pure domain core.
//!
//! Everything here is deterministic and free of I/O, clocks and async: the
//! workflow model ([`Workflow`], [`NodeSpec`]), the parser and validator for
//! workflow files ([`parse_workflow`]), the compiled graph ([`Dag`]), the
//! states of runs, nodes and attempts ([`NodeState`], [`RunState`],
//! [`AttemptState`]), and the scheduling decisions the store and server act on
//! ([`decide_attempt_end`], [`RunMachine`]). Time comes in as arguments
//! (milliseconds since the Unix epoch), so a test can replay an exact history.

mod dag;
mod diag;
mod duration;
mod machine;
mod parse;
mod select;
mod state;
mod trigger;
mod workflow;

pub use dag::{Dag, NodeIdx};
pub use diag::{Diagnostic, Diagnostics};
pub use duration::{format_duration, parse_duration};
pub use machine::{
    AttemptDecision, Effect, Event, Rejected, RunMachine, backoff_delay_ms, decide_attempt_end,
    run_result,
};
pub use parse::{MAX_FILE_BYTES, MAX_NODES, parse_workflow};
pub use select::{Requirement, missing_requirements};
pub use state::{AttemptState, NodeState, Outcome, Reason, RunState, UnknownState};
pub use trigger::{Gate, Upstream, counts_as, gate};
pub use workflow::{
    Action, Concurrency, NodeSpec, OnConflict, ResourceUse, RetryOn, RetryPolicy, Script, When,
    Workflow,
};
