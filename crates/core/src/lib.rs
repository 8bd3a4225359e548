//! Baton's pure domain core.
//!
//! Everything here is deterministic and free of I/O, clocks and async: the
//! workflow model ([`Workflow`], [`NodeSpec`]), the parser and validator for
//! workflow files ([`parse_workflow`]), the compiled graph ([`Dag`]), the
//! states of runs, nodes and attempts ([`NodeState`], [`RunState`],
//! [`AttemptState`]), and the scheduling decisions the store and server act on
//! ([`decide_attempt_end`], [`gate`], [`plan_run`], [`RunMachine`]). Time comes in
//! as arguments (milliseconds since the Unix epoch), so a test can replay an exact
//! history. [`parse_outputs`] reads the outputs a node hands to the nodes below it.
//! [`mask`] hides secret values, and their common encodings, in what a step prints.

mod admission;
mod dag;
mod diag;
mod duration;
mod machine;
pub mod mask;
mod outputs;
mod parse;
mod plan;
mod select;
mod state;
mod trigger;
mod workflow;

pub use admission::{Admission, PRIORITY_RANGE, Places, admit_new, admits_queued, to_preempt};
pub use dag::{Dag, NodeIdx};
pub use diag::{Diagnostic, Diagnostics};
pub use duration::{format_duration, parse_duration};
pub use machine::{
    AttemptDecision, Effect, Event, Rejected, RunMachine, backoff_delay_ms, decide_attempt_end,
    run_result,
};
pub use outputs::{
    MAX_OUTPUT_BYTES, MAX_OUTPUT_KEY_BYTES, MAX_OUTPUT_KEYS, OutputError, OutputProblem, Outputs,
    check_outputs, input_env_name, is_output_key, parse_outputs,
};
pub use parse::names::{check_secret_name, check_token_name, check_workflow_name};
pub use parse::{
    MAX_FILE_BYTES, MAX_LABEL_LEN, MAX_NODES, check_function_name, check_label, parse_workflow,
};
pub use plan::{Start, plan_run};
pub use select::{Requirement, missing_requirements};
pub use state::{AttemptState, NodeState, Outcome, Reason, RunState, UnknownState};
pub use trigger::{Gate, Upstream, counts_as, gate};
pub use workflow::{
    Action, Concurrency, NodeSpec, OnConflict, ResourceUse, RetryOn, RetryPolicy, Script, When,
    Workflow,
};
