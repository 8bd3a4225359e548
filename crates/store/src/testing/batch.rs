//! Cases for reports sent in batches with a claim for the slots they free.

use baton_api::{Assignment, AttemptReport};
use baton_core::{NodeState, Outcome, RunState};

use super::{Harness, LEASE, agent, claim_nodes, names, node, start_run, state_of, workflow};

fn ended(a: &Assignment, outcome: Outcome) -> AttemptReport {
    AttemptReport {
        attempt_id: a.attempt_id,
        fence: a.fence,
        outcome,
        message: None,
        outputs: Default::default(),
    }
}

/// Each report of a chain hands out the node it made ready, so nobody needs waking; a
/// node left ready by the batch's claim wakes others.
pub async fn report_batch_hands_out_what_it_made_ready(h: Harness) {
    let s = &*h.store;
    let wf = workflow(
        "batch-chain",
        vec![node("a", &[]), node("b", &["a"]), node("c", &["b"])],
    );
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &wf).await;
    let (a, got) = claim_nodes(s, &ag, 1).await;
    assert_eq!(got, names(&["a"]));

    let done = s
        .report_batch(&ag, &[ended(&a[0], Outcome::exited(0))], 1, LEASE)
        .await
        .expect("report a");
    assert_eq!(done.reports.len(), 1);
    let first = done.reports[0].as_ref().expect("a accepted");
    assert!(!first.duplicate);
    assert_eq!(first.outcome, Outcome::exited(0));
    let b: Vec<&str> = done.assignments.iter().map(|x| x.node.as_str()).collect();
    assert_eq!(b, ["b"]);
    assert!(!done.woke, "its own claim took b");
    assert_eq!(state_of(s, &run, "b").await, NodeState::Pending);

    // No slot asked for: c is left ready for whoever claims.
    let done = s
        .report_batch(
            &ag,
            &[ended(&done.assignments[0], Outcome::exited(0))],
            0,
            LEASE,
        )
        .await
        .expect("report b");
    assert!(done.assignments.is_empty());
    assert!(done.woke, "c is ready and nobody took it");
    let (c, got) = claim_nodes(s, &ag, 4).await;
    assert_eq!(got, names(&["c"]));
    let done = s
        .report_batch(&ag, &[ended(&c[0], Outcome::exited(0))], 4, LEASE)
        .await
        .expect("report c");
    assert!(done.assignments.is_empty());
    assert!(!done.woke);
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Success);
}

/// A stale or repeated report in a batch does not spoil the others.
pub async fn report_batch_answers_each_report(h: Harness) {
    let s = &*h.store;
    let wf = workflow(
        "batch-mixed",
        vec![node("a", &[]), node("b", &[]), node("c", &[])],
    );
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 3).await;
    let by = |n: &str| got.iter().find(|x| x.node == n).expect("claimed").clone();
    let (a, b, c) = (by("a"), by("b"), by("c"));
    s.report_batch(&ag, &[ended(&a, Outcome::exited(0))], 0, LEASE)
        .await
        .expect("report a");

    let mut forged = ended(&b, Outcome::exited(0));
    forged.fence = b.fence.wrapping_add(1);
    let done = s
        .report_batch(
            &ag,
            &[
                ended(&a, Outcome::exited(0)),
                forged,
                ended(&c, Outcome::exited(3)),
            ],
            0,
            LEASE,
        )
        .await
        .expect("batch");
    let a_again = done.reports[0].as_ref().expect("a repeated");
    assert!(a_again.duplicate);
    assert!(done.reports[1].is_none(), "wrong fence is stale");
    let c_done = done.reports[2].as_ref().expect("c accepted");
    assert!(!c_done.duplicate);
    assert_eq!(state_of(s, &run, "b").await, NodeState::Pending);
    assert_eq!(state_of(s, &run, "c").await, NodeState::Failure);

    // A report of another agent's attempt is stale too.
    let other = agent(s, "other", &[], &[]).await;
    let done = s
        .report_batch(&other, &[ended(&b, Outcome::exited(0))], 1, LEASE)
        .await
        .expect("foreign batch");
    assert!(done.reports[0].is_none());
    assert_eq!(state_of(s, &run, "b").await, NodeState::Pending);
}

/// Nodes made ready that the reporting agent cannot run wake the others.
pub async fn report_batch_wakes_for_nodes_it_cannot_take(h: Harness) {
    let s = &*h.store;
    let mut mac = node("b", &["a"]);
    mac.selector.insert("os".to_owned(), "mac".to_owned());
    let wf = workflow("batch-selector", vec![node("a", &[]), mac]);
    let linux = agent(s, "linux", &[("os", "linux")], &[]).await;
    let run = start_run(s, &wf).await;
    let (a, _) = claim_nodes(s, &linux, 1).await;
    let done = s
        .report_batch(&linux, &[ended(&a[0], Outcome::exited(0))], 1, LEASE)
        .await
        .expect("report a");
    assert!(done.assignments.is_empty(), "b is not for this agent");
    assert!(done.woke, "b waits for another agent");
    assert_eq!(state_of(s, &run, "b").await, NodeState::Ready);
}
