//! Cases about how a claim walks the ready nodes: past nodes backing off, whatever their
//! number and priority.

use baton_api::CreateRun;
use baton_core::{NodeSpec, Outcome, RetryOn, RetryPolicy, Workflow};

use super::{Harness, LEASE, agent, aref, node, workflow};
use crate::Store;

/// A node retried once on failure, after a back-off of up to `backoff_ms`.
fn retried(id: &str, backoff_ms: u64) -> NodeSpec {
    let mut n = node(id, &[]);
    n.retry = RetryPolicy {
        attempts: 2,
        on: vec![RetryOn::Failure],
        backoff_ms,
        max_backoff_ms: backoff_ms,
        lost_attempts: 2,
    };
    n
}

/// Applies `wf` and starts a run of it at `priority`; returns the run id.
async fn run_at(store: &dyn Store, wf: &Workflow, priority: i32) -> String {
    store
        .apply_workflow(wf, "# test\n")
        .await
        .expect("apply workflow");
    store
        .create_run(&CreateRun {
            workflow: wf.name.clone(),
            version: None,
            priority: Some(priority),
        })
        .await
        .expect("create run")
        .run
        .id
}

/// Many high-priority nodes backing off (of another requirement than the claimable work)
/// neither hide a lower-priority claimable node from a claim nor blur when the claim says
/// to look again: the earliest back-off over every priority, to the millisecond.
pub async fn claims_reach_lower_priority_work_past_many_backing_off_nodes(h: Harness) {
    let s = &*h.store;
    // Hot nodes (priority 10) back off 30-60 s, the mid one (priority 5) 10-20 s.
    let hot_nodes: Vec<NodeSpec> = (0..200)
        .map(|i| {
            let mut n = retried(&format!("h{i:03}"), 60_000);
            n.selector.insert("pool".into(), "x".into());
            n
        })
        .collect();
    let hot = run_at(s, &workflow("hot", hot_nodes), 10).await;
    let mid = run_at(s, &workflow("mid", vec![retried("m", 20_000)]), 5).await;
    let ag = agent(s, "a", &[("pool", "x")], &[]).await;
    let mut first = Vec::new();
    while first.len() < 201 {
        let got = s.claim(&ag, 64, LEASE).await.expect("claim");
        assert!(
            !got.assignments.is_empty(),
            "{} of 201 claimed",
            first.len()
        );
        first.extend(got.assignments);
    }
    for a in &first {
        s.report(&ag, aref(a), Outcome::exited(1), None)
            .await
            .expect("report failure");
    }
    let t0 = h.clock.now();
    let cold = run_at(s, &workflow("cold", vec![node("c", &[])]), 0).await;

    let got = s.claim(&ag, 5, LEASE).await.expect("claim");
    let taken: Vec<(&str, &str)> = got
        .assignments
        .iter()
        .map(|a| (a.run_id.as_str(), a.node.as_str()))
        .collect();
    assert_eq!(
        taken,
        vec![(cold.as_str(), "c")],
        "only the cold node is due"
    );
    let at = got
        .next_ready_at
        .expect("the claim says when to look again");
    assert!(
        at > t0 && at <= t0 + 20_000,
        "the mid node's back-off: {at}"
    );

    // Nothing is due a millisecond before, the mid node is at that time.
    h.clock.advance(at - 1 - h.clock.now());
    let early = s.claim(&ag, 5, LEASE).await.expect("claim");
    assert!(early.assignments.is_empty(), "{:?}", early.assignments);
    assert_eq!(early.next_ready_at, Some(at));
    h.clock.advance(1);
    let got = s.claim(&ag, 5, LEASE).await.expect("claim");
    let taken: Vec<(&str, &str, u32)> = got
        .assignments
        .iter()
        .map(|a| (a.run_id.as_str(), a.node.as_str(), a.attempt))
        .collect();
    assert_eq!(taken, vec![(mid.as_str(), "m", 2)]);

    // Then the earliest hot retry, and nothing before it.
    let next = got.next_ready_at.expect("the hot retries are still due");
    assert!(next >= t0 + 30_000 && next <= t0 + 60_000, "{next}");
    h.clock.advance(next - 1 - h.clock.now());
    assert!(
        s.claim(&ag, 5, LEASE)
            .await
            .expect("claim")
            .assignments
            .is_empty()
    );
    h.clock.advance(1);
    let got = s.claim(&ag, 5, LEASE).await.expect("claim");
    assert!(!got.assignments.is_empty());
    assert!(
        got.assignments
            .iter()
            .all(|a| a.run_id == hot && a.attempt == 2),
        "{:?}",
        got.assignments
    );
    h.clock.advance(60_000);
    let mut rest = got.assignments.len();
    loop {
        let got = s.claim(&ag, 64, LEASE).await.expect("claim");
        if got.assignments.is_empty() {
            assert_eq!(got.next_ready_at, None, "nothing is left backing off");
            break;
        }
        rest += got.assignments.len();
    }
    assert_eq!(rest, 200, "every hot node is retried once");
}
