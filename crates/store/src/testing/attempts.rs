//! Cases about attempts: fencing, duplicates, leases, cancel.

use baton_api::{AttemptRef, Stream};
use baton_core::{AttemptState, NodeState, Outcome, Reason, RunState};

use super::{Harness, LEASE, agent, aref, claim_nodes, node, start_run, state_of, workflow};
use crate::StoreError;

fn is_stale<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Stale(_)))
}

/// The same report twice gives the same answer and changes nothing the second time; a
/// different report of a finished attempt is stale.
pub async fn duplicate_report_is_idempotent(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &workflow("dup", vec![node("a", &[]), node("b", &["a"])])).await;
    let (a, _) = claim_nodes(s, &ag, 1).await;
    s.start_attempt(&ag, aref(&a[0])).await.expect("start");
    let first = s
        .report(&ag, aref(&a[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(!first.duplicate);
    assert!(first.woke);
    let rev = s.run_rev(&run).await.expect("rev");

    let again = s
        .report(&ag, aref(&a[0]), Outcome::exited(0), None)
        .await
        .expect("again");
    assert!(again.duplicate);
    assert!(!again.woke);
    assert_eq!(again.outcome, first.outcome);
    assert_eq!(
        s.run_rev(&run).await.expect("rev"),
        rev,
        "a duplicate changes nothing"
    );
    assert!(is_stale(
        s.report(&ag, aref(&a[0]), Outcome::exited(1), None).await
    ));
    assert_eq!(state_of(s, &run, "a").await, NodeState::Success);
    assert_eq!(
        state_of(s, &run, "b").await,
        NodeState::Ready,
        "b was released once"
    );
}

/// Writes with a wrong fence, from another agent, or about a reaped attempt are stale
/// and change nothing.
pub async fn stale_writes_are_refused(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let other = agent(s, "b", &[], &[]).await;
    let run = start_run(s, &workflow("stale", vec![node("a", &[])])).await;
    let (a, _) = claim_nodes(s, &ag, 1).await;
    let good = aref(&a[0]);
    let bad_fence = AttemptRef {
        fence: good.fence.wrapping_add(1),
        ..good
    };
    let rev = s.run_rev(&run).await.expect("rev");

    assert!(is_stale(
        s.report(&ag, bad_fence, Outcome::exited(0), None).await
    ));
    assert!(is_stale(
        s.report(&other, good, Outcome::exited(0), None).await
    ));
    assert!(is_stale(s.start_attempt(&ag, bad_fence).await));
    assert!(is_stale(s.start_attempt(&other, good).await));
    assert!(is_stale(
        s.append_log(&ag, bad_fence, 0, Stream::Stdout, "x").await
    ));
    assert!(is_stale(s.artifact_target(&other, good).await));
    let unknown = AttemptRef {
        attempt_id: good.attempt_id + 1000,
        fence: 1,
    };
    assert!(is_stale(
        s.report(&ag, unknown, Outcome::exited(0), None).await
    ));
    assert_eq!(
        s.run_rev(&run).await.expect("rev"),
        rev,
        "stale writes change nothing"
    );
    assert_eq!(state_of(s, &run, "a").await, NodeState::Pending);

    h.clock.advance(LEASE as i64 + 1);
    let reaped = s.reap_expired().await.expect("reap");
    assert_eq!(reaped.lost, vec![good.attempt_id]);
    assert!(is_stale(
        s.report(&ag, good, Outcome::exited(0), None).await
    ));
    assert!(is_stale(s.start_attempt(&ag, good).await));
    assert_eq!(
        state_of(s, &run, "a").await,
        NodeState::Ready,
        "lost, so retried"
    );
}

/// A heartbeat renews the agent's live attempts and names the rest stale.
pub async fn heartbeat_renews_and_names_stale(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let other = agent(s, "b", &[], &[]).await;
    start_run(s, &workflow("hb", vec![node("a", &[]), node("b", &[])])).await;
    let (got, _) = claim_nodes(s, &ag, 2).await;
    let (keep, drop) = (aref(&got[0]), aref(&got[1]));

    h.clock.advance(LEASE as i64 - 1);
    let bogus = AttemptRef {
        attempt_id: keep.attempt_id + 1000,
        fence: 7,
    };
    let hb = s
        .heartbeat(&ag, &[keep, bogus], LEASE)
        .await
        .expect("heartbeat");
    assert_eq!(hb.stale, vec![bogus.attempt_id]);
    assert!(hb.cancel.is_empty());
    let foreign = s
        .heartbeat(&other, &[keep], LEASE)
        .await
        .expect("heartbeat");
    assert_eq!(
        foreign.stale,
        vec![keep.attempt_id],
        "not the other agent's"
    );
    let renewed_until = h.clock.now() + LEASE as i64;

    h.clock.advance(2);
    let reaped = s.reap_expired().await.expect("reap");
    assert_eq!(reaped.lost, vec![drop.attempt_id]);
    assert!(reaped.woke, "the lost node is ready again at once");
    assert_eq!(reaped.next_expiry, Some(renewed_until));

    let hb = s
        .heartbeat(&ag, &[keep, drop], LEASE)
        .await
        .expect("heartbeat");
    assert_eq!(hb.stale, vec![drop.attempt_id]);
    assert!(matches!(
        s.heartbeat("no-such-agent", &[], LEASE).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A lost attempt ends `error`/`lost`; by default the node gets two more tries, then errs.
pub async fn reaped_attempt_is_lost_and_retried_by_policy(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &workflow("lost", vec![node("a", &[])])).await;
    assert_eq!(s.reap_expired().await.expect("reap").next_expiry, None);
    for round in 1..=3u32 {
        let (a, _) = claim_nodes(s, &ag, 1).await;
        assert_eq!(a.len(), 1, "round {round}");
        assert_eq!(a[0].attempt, round);
        s.start_attempt(&ag, aref(&a[0])).await.expect("start");
        let reaped = s.reap_expired().await.expect("reap");
        assert!(reaped.lost.is_empty(), "not expired yet");
        assert_eq!(reaped.next_expiry, Some(h.clock.now() + LEASE as i64));
        h.clock.advance(LEASE as i64 + 1);
        let reaped = s.reap_expired().await.expect("reap");
        assert_eq!(reaped.lost, vec![a[0].attempt_id]);
        assert_eq!(reaped.woke, round < 3);
        assert_eq!(reaped.next_expiry, None);
    }
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Error);
    let node = &doc.nodes["a"];
    assert_eq!(node.status, NodeState::Error);
    assert_eq!(node.attempts.len(), 3);
    for at in &node.attempts {
        assert_eq!(at.status, AttemptState::Error);
        assert_eq!(at.reason, Some(Reason::Lost));
        assert!(at.finished_at.is_some());
    }
}

/// Cancel ends waiting and ready nodes at once, tells agents to stop live attempts, and
/// ends the run when they report. A finished run cannot be canceled.
pub async fn cancel_stops_the_run(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "cancel",
        vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &[]),
            node("d", &[]),
        ],
    );
    let run = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 2).await;
    let a = got.iter().find(|x| x.node == "a").expect("a claimed first");
    let c = got
        .iter()
        .find(|x| x.node == "c")
        .expect("c claimed second");
    s.start_attempt(&ag, aref(a)).await.expect("start");

    let doc = s.cancel_run(&run).await.expect("cancel");
    assert!(doc.cancel_requested);
    assert_eq!(doc.status, RunState::Running, "attempts are still live");
    assert_eq!(doc.nodes["b"].status, NodeState::Canceled);
    assert_eq!(doc.nodes["d"].status, NodeState::Canceled);
    assert_eq!(doc.nodes["a"].status, NodeState::Running);

    let mut expect = vec![a.attempt_id, c.attempt_id];
    expect.sort_unstable();
    let claimed = s.claim(&ag, 0, LEASE).await.expect("claim");
    assert!(claimed.assignments.is_empty());
    assert_eq!(claimed.cancel, expect);
    let hb = s
        .heartbeat(&ag, &[aref(a), aref(c)], LEASE)
        .await
        .expect("heartbeat");
    assert_eq!(hb.cancel, expect);
    assert!(hb.stale.is_empty());
    let again = s.cancel_run(&run).await.expect("cancel twice");
    assert_eq!(again.status, RunState::Running);

    s.report(&ag, aref(a), Outcome::canceled(Reason::Canceled), None)
        .await
        .expect("report a");
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Running);
    s.report(&ag, aref(c), Outcome::exited(0), None)
        .await
        .expect("report c");
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Canceled);
    assert!(doc.finished_at.is_some());
    assert_eq!(doc.nodes["a"].status, NodeState::Canceled);
    assert_eq!(doc.nodes["c"].status, NodeState::Success);
    assert!(
        s.claim(&ag, 0, LEASE)
            .await
            .expect("claim")
            .cancel
            .is_empty()
    );

    match s.cancel_run(&run).await {
        Err(StoreError::Conflict(msg)) => {
            assert!(msg.contains("already finished"), "{msg}");
            assert!(msg.contains("canceled"), "{msg}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let idle = start_run(s, &wf).await;
    let doc = s.cancel_run(&idle).await.expect("cancel idle run");
    assert_eq!(
        doc.status,
        RunState::Canceled,
        "nothing live: canceled at once"
    );
    assert!(doc.nodes.values().all(|n| n.status == NodeState::Canceled));
    assert!(claim_nodes(s, &ag, 10).await.1.is_empty());
    assert!(matches!(
        s.cancel_run("no-such-run").await,
        Err(StoreError::NotFound(_))
    ));
}
