//! Cases for outputs: kept per attempt, shown on the node, and handed to the nodes that need
//! it as inputs when they are claimed, re-runs included.

use std::collections::BTreeMap;

use baton_api::{Assignment, AttemptReport};
use baton_core::{NodeState, Outcome, Outputs, RetryOn, RetryPolicy};

use super::{Harness, LEASE, agent, aref, claim_nodes, names, node, start_run, workflow};
use crate::Store;

fn outs(pairs: &[(&str, &str)]) -> Outputs {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ended(a: &Assignment, outcome: Outcome, outputs: Outputs) -> AttemptReport {
    AttemptReport {
        attempt_id: a.attempt_id,
        fence: a.fence,
        outcome,
        message: None,
        outputs,
    }
}

async fn finish(s: &dyn Store, agent: &str, a: &Assignment, outcome: Outcome, outputs: Outputs) {
    let r = s
        .report_attempt(agent, &ended(a, outcome, outputs))
        .await
        .expect("report");
    assert!(!r.duplicate);
}

async fn node_outputs(s: &dyn Store, run: &str, node: &str) -> Outputs {
    s.run(run).await.expect("run").nodes[node].outputs.clone()
}

/// Outputs are kept on the attempt and shown on its node; a claim hands each node the
/// outputs of the nodes it needs directly (those that wrote some), and a batch's own claim
/// sees the outputs its reports just stored.
pub async fn outputs_reach_the_nodes_that_need_them(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(
        s,
        &workflow(
            "outputs",
            vec![
                node("a", &[]),
                node("b", &[]),
                node("c", &["a", "b"]),
                node("d", &["c"]),
            ],
        ),
    )
    .await;
    let (roots, got) = claim_nodes(s, &ag, 2).await;
    assert_eq!(got, names(&["a", "b"]));
    assert!(
        roots.iter().all(|r| r.inputs.is_empty()),
        "roots need nothing"
    );
    let a_out = outs(&[("x", "1"), ("q", "\"; rm -rf / #"), ("multi", "one\ntwo")]);
    let (ra, rb) = if roots[0].node == "a" {
        (&roots[0], &roots[1])
    } else {
        (&roots[1], &roots[0])
    };
    finish(s, &ag, ra, Outcome::exited(0), a_out.clone()).await;
    finish(s, &ag, rb, Outcome::exited(0), Outputs::new()).await;
    assert_eq!(node_outputs(s, &run, "a").await, a_out);
    assert!(node_outputs(s, &run, "b").await.is_empty());

    let (c, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(c[0].node, "c");
    assert_eq!(
        c[0].inputs,
        BTreeMap::from([("a".to_owned(), a_out.clone())])
    );

    // The batch's claim takes `d` in the transaction that stored `c`'s outputs; `d` gets
    // those of its direct need only.
    let c_out = outs(&[("y", "2")]);
    let done = s
        .report_batch(
            &ag,
            &[ended(&c[0], Outcome::exited(0), c_out.clone())],
            1,
            LEASE,
        )
        .await
        .expect("batch");
    assert_eq!(done.assignments.len(), 1);
    let d = &done.assignments[0];
    assert_eq!(d.node, "d");
    assert_eq!(d.inputs, BTreeMap::from([("c".to_owned(), c_out.clone())]));
    finish(s, &ag, d, Outcome::exited(0), Outputs::new()).await;
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.nodes["c"].outputs, c_out);
    assert_eq!(doc.nodes["a"].outputs, a_out);
}

/// A retried node's outputs are those of its latest attempt: a failed attempt's outputs
/// are kept on it but never passed on once a newer attempt ended; a repeated report keeps
/// the outputs stored first.
pub async fn a_retried_attempt_s_outputs_replace_the_first(h: Harness) {
    let s = &*h.store;
    let mut flaky = node("flaky", &[]);
    flaky.retry = RetryPolicy {
        attempts: 2,
        on: vec![RetryOn::Failure],
        backoff_ms: 1_000,
        max_backoff_ms: 1_000,
        lost_attempts: 0,
    };
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(
        s,
        &workflow("flaky", vec![flaky, node("after", &["flaky"])]),
    )
    .await;

    let (first, _) = claim_nodes(s, &ag, 1).await;
    finish(s, &ag, &first[0], Outcome::exited(1), outs(&[("old", "1")])).await;
    assert_eq!(
        node_outputs(s, &run, "flaky").await,
        outs(&[("old", "1")]),
        "the failed attempt is the node's current one until the retry is claimed"
    );
    h.clock.advance(1_000);
    let (second, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(second[0].attempt, 2);
    assert!(node_outputs(s, &run, "flaky").await.is_empty());
    let new = outs(&[("new", "2")]);
    finish(s, &ag, &second[0], Outcome::exited(0), new.clone()).await;
    // The same report again, with other outputs, changes nothing.
    let again = s
        .report_attempt(
            &ag,
            &ended(&second[0], Outcome::exited(0), outs(&[("x", "y")])),
        )
        .await
        .expect("repeat");
    assert!(again.duplicate);
    assert_eq!(node_outputs(s, &run, "flaky").await, new);

    let (after, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(after[0].node, "after");
    assert_eq!(after[0].inputs, BTreeMap::from([("flaky".to_owned(), new)]));
}

/// A re-run keeps the outputs of the nodes it keeps: what runs again gets them as inputs,
/// through re-runs of re-runs too.
pub async fn a_rerun_hands_kept_outputs_to_what_runs_again(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "rerun-out",
        vec![node("build", &[]), node("test", &["build"])],
    );
    let first = start_run(s, &wf).await;
    let (build, _) = claim_nodes(s, &ag, 1).await;
    let built = outs(&[("version", "1.2.3")]);
    finish(s, &ag, &build[0], Outcome::exited(0), built.clone()).await;
    let (test, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(test[0].inputs["build"], built);
    finish(
        s,
        &ag,
        &test[0],
        Outcome::exited(1),
        outs(&[("failed", "3")]),
    )
    .await;

    let second = s.retry_run(&first, None).await.expect("retry").run;
    assert_eq!(second.nodes["build"].status, NodeState::Success);
    assert_eq!(
        second.nodes["build"].reused_from.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        second.nodes["build"].outputs, built,
        "a kept node shows its outputs"
    );
    assert!(second.nodes["test"].outputs.is_empty());
    let (test, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(test[0].run_id, second.id);
    assert_eq!(
        test[0].inputs,
        BTreeMap::from([("build".to_owned(), built.clone())])
    );
    finish(s, &ag, &test[0], Outcome::exited(0), Outputs::new()).await;

    // A re-run of the re-run, from `test`: `build` is kept from the first run still.
    let third = s
        .retry_run(&second.id, Some("test"))
        .await
        .expect("retry again")
        .run;
    assert_eq!(
        third.nodes["build"].reused_from.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(third.nodes["build"].outputs, built);
    let (test, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(test[0].run_id, third.id);
    assert_eq!(
        test[0].inputs,
        BTreeMap::from([("build".to_owned(), built)])
    );
}

/// A run whose attempts wrote no outputs hands out no inputs and shows none.
pub async fn runs_without_outputs_have_no_inputs(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(
        s,
        &workflow("plain", vec![node("a", &[]), node("b", &["a"])]),
    )
    .await;
    let (a, _) = claim_nodes(s, &ag, 1).await;
    s.report(&ag, aref(&a[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let (b, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(b[0].node, "b");
    assert!(b[0].inputs.is_empty());
    let doc = s.run(&run).await.expect("run");
    assert!(doc.nodes.values().all(|n| n.outputs.is_empty()));

    // Another run's outputs do not leak into this one.
    let other = start_run(
        s,
        &workflow("plain", vec![node("a", &[]), node("b", &["a"])]),
    )
    .await;
    let (oa, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(oa[0].run_id, other);
    finish(s, &ag, &oa[0], Outcome::exited(0), outs(&[("k", "v")])).await;
    finish(s, &ag, &b[0], Outcome::exited(0), Outputs::new()).await;
    assert!(node_outputs(s, &run, "a").await.is_empty());
}
