//! Cases about deadlines: a run's `timeout` and a node's queue timeout.

use baton_core::{AttemptState, NodeState, Outcome, Reason, RunState};

use super::{Harness, LEASE, agent, aref, claim_nodes, node, start_run, workflow};
use crate::StoreError;

/// One hour, the default queue timeout of a store.
const HOUR: i64 = 3_600_000;

/// A run past its timeout is stopped like a cancel: waiting and ready nodes end canceled,
/// agents are told to stop live attempts, whose canceled reports are recorded as
/// `error`/`timeout`; the run ends `error` with reason `timeout`.
pub async fn run_timeout_stops_the_run_as_an_error(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut wf = workflow(
        "slow",
        vec![node("a", &[]), node("b", &["a"]), node("c", &[])],
    );
    wf.timeout_ms = Some(60_000);
    let run = start_run(s, &wf).await;
    let deadline = h.clock.now() + 60_000;
    let (got, _) = claim_nodes(s, &ag, 1).await;
    let a = &got[0];
    assert_eq!(a.node, "a");
    s.start_attempt(&ag, aref(a)).await.expect("start");

    let early = s.expire_deadlines().await.expect("deadlines");
    assert!(early.runs.is_empty());
    assert_eq!(early.next_due, Some(deadline));
    h.clock.advance(59_999);
    s.heartbeat(&ag, &[aref(a)], LEASE)
        .await
        .expect("heartbeat");
    assert!(
        s.expire_deadlines()
            .await
            .expect("deadlines")
            .runs
            .is_empty()
    );

    h.clock.advance(1);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.runs, vec![run.clone()]);
    assert!(expired.canceling, "a's agent must be told");
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Running, "a is still live");
    assert!(doc.cancel_requested);
    assert_eq!(doc.reason, Some(Reason::Timeout));
    assert_eq!(doc.nodes["b"].status, NodeState::Canceled);
    assert_eq!(doc.nodes["c"].status, NodeState::Canceled);
    assert_eq!(
        s.claim(&ag, 0, LEASE).await.expect("claim").cancel,
        vec![a.attempt_id]
    );
    let hb = s.heartbeat(&ag, &[aref(a)], LEASE).await.expect("hb");
    assert_eq!(hb.cancel, vec![a.attempt_id]);
    let again = s.expire_deadlines().await.expect("deadlines");
    assert!(again.runs.is_empty(), "a deadline fires once");
    assert_eq!(again.next_due, None);

    let canceled = Outcome::canceled(Reason::Canceled);
    let first = s
        .report(&ag, aref(a), canceled, None)
        .await
        .expect("report");
    assert_eq!(first.outcome, Outcome::error(Reason::Timeout));
    assert!(!first.duplicate);
    let repeat = s
        .report(&ag, aref(a), canceled, None)
        .await
        .expect("repeat");
    assert!(repeat.duplicate, "the same report again is the same answer");
    assert_eq!(repeat.outcome, Outcome::error(Reason::Timeout));

    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Error);
    assert_eq!(doc.reason, Some(Reason::Timeout));
    assert!(doc.finished_at.is_some());
    let node = &doc.nodes["a"];
    assert_eq!(node.status, NodeState::Error);
    assert_eq!(node.attempts[0].status, AttemptState::Error);
    assert_eq!(node.attempts[0].reason, Some(Reason::Timeout));
    assert!(node.attempts[0].message.is_some());
    match s.cancel_run(&run).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a timed-out run is finished, got {other:?}"),
    }
}

/// A run past its timeout with nothing live ends `error` in the same pass; attempts of a
/// stopped run whose agent is then lost are not retried.
pub async fn run_timeout_ends_idle_runs_at_once_and_forbids_retries(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut wf = workflow("short", vec![node("a", &[]), node("b", &["a"])]);
    wf.timeout_ms = Some(1_000);
    let first = start_run(s, &wf).await;
    h.clock.advance(1);
    let second = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 2).await;
    assert_eq!(got.len(), 2, "one root of each run");
    h.clock.advance(1_000);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.runs, vec![first.clone(), second.clone()]);

    // The agent dies instead of reporting: its leases run out.
    h.clock.advance(LEASE as i64);
    let reaped = s.reap_expired().await.expect("reap");
    assert_eq!(reaped.lost.len(), 2);
    assert!(!reaped.woke, "a stopped run retries nothing");
    for run in [&first, &second] {
        let doc = s.run(run).await.expect("run");
        assert_eq!(doc.status, RunState::Error, "{run}");
        assert_eq!(doc.reason, Some(Reason::Timeout));
        assert_eq!(doc.nodes["a"].attempts.len(), 1);
    }
    assert!(claim_nodes(s, &ag, 10).await.1.is_empty());

    let mut quick = workflow("quick", vec![node("q", &[])]);
    quick.timeout_ms = Some(1_000);
    let nothing_live = start_run(s, &quick).await;
    h.clock.advance(1_000);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.runs, vec![nothing_live.clone()]);
    assert!(!expired.canceling);
    let doc = s.run(&nothing_live).await.expect("run");
    assert_eq!(doc.status, RunState::Error);
    assert_eq!(doc.nodes["q"].status, NodeState::Canceled);
}

/// A deadline does not touch a run that finished first, nor one a user canceled first.
pub async fn run_timeout_leaves_finished_and_canceled_runs_alone(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut wf = workflow("fast", vec![node("a", &[])]);
    wf.timeout_ms = Some(10_000);
    let done = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 1).await;
    s.report(&ag, aref(&got[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let canceled = start_run(s, &wf).await;
    s.cancel_run(&canceled).await.expect("cancel");

    h.clock.advance(10_000);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert!(expired.runs.is_empty());
    assert_eq!(expired.next_due, None, "seen deadlines are cleared");
    let done = s.run(&done).await.expect("run");
    assert_eq!((done.status, done.reason), (RunState::Success, None));
    let canceled = s.run(&canceled).await.expect("run");
    assert_eq!(
        (canceled.status, canceled.reason),
        (RunState::Canceled, None)
    );
}

/// A node nobody claims within its queue timeout ends `error` (`no_agent`) with a message
/// naming what no online agent offers; its downstream is skipped, its siblings go on.
pub async fn queue_timeout_names_what_nobody_offers(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[("os", "linux")], &[]).await;
    let mut gpu = node("gpu", &[]);
    gpu.selector.insert("gpu".into(), "yes".into());
    gpu.queue_timeout_ms = Some(30_000);
    let wf = workflow(
        "queue",
        vec![gpu, node("after", &["gpu"]), node("plain", &[])],
    );
    let run = start_run(s, &wf).await;
    let (got, names) = claim_nodes(s, &ag, 10).await;
    assert_eq!(names, super::names(&["plain"]));
    s.report(&ag, aref(&got[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let early = s.expire_deadlines().await.expect("deadlines");
    assert!(early.nodes.is_empty());
    assert_eq!(early.next_due, Some(h.clock.now() + 30_000));

    h.clock.advance(30_000);
    // Keep the agent online so the message can say what it lacks.
    s.heartbeat(&ag, &[], LEASE).await.expect("heartbeat");
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.nodes, vec![(run.clone(), "gpu".to_owned())]);
    assert!(expired.runs.is_empty());
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Error);
    let node = &doc.nodes["gpu"];
    assert_eq!(node.status, NodeState::Error);
    assert_eq!(node.reason, Some(Reason::NoAgent));
    assert!(node.attempts.is_empty());
    let message = node.message.as_deref().expect("a message");
    assert!(message.contains("30s"), "{message}");
    assert!(message.contains("gpu=yes"), "{message}");
    assert_eq!(doc.nodes["after"].status, NodeState::Skipped);
    assert_eq!(doc.nodes["plain"].status, NodeState::Success);
}

/// Without a queue timeout of its own a node gets the store's (an hour by default); a
/// claimed node is never ended by it.
pub async fn queue_timeout_default_applies_only_while_ready(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut busy = node("busy", &[]);
    busy.selector.insert("pool".into(), "busy".into());
    let wf = workflow("default", vec![busy, node("claimed", &[])]);
    let run = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got.len(), 1);
    s.start_attempt(&ag, aref(&got[0])).await.expect("start");

    h.clock.advance(HOUR - 1);
    s.heartbeat(&ag, &[aref(&got[0])], LEASE).await.expect("hb");
    assert!(
        s.expire_deadlines()
            .await
            .expect("deadlines")
            .nodes
            .is_empty()
    );
    h.clock.advance(1);
    s.heartbeat(&ag, &[aref(&got[0])], LEASE).await.expect("hb");
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.nodes, vec![(run.clone(), "busy".to_owned())]);
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.nodes["claimed"].status, NodeState::Running);
    assert_eq!(doc.status, RunState::Running);
    assert!(
        doc.nodes["busy"]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("pool=busy")),
        "{:?}",
        doc.nodes["busy"].message
    );
}
