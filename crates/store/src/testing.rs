//! The conformance suite every [`Store`] backend must pass.
//!
//! Each case is a public async function taking a fresh [`Harness`]: a store of the backend
//! under test, empty, whose clock the case drives through a [`TestClock`] (no case ever
//! sleeps). [`conformance_tests!`](crate::conformance_tests) stamps out one
//! `#[tokio::test]` per case for a backend:
//!
//! ```ignore
//! baton_store::conformance_tests!(|clock: TestClock| async move {
//!     let dir = tempfile::tempdir().expect("temp dir");
//!     let store = SqliteStore::open(&SqliteOptions::new(dir.path().join("baton.db")))
//!         .expect("open")
//!         .with_clock(clock.as_fn());
//!     Some(Harness::new(Arc::new(store), clock, dir))
//! });
//! ```
//!
//! A factory returns `None` when its backend is unavailable (no database URL); the case
//! then says so on stderr instead of passing silently.
//!
//! This is test code: cases fail by panicking, like `assert!`, so they use `expect`
//! freely.

mod attempts;
mod audit;
mod batch;
mod claim_walk;
mod concurrency;
mod deadlines;
mod outputs;
mod postgres;
mod race;
mod replay;
mod rerun;
mod resources;
mod scheduling;
mod security;
mod service;
mod triggers;

pub use attempts::*;
pub use audit::*;
pub use batch::*;
pub use claim_walk::*;
pub use concurrency::*;
pub use deadlines::*;
pub use outputs::*;
pub use postgres::*;
pub use race::*;
pub use replay::*;
pub use rerun::*;
pub use resources::*;
pub use scheduling::*;
pub use security::*;
pub use service::*;
pub use triggers::*;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use baton_api::{Assignment, AttemptRef, RegisterAgent};
use baton_core::{Action, NodeSpec, NodeState, RetryPolicy, Script, Workflow};

use crate::Store;

/// The lease cases claim with, in milliseconds.
pub const LEASE: u64 = 10_000;

/// A clock a case moves by hand, shared with the store under test.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

impl TestClock {
    /// A clock at 2027-01-15 08:00:00 UTC.
    pub fn new() -> TestClock {
        TestClock(Arc::new(AtomicI64::new(1_800_000_000_000)))
    }

    /// The current time, in milliseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// The clock as a store takes it.
    pub fn as_fn(&self) -> Arc<dyn Fn() -> i64 + Send + Sync> {
        let c = self.0.clone();
        Arc::new(move || c.load(Ordering::SeqCst))
    }
}

/// A fresh store for one case, with its clock and whatever must live as long as it
/// (a temporary directory, a database schema).
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Its clock.
    pub clock: TestClock,
    _guard: Box<dyn Any + Send + Sync>,
}

impl Harness {
    /// Wraps a store; `guard` is dropped after the case.
    pub fn new(store: Arc<dyn Store>, clock: TestClock, guard: impl Any + Send + Sync) -> Harness {
        Harness {
            store,
            clock,
            _guard: Box::new(guard),
        }
    }
}

/// Stamps out one `#[tokio::test]` per conformance case for a backend.
///
/// The argument is a factory: a closure from [`TestClock`] to a future of
/// `Option<Harness>`. With `skipped: "…"` first, a case whose factory gives `None` prints
/// that text followed by the case's name.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(skipped: "SKIPPED (the backend is not available):", $factory);
    };
    (skipped: $skipped:literal, $factory:expr) => {
        $crate::conformance_tests!(@cases $skipped, $factory;
            apply_makes_versions,
            create_run_makes_roots_ready,
            claim_matches_labels_and_functions,
            claim_respects_resources,
            diamond_runs_in_order,
            failure_skips_downstream_while_sibling_finishes,
            retry_backs_off_then_becomes_claimable,
            start_marks_node_and_run_running,
            duplicate_report_is_idempotent,
            stale_writes_are_refused,
            heartbeat_renews_and_names_stale,
            reaped_attempt_is_lost_and_retried_by_policy,
            cancel_stops_the_run,
            logs_page_and_ignore_repeats,
            tokens_authenticate_by_kind,
            named_tokens_live_until_revoked_or_expired,
            secrets_are_kept_sealed_and_replaced_by_name,
            resealing_replaces_values_and_the_setting,
            agents_online_offline_gone,
            list_runs_filters_newest_first,
            artifacts_are_recorded,
            concurrent_claims_take_each_node_once,
            random_histories_match_the_machine,
            run_timeout_stops_the_run_as_an_error,
            run_timeout_ends_idle_runs_at_once_and_forbids_retries,
            run_timeout_leaves_finished_and_canceled_runs_alone,
            queue_timeout_names_what_nobody_offers,
            queue_timeout_default_applies_only_while_ready,
            retry_keeps_successes_and_runs_the_rest,
            retry_from_reruns_the_node_and_below,
            retry_refuses_live_runs_and_unknown_names,
            late_output_is_refused_once_the_attempt_is_not_current,
            report_batch_hands_out_what_it_made_ready,
            report_batch_answers_each_report,
            report_batch_wakes_for_nodes_it_cannot_take,
            outputs_reach_the_nodes_that_need_them,
            a_retried_attempt_s_outputs_replace_the_first,
            a_rerun_hands_kept_outputs_to_what_runs_again,
            runs_without_outputs_have_no_inputs,
            thirty_two_claimers_take_ten_thousand_nodes_once,
            claims_reports_and_reaps_at_once_succeed_each_node_once,
            concurrency_queue_admits_the_oldest_when_a_place_frees,
            concurrency_cancel_new_cancels_the_new_run_at_once,
            concurrency_cancel_running_stops_the_oldest_then_starts,
            concurrency_admits_when_runs_end_by_reap_or_deadlines,
            concurrency_queued_and_canceled_runs,
            concurrency_reruns_wait_for_a_place,
            concurrency_concurrent_creates_keep_the_limit,
            concurrency_random_histories_keep_the_limit,
            concurrency_deadline_pass_moves_stalled_queues,
            run_priority_is_kept_and_shown,
            counted_resource_admits_that_many_holders,
            disagreeing_counts_keep_every_holder_within_its_own,
            resources_are_released_on_report_reap_and_cancel,
            resource_waiters_get_it_in_ready_order,
            claims_take_the_highest_priority_first,
            equal_priority_claims_go_in_ready_order,
            backing_off_nodes_wait_whatever_their_priority,
            claims_reach_lower_priority_work_past_many_backing_off_nodes,
            resources_list_holders_and_waiters,
            concurrent_claims_never_overfill_a_resource,
            claims_find_free_nodes_behind_many_waiting_ones,
            waiting_for_an_emptier_resource_is_not_starved_by_overlapping_holders,
            a_first_waiter_that_goes_away_frees_the_resource_for_the_rest,
            a_higher_priority_waiter_goes_before_the_first_in_line,
            all_success_skips_and_any_failure_runs_after_a_failure,
            any_failure_counts_errors_but_not_skips,
            any_failure_is_skipped_when_every_need_succeeds,
            all_done_runs_once_every_need_ended,
            any_success_fires_on_the_first_success_and_the_run_waits,
            any_success_is_skipped_when_every_need_fails,
            skips_propagate_down_a_chain_into_an_all_done_node,
            queue_timeout_error_readies_any_failure_nodes,
            retry_of_a_run_with_rules_gates_on_kept_nodes,
            audit_lists_newest_first_on_the_store_clock,
            audit_pages_by_id,
            audit_filters_by_actor_and_action,
            audit_refuses_bad_entries_and_queries,
        );
    };
    (@cases $skipped:literal, $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let clock = $crate::testing::TestClock::new();
                match ($factory)(clock).await {
                    Some(h) => $crate::testing::$case(h).await,
                    None => eprintln!("{} {}", $skipped, stringify!($case)),
                }
            }
        )+
    };
}

/// A shell node `id` that needs `needs`.
pub fn node(id: &str, needs: &[&str]) -> NodeSpec {
    NodeSpec {
        id: id.to_owned(),
        needs: needs.iter().map(|s| (*s).to_owned()).collect(),
        action: Action::Run(Script::One(format!("echo {id}"))),
        env: BTreeMap::new(),
        secrets: BTreeMap::new(),
        selector: BTreeMap::new(),
        timeout_ms: None,
        queue_timeout_ms: None,
        retry: RetryPolicy::default(),
        when: Default::default(),
        resources: Vec::new(),
        artifacts: Vec::new(),
    }
}

/// A workflow of these nodes.
pub fn workflow(name: &str, nodes: Vec<NodeSpec>) -> Workflow {
    Workflow {
        name: name.to_owned(),
        description: None,
        timeout_ms: None,
        priority: 0,
        concurrency: None,
        nodes,
    }
}

/// Applies a workflow and starts a run of it; returns the run id.
pub async fn start_run(store: &dyn Store, wf: &Workflow) -> String {
    store
        .apply_workflow(wf, "# test\n")
        .await
        .expect("apply workflow");
    store
        .create_run(&baton_api::CreateRun::latest(&wf.name))
        .await
        .expect("create run")
        .run
        .id
}

/// Registers a `shell` agent with these labels and extra functions; returns its id.
pub async fn agent(
    store: &dyn Store,
    name: &str,
    labels: &[(&str, &str)],
    functions: &[&str],
) -> String {
    agent_with_token(store, name, labels, functions, &token_hash(name)).await
}

/// Registers an agent whose token has hash `hash`; returns its id.
pub async fn agent_with_token(
    store: &dyn Store,
    name: &str,
    labels: &[(&str, &str)],
    functions: &[&str],
    hash: &str,
) -> String {
    let mut fns = vec!["shell".to_owned()];
    fns.extend(functions.iter().map(|s| (*s).to_owned()));
    store
        .register_agent(
            &RegisterAgent {
                name: name.to_owned(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                slots: 4,
                functions: fns,
                version: "test".to_owned(),
            },
            hash,
        )
        .await
        .expect("register agent")
}

/// A unique token hash for a test agent.
pub fn token_hash(name: &str) -> String {
    format!("{name}-{:016x}", rand::random::<u64>())
}

/// The attempt reference of an assignment.
pub fn aref(a: &Assignment) -> AttemptRef {
    AttemptRef {
        attempt_id: a.attempt_id,
        fence: a.fence,
    }
}

/// Every node's state in a run.
pub async fn states(store: &dyn Store, run: &str) -> BTreeMap<String, NodeState> {
    store
        .run(run)
        .await
        .expect("run document")
        .nodes
        .into_iter()
        .map(|(id, n)| (id, n.status))
        .collect()
}

/// The state of one node of a run.
pub async fn state_of(store: &dyn Store, run: &str, node: &str) -> NodeState {
    states(store, run).await[node]
}

/// Claims up to `max` and returns the node ids handed out, sorted.
pub async fn claim_nodes(
    store: &dyn Store,
    agent: &str,
    max: u32,
) -> (Vec<Assignment>, BTreeSet<String>) {
    let got = store.claim(agent, max, LEASE).await.expect("claim");
    let names = got.assignments.iter().map(|a| a.node.clone()).collect();
    (got.assignments, names)
}

/// A set of node ids.
pub fn names(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}
