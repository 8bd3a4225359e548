//! `RunMachine` scenarios: ordering, skipping, trigger rules, re-runs, retries, cancel and
//! refused events.

use baton_core::{
    Dag, Effect, Event, NodeIdx, NodeState, Outcome, Reason, Rejected, RetryOn, RetryPolicy,
    RunMachine, RunState, When,
};

fn dag(nodes: &[(&str, &[&str])]) -> Dag {
    let ids = nodes.iter().map(|(id, _)| id.to_string()).collect();
    let needs: Vec<Vec<String>> = nodes
        .iter()
        .map(|(_, n)| n.iter().map(|s| s.to_string()).collect())
        .collect();
    Dag::from_edges(ids, &needs)
}

fn machine(nodes: &[(&str, &[&str])]) -> RunMachine {
    let d = dag(nodes);
    let n = d.len();
    RunMachine::new(d, vec![RetryPolicy::default(); n])
}

/// A machine whose nodes carry trigger rules: `(id, needs, when)`.
fn ruled(nodes: &[(&str, &[&str], When)]) -> RunMachine {
    let plain: Vec<(&str, &[&str])> = nodes.iter().map(|&(id, needs, _)| (id, needs)).collect();
    let rules = nodes.iter().map(|&(_, _, w)| w).collect();
    RunMachine::with_rules(dag(&plain), Vec::new(), rules)
}

fn idx(m: &RunMachine, id: &str) -> NodeIdx {
    m.dag().index(id).unwrap_or_else(|| panic!("no node {id}"))
}

fn state(m: &RunMachine, id: &str) -> NodeState {
    m.node_state(idx(m, id))
}

fn apply(m: &mut RunMachine, ev: Event) -> Vec<Effect> {
    m.apply(ev.clone(), 0.5)
        .unwrap_or_else(|e| panic!("{ev:?} refused: {e}"))
}

/// Claims and starts the node's next attempt; returns its number.
fn claim_start(m: &mut RunMachine, id: &str) -> u32 {
    let i = idx(m, id);
    apply(m, Event::Claim(i));
    let a = m.attempts(i);
    apply(m, Event::Start(i, a));
    a
}

/// Runs the node's next attempt to the given end.
fn run(m: &mut RunMachine, id: &str, outcome: Outcome) -> Vec<Effect> {
    let a = claim_start(m, id);
    let i = idx(m, id);
    apply(m, Event::End(i, a, outcome))
}

fn ready_ids(m: &RunMachine) -> Vec<&str> {
    m.ready().into_iter().map(|i| m.dag().id(i)).collect()
}

/// Applies an event that must be refused, and checks that it changed nothing.
fn refused(m: &mut RunMachine, ev: Event) -> Rejected {
    let before = m.clone();
    let err = match m.apply(ev.clone(), 0.5) {
        Err(e) => e,
        Ok(fx) => panic!("{ev:?} accepted: {fx:?}"),
    };
    assert_eq!(*m, before, "refused {ev:?} changed the machine");
    err
}

const DIAMOND: &[(&str, &[&str])] = &[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])];

#[test]
fn diamond_runs_in_dependency_order() {
    let mut m = machine(DIAMOND);
    assert_eq!(m.run_state(), RunState::Pending);
    assert_eq!(ready_ids(&m), ["a"]);
    let d = idx(&m, "d");
    assert_eq!(
        refused(&mut m, Event::Claim(d)),
        Rejected::WrongState(NodeState::Waiting)
    );

    let a = claim_start(&mut m, "a");
    assert_eq!(m.run_state(), RunState::Running);
    assert_eq!(state(&m, "a"), NodeState::Running);
    let fx = apply(&mut m, Event::End(0, a, Outcome::exited(0)));
    assert_eq!(
        fx,
        [
            Effect::Node(0, NodeState::Success),
            Effect::Node(1, NodeState::Ready),
            Effect::Node(2, NodeState::Ready),
        ]
    );
    assert_eq!(ready_ids(&m), ["b", "c"]);

    run(&mut m, "b", Outcome::exited(0));
    assert_eq!(state(&m, "d"), NodeState::Waiting, "d still needs c");
    assert_eq!(ready_ids(&m), ["c"]);
    run(&mut m, "c", Outcome::exited(0));
    assert_eq!(ready_ids(&m), ["d"]);

    let fx = run(&mut m, "d", Outcome::exited(0));
    assert_eq!(fx.last(), Some(&Effect::Run(RunState::Success)));
    assert_eq!(m.run_state(), RunState::Success);
    assert_eq!(m.node_states(), [NodeState::Success; 4]);
}

#[test]
fn failure_skips_downstream_while_independent_branch_succeeds() {
    let mut m = machine(&[
        ("a", &[]),
        ("b", &["a"]),
        ("c", &["b"]),
        ("join", &["c", "y"]),
        ("x", &[]),
        ("y", &["x"]),
    ]);
    let x = claim_start(&mut m, "x");
    let fx = run(&mut m, "a", Outcome::exited(2));
    for id in ["b", "c", "join"] {
        assert_eq!(state(&m, id), NodeState::Skipped, "{id}");
        assert!(fx.contains(&Effect::Node(idx(&m, id), NodeState::Skipped)));
    }
    assert_eq!(state(&m, "a"), NodeState::Failure);
    assert_eq!(state(&m, "x"), NodeState::Running);
    assert!(!m.run_state().is_terminal(), "x is still running");

    let xi = idx(&m, "x");
    apply(&mut m, Event::End(xi, x, Outcome::exited(0)));
    assert_eq!(ready_ids(&m), ["y"]);
    assert!(!m.run_state().is_terminal());
    let fx = run(&mut m, "y", Outcome::exited(0));
    assert_eq!(state(&m, "y"), NodeState::Success);
    assert_eq!(
        state(&m, "join"),
        NodeState::Skipped,
        "skipped never becomes ready"
    );
    assert_eq!(fx.last(), Some(&Effect::Run(RunState::Failure)));
    assert_eq!(m.run_state(), RunState::Failure);
}

#[test]
fn error_upstream_ends_run_error() {
    let mut m = machine(&[("a", &[]), ("b", &["a"])]);
    run(&mut m, "a", Outcome::error(Reason::Setup));
    assert_eq!(state(&m, "b"), NodeState::Skipped);
    assert_eq!(m.run_state(), RunState::Error);
}

#[test]
fn retry_makes_node_ready_with_next_attempt() {
    let d = dag(&[("a", &[]), ("b", &["a"])]);
    let flaky = RetryPolicy {
        attempts: 3,
        on: vec![RetryOn::Failure],
        backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        lost_attempts: 2,
    };
    let mut m = RunMachine::new(d, vec![flaky, RetryPolicy::default()]);
    let a = claim_start(&mut m, "a");
    assert_eq!(a, 1);
    let fx = m.apply(Event::End(0, 1, Outcome::exited(1)), 0.0).unwrap();
    assert_eq!(
        fx,
        [
            Effect::Node(0, NodeState::Ready),
            Effect::RetryAfter(0, 500)
        ]
    );
    assert_eq!(state(&m, "a"), NodeState::Ready);
    assert_eq!(state(&m, "b"), NodeState::Waiting, "a retry skips nothing");
    assert_eq!(m.attempts(0), 1);

    // The old attempt's late reports are refused.
    assert_eq!(
        refused(&mut m, Event::End(0, 1, Outcome::exited(0))),
        Rejected::Stale
    );
    assert_eq!(refused(&mut m, Event::Start(0, 1)), Rejected::Stale);

    apply(&mut m, Event::Claim(0));
    assert_eq!(m.attempts(0), 2);
    assert_eq!(refused(&mut m, Event::Start(0, 1)), Rejected::Stale);
    apply(&mut m, Event::Start(0, 2));
    let fx = m.apply(Event::End(0, 2, Outcome::exited(1)), 1.0).unwrap();
    assert_eq!(
        fx,
        [
            Effect::Node(0, NodeState::Ready),
            Effect::RetryAfter(0, 2_000)
        ]
    );

    let a3 = claim_start(&mut m, "a");
    assert_eq!(a3, 3);
    apply(&mut m, Event::End(0, 3, Outcome::exited(0)));
    assert_eq!(state(&m, "a"), NodeState::Success);
    assert_eq!(ready_ids(&m), ["b"]);
}

#[test]
fn retries_exhausted_end_in_failure() {
    let d = dag(&[("a", &[])]);
    let twice = RetryPolicy {
        attempts: 2,
        on: vec![RetryOn::Failure],
        ..RetryPolicy::default()
    };
    let mut m = RunMachine::new(d, vec![twice]);
    run(&mut m, "a", Outcome::exited(1));
    assert_eq!(state(&m, "a"), NodeState::Ready);
    run(&mut m, "a", Outcome::exited(1));
    assert_eq!(state(&m, "a"), NodeState::Failure);
    assert_eq!(m.attempts(0), 2);
    assert_eq!(m.run_state(), RunState::Failure);
}

#[test]
fn lost_agent_is_retried_twice_by_default_then_errors() {
    let mut m = machine(&[("a", &[])]);
    for attempt in 1..=2 {
        let fx = run(&mut m, "a", Outcome::error(Reason::Lost));
        assert_eq!(
            fx,
            [Effect::Node(0, NodeState::Ready), Effect::RetryAfter(0, 0)],
            "attempt {attempt}"
        );
    }
    // A lost attempt need not have started.
    apply(&mut m, Event::Claim(0));
    let fx = apply(
        &mut m,
        Event::End(0, 3, Outcome::canceled(Reason::Shutdown)),
    );
    assert_eq!(
        fx,
        [
            Effect::Node(0, NodeState::Error),
            Effect::Run(RunState::Error)
        ]
    );
    assert_eq!(m.attempts(0), 3);
}

#[test]
fn cancel_stops_waiting_and_ready_at_once_and_kills_open_attempts() {
    let d = dag(&[
        ("run", &[]),
        ("claimed", &[]),
        ("idle", &[]),
        ("after", &["run"]),
        ("done", &[]),
    ]);
    let retrying = RetryPolicy {
        attempts: 5,
        on: vec![RetryOn::Failure, RetryOn::Error, RetryOn::Lost],
        ..RetryPolicy::default()
    };
    let mut m = RunMachine::new(d, vec![retrying; 5]);
    run(&mut m, "done", Outcome::exited(0));
    let r = claim_start(&mut m, "run");
    apply(&mut m, Event::Claim(1));

    let fx = apply(&mut m, Event::Cancel);
    assert!(m.cancel_requested());
    let (run_i, claimed, idle, after) = (0, 1, 2, 3);
    assert_eq!(
        fx,
        [
            Effect::Kill(run_i, 1),
            Effect::Kill(claimed, 1),
            Effect::Node(idle, NodeState::Canceled),
            Effect::Node(after, NodeState::Canceled),
        ]
    );
    assert_eq!(
        state(&m, "done"),
        NodeState::Success,
        "terminal states never change"
    );
    assert_eq!(state(&m, "run"), NodeState::Running);
    assert_eq!(state(&m, "claimed"), NodeState::Pending);
    assert!(m.ready().is_empty());
    assert!(!m.run_state().is_terminal(), "open attempts must end first");

    // A retryable failure is not retried once the run is canceling.
    apply(&mut m, Event::End(run_i, r, Outcome::exited(1)));
    assert_eq!(state(&m, "run"), NodeState::Failure);
    assert!(!m.run_state().is_terminal());

    let fx = apply(
        &mut m,
        Event::End(claimed, 1, Outcome::canceled(Reason::Canceled)),
    );
    assert_eq!(
        fx,
        [
            Effect::Node(claimed, NodeState::Canceled),
            Effect::Run(RunState::Canceled)
        ]
    );
    assert_eq!(m.run_state(), RunState::Canceled);
    assert_eq!(refused(&mut m, Event::Cancel), Rejected::Finished);
}

#[test]
fn cancel_with_nothing_open_ends_run_at_once() {
    let mut m = machine(DIAMOND);
    let fx = apply(&mut m, Event::Cancel);
    assert_eq!(fx.last(), Some(&Effect::Run(RunState::Canceled)));
    assert_eq!(m.node_states(), [NodeState::Canceled; 4]);
    assert_eq!(m.run_state(), RunState::Canceled);
}

#[test]
fn cancel_wins_over_success_of_the_last_open_attempt() {
    let mut m = machine(&[("a", &[]), ("b", &["a"])]);
    let a = claim_start(&mut m, "a");
    apply(&mut m, Event::Cancel);
    let again = apply(&mut m, Event::Cancel);
    assert_eq!(
        again,
        [Effect::Kill(0, a)],
        "a repeated cancel only repeats the kill"
    );
    apply(&mut m, Event::End(0, a, Outcome::exited(0)));
    assert_eq!(state(&m, "a"), NodeState::Success);
    assert_eq!(state(&m, "b"), NodeState::Canceled);
    assert_eq!(m.run_state(), RunState::Canceled);
}

#[test]
fn stale_and_duplicate_events_are_refused_and_change_nothing() {
    let mut m = machine(DIAMOND);
    let (a, b) = (idx(&m, "a"), idx(&m, "b"));
    assert_eq!(
        refused(&mut m, Event::Start(a, 1)),
        Rejected::Stale,
        "start before claim"
    );
    assert_eq!(
        refused(&mut m, Event::End(a, 0, Outcome::exited(0))),
        Rejected::Stale
    );
    apply(&mut m, Event::Claim(a));
    assert_eq!(
        refused(&mut m, Event::Claim(a)),
        Rejected::WrongState(NodeState::Pending)
    );
    assert_eq!(
        refused(&mut m, Event::Start(a, 2)),
        Rejected::Stale,
        "future attempt"
    );
    assert_eq!(
        refused(&mut m, Event::End(a, 2, Outcome::exited(0))),
        Rejected::Stale
    );
    apply(&mut m, Event::Start(a, 1));
    assert_eq!(
        refused(&mut m, Event::Start(a, 1)),
        Rejected::WrongState(NodeState::Running)
    );
    apply(&mut m, Event::End(a, 1, Outcome::exited(0)));
    for outcome in [
        Outcome::exited(0),
        Outcome::exited(1),
        Outcome::error(Reason::Lost),
    ] {
        assert_eq!(
            refused(&mut m, Event::End(a, 1, outcome)),
            Rejected::Stale,
            "duplicate end"
        );
    }
    assert_eq!(
        refused(&mut m, Event::Start(a, 1)),
        Rejected::Stale,
        "late start"
    );
    assert_eq!(
        refused(&mut m, Event::Claim(a)),
        Rejected::WrongState(NodeState::Success)
    );
    assert_eq!(
        refused(&mut m, Event::End(b, 1, Outcome::exited(0))),
        Rejected::Stale
    );
    for bad in [4, 99, NodeIdx::MAX] {
        assert_eq!(
            refused(&mut m, Event::Claim(bad)),
            Rejected::UnknownNode(bad)
        );
        assert_eq!(
            refused(&mut m, Event::Start(bad, 1)),
            Rejected::UnknownNode(bad)
        );
        let end = Event::End(bad, 1, Outcome::exited(0));
        assert_eq!(refused(&mut m, end), Rejected::UnknownNode(bad));
    }
    assert_eq!(state(&m, "a"), NodeState::Success);
    assert_eq!(m.attempts(a), 1);
}

#[test]
fn finished_run_refuses_everything() {
    let mut m = machine(&[("a", &[])]);
    run(&mut m, "a", Outcome::exited(0));
    assert_eq!(m.run_state(), RunState::Success);
    for ev in [
        Event::Claim(0),
        Event::Start(0, 1),
        Event::End(0, 1, Outcome::exited(1)),
        Event::Cancel,
    ] {
        assert_eq!(refused(&mut m, ev), Rejected::Finished);
    }
}

#[test]
fn graph_without_nodes_succeeds_at_once() {
    let mut m = RunMachine::new(dag(&[]), Vec::new());
    assert_eq!(m.run_state(), RunState::Success);
    assert!(m.ready().is_empty());
    assert!(m.node_states().is_empty());
    assert_eq!(refused(&mut m, Event::Cancel), Rejected::Finished);
    assert_eq!(refused(&mut m, Event::Claim(0)), Rejected::Finished);
}

#[test]
fn nodes_without_needs_are_all_ready() {
    let m = machine(&[("a", &[]), ("b", &[]), ("c", &[])]);
    assert_eq!(ready_ids(&m), ["a", "b", "c"]);
    assert_eq!(m.run_state(), RunState::Pending);
}

#[test]
fn missing_policies_fall_back_to_the_default() {
    let d = dag(&[("a", &[]), ("b", &[])]);
    let mut m = RunMachine::new(d, Vec::new());
    run(&mut m, "a", Outcome::error(Reason::Lost));
    assert_eq!(
        state(&m, "a"),
        NodeState::Ready,
        "default policy retries a lost agent"
    );
    run(&mut m, "b", Outcome::exited(1));
    assert_eq!(
        state(&m, "b"),
        NodeState::Failure,
        "default policy never retries a failure"
    );
}

#[test]
fn any_failure_runs_after_a_failure_and_the_run_still_fails() {
    let mut m = ruled(&[
        ("build", &[], When::AllSuccess),
        ("deploy", &["build"], When::AllSuccess),
        ("notify", &["build"], When::AnyFailure),
    ]);
    let fx = run(&mut m, "build", Outcome::exited(1));
    assert_eq!(
        fx,
        [
            Effect::Node(0, NodeState::Failure),
            Effect::Node(1, NodeState::Skipped),
            Effect::Node(2, NodeState::Ready),
        ]
    );
    let fx = run(&mut m, "notify", Outcome::exited(0));
    assert_eq!(fx.last(), Some(&Effect::Run(RunState::Failure)));
    assert_eq!(state(&m, "deploy"), NodeState::Skipped);
}

#[test]
fn any_failure_counts_errors_but_not_skips() {
    let mut m = ruled(&[
        ("a", &[], When::AllSuccess),
        ("b", &["a"], When::AllSuccess),
        ("on_b", &["b"], When::AnyFailure),
        ("x", &[], When::AllSuccess),
        ("on_x", &["x"], When::AnyFailure),
    ]);
    run(&mut m, "a", Outcome::exited(1));
    assert_eq!(state(&m, "b"), NodeState::Skipped);
    assert_eq!(
        state(&m, "on_b"),
        NodeState::Skipped,
        "a skipped need is not a failure"
    );
    run(&mut m, "x", Outcome::error(Reason::Setup));
    assert_eq!(state(&m, "on_x"), NodeState::Ready, "an error is");
}

#[test]
fn any_failure_is_skipped_when_every_need_succeeds() {
    let mut m = ruled(&[
        ("a", &[], When::AllSuccess),
        ("b", &[], When::AllSuccess),
        ("cleanup", &["a", "b"], When::AnyFailure),
    ]);
    run(&mut m, "a", Outcome::exited(0));
    assert_eq!(state(&m, "cleanup"), NodeState::Waiting, "b may still fail");
    let fx = run(&mut m, "b", Outcome::exited(0));
    assert_eq!(
        fx,
        [
            Effect::Node(1, NodeState::Success),
            Effect::Node(2, NodeState::Skipped),
            Effect::Run(RunState::Success),
        ]
    );
}

#[test]
fn all_done_waits_for_every_need_then_runs_whatever_they_did() {
    let mut m = ruled(&[
        ("a", &[], When::AllSuccess),
        ("b", &[], When::AllSuccess),
        ("report", &["a", "b"], When::AllDone),
    ]);
    run(&mut m, "a", Outcome::exited(1));
    assert_eq!(state(&m, "report"), NodeState::Waiting, "b has not ended");
    run(&mut m, "b", Outcome::exited(0));
    assert_eq!(ready_ids(&m), ["report"]);
    let fx = run(&mut m, "report", Outcome::exited(0));
    assert_eq!(fx.last(), Some(&Effect::Run(RunState::Failure)));
}

#[test]
fn any_success_fires_on_the_first_success_and_the_run_waits_for_the_rest() {
    let mut m = ruled(&[
        ("mirror1", &[], When::AllSuccess),
        ("mirror2", &[], When::AllSuccess),
        ("fetch", &["mirror1", "mirror2"], When::AnySuccess),
    ]);
    let slow = claim_start(&mut m, "mirror1");
    run(&mut m, "mirror2", Outcome::exited(0));
    assert_eq!(ready_ids(&m), ["fetch"], "fetch does not wait for mirror1");
    run(&mut m, "fetch", Outcome::exited(0));
    assert_eq!(state(&m, "fetch"), NodeState::Success);
    assert!(!m.run_state().is_terminal(), "mirror1 still runs");
    let fx = apply(&mut m, Event::End(0, slow, Outcome::exited(1)));
    assert_eq!(
        fx,
        [
            Effect::Node(0, NodeState::Failure),
            Effect::Run(RunState::Failure)
        ],
        "a late end changes nothing below a node that already ran"
    );
}

#[test]
fn any_success_is_skipped_when_every_need_fails() {
    let mut m = ruled(&[
        ("mirror1", &[], When::AllSuccess),
        ("mirror2", &[], When::AllSuccess),
        ("fetch", &["mirror1", "mirror2"], When::AnySuccess),
        ("after", &["fetch"], When::AllSuccess),
    ]);
    run(&mut m, "mirror1", Outcome::exited(1));
    assert_eq!(
        state(&m, "fetch"),
        NodeState::Waiting,
        "mirror2 may succeed"
    );
    run(&mut m, "mirror2", Outcome::error(Reason::Timeout));
    assert_eq!(state(&m, "fetch"), NodeState::Skipped);
    assert_eq!(state(&m, "after"), NodeState::Skipped);
    assert_eq!(m.run_state(), RunState::Failure);
}

#[test]
fn skips_propagate_down_a_chain_into_an_all_done_node() {
    let mut m = ruled(&[
        ("a", &[], When::AllSuccess),
        ("b", &["a"], When::AllSuccess),
        ("c", &["b"], When::AllSuccess),
        ("report", &["c"], When::AllDone),
        ("after", &["report"], When::AllSuccess),
    ]);
    let fx = run(&mut m, "a", Outcome::exited(1));
    assert_eq!(
        fx,
        [
            Effect::Node(0, NodeState::Failure),
            Effect::Node(1, NodeState::Skipped),
            Effect::Node(2, NodeState::Skipped),
            Effect::Node(3, NodeState::Ready),
        ]
    );
    run(&mut m, "report", Outcome::exited(0));
    assert_eq!(
        ready_ids(&m),
        ["after"],
        "all_done's success releases below"
    );
    run(&mut m, "after", Outcome::exited(0));
    assert_eq!(m.run_state(), RunState::Failure);
}

#[test]
fn skipped_nodes_do_not_count_in_the_run_result() {
    let mut m = ruled(&[
        ("a", &[], When::AllSuccess),
        ("on_fail", &["a"], When::AnyFailure),
    ]);
    run(&mut m, "a", Outcome::exited(0));
    assert_eq!(state(&m, "on_fail"), NodeState::Skipped);
    assert_eq!(m.run_state(), RunState::Success);
}

#[test]
fn cancel_ends_clean_up_nodes_too() {
    let mut m = ruled(&[
        ("a", &[], When::AllSuccess),
        ("cleanup", &["a"], When::AnyFailure),
        ("report", &["a"], When::AllDone),
    ]);
    let a = claim_start(&mut m, "a");
    apply(&mut m, Event::Cancel);
    assert_eq!(state(&m, "cleanup"), NodeState::Canceled);
    assert_eq!(state(&m, "report"), NodeState::Canceled);
    apply(
        &mut m,
        Event::End(0, a, Outcome::canceled(Reason::Canceled)),
    );
    assert_eq!(m.run_state(), RunState::Canceled);
}

#[test]
fn rerun_keeps_successes_and_gates_the_rest_on_them() {
    let d = dag(&[
        ("ok", &[]),
        ("bad", &[]),
        ("either", &["ok", "bad"]),
        ("both", &["ok", "bad"]),
        ("on_ok", &["ok"]),
        ("after", &["on_ok"]),
        ("report", &["after"]),
    ]);
    let rules = vec![
        When::AllSuccess,
        When::AllSuccess,
        When::AnySuccess,
        When::AllSuccess,
        When::AnyFailure,
        When::AllSuccess,
        When::AllDone,
    ];
    let mut m = RunMachine::rerun(d, Vec::new(), rules, &[true]);
    use NodeState::*;
    assert_eq!(
        m.node_states(),
        [Success, Ready, Ready, Waiting, Skipped, Skipped, Ready],
        "a kept success counts as one for `either` and can never be a failure for `on_ok`"
    );
    assert_eq!(m.attempts(0), 0, "a kept node never runs");
    run(&mut m, "bad", Outcome::exited(0));
    assert_eq!(state(&m, "both"), Ready);
    for id in ["either", "both", "report"] {
        run(&mut m, id, Outcome::exited(0));
    }
    assert_eq!(m.run_state(), RunState::Success);
}

#[test]
fn rerun_with_nothing_left_to_run_is_over_at_once() {
    let d = dag(&[("a", &[]), ("on_fail", &["a"])]);
    let m = RunMachine::rerun(
        d,
        Vec::new(),
        vec![When::AllSuccess, When::AnyFailure],
        &[true],
    );
    assert_eq!(m.node_states(), [NodeState::Success, NodeState::Skipped]);
    assert_eq!(m.run_state(), RunState::Success);
}
