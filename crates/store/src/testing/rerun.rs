//! Cases about re-runs (`retry_run`) and output that arrives late.

use std::collections::BTreeSet;

use baton_api::Stream;
use baton_core::{NodeState, Outcome, Reason, RunState};

use super::{Harness, LEASE, agent, aref, claim_nodes, names, node, start_run, states, workflow};
use crate::{Store, StoreError};

/// Runs every node the agent can claim, reporting `exit` for the nodes named in `fail` and
/// 0 for the rest, until nothing is claimable; returns the nodes run, in order.
async fn drive(s: &dyn Store, ag: &str, fail: &[&str]) -> Vec<String> {
    let mut ran = Vec::new();
    loop {
        let (got, _) = claim_nodes(s, ag, 10).await;
        if got.is_empty() {
            return ran;
        }
        for a in got {
            let code = if fail.contains(&a.node.as_str()) {
                1
            } else {
                0
            };
            s.report(ag, aref(&a), Outcome::exited(code), None)
                .await
                .expect("report");
            ran.push(a.node);
        }
    }
}

/// The diamond `a -> {b, c} -> d` beside a lone `e`.
fn diamond() -> baton_core::Workflow {
    workflow(
        "diamond",
        vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a"]),
            node("d", &["b", "c"]),
            node("e", &[]),
        ],
    )
}

/// A re-run keeps the old run's successes (not run again, `reused_from` naming the old run)
/// and runs the failed node and what it held back; the two runs are linked both ways.
pub async fn retry_keeps_successes_and_runs_the_rest(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let old = start_run(s, &diamond()).await;
    drive(s, &ag, &["b"]).await;
    let before = s.run(&old).await.expect("run");
    assert_eq!(before.status, RunState::Failure);
    assert_eq!(before.nodes["d"].status, NodeState::Skipped);

    let created = s.retry_run(&old, None).await.expect("retry");
    let new = created.run;
    assert_ne!(new.id, old);
    assert_eq!(new.retry_of.as_deref(), Some(old.as_str()));
    assert_eq!((new.workflow.as_str(), new.version), ("diamond", 1));
    for kept in ["a", "c", "e"] {
        let n = &new.nodes[kept];
        assert_eq!(n.status, NodeState::Success, "{kept}");
        assert_eq!(n.reused_from.as_deref(), Some(old.as_str()), "{kept}");
        assert!(n.attempts.is_empty(), "{kept}");
    }
    assert_eq!(new.nodes["b"].status, NodeState::Ready);
    assert_eq!(new.nodes["d"].status, NodeState::Waiting);
    assert_eq!(new.nodes["b"].reused_from, None);
    assert_eq!(
        s.run(&old).await.expect("old run").retried_by,
        vec![new.id.clone()]
    );

    let ran = drive(s, &ag, &[]).await;
    assert_eq!(ran, ["b", "d"], "kept nodes are not run again");
    let done = s.run(&new.id).await.expect("run");
    assert_eq!(done.status, RunState::Success);
    let old_doc = s.run(&old).await.expect("old run");
    assert_eq!(
        old_doc.status,
        RunState::Failure,
        "the old run is unchanged"
    );
    assert_eq!(old_doc.nodes["b"].attempts.len(), 1);
}

/// `from` runs that node and everything below it again, even successes; kept nodes of a
/// re-run of a re-run name the run where they really ran.
pub async fn retry_from_reruns_the_node_and_below(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let old = start_run(s, &diamond()).await;
    drive(s, &ag, &[]).await;
    assert_eq!(s.run(&old).await.expect("run").status, RunState::Success);
    match s.retry_run(&old, None).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("nothing to retry"), "{msg}"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    let second = s.retry_run(&old, Some("c")).await.expect("retry").run;
    let again: BTreeSet<String> = second
        .nodes
        .iter()
        .filter(|(_, n)| n.reused_from.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(again, names(&["c", "d"]));
    assert_eq!(second.nodes["c"].status, NodeState::Ready);
    assert_eq!(
        second.nodes["d"].status,
        NodeState::Waiting,
        "b is kept, so d waits on c alone"
    );
    assert_eq!(drive(s, &ag, &[]).await, ["c", "d"]);

    let third = s.retry_run(&second.id, Some("d")).await.expect("retry").run;
    assert_eq!(third.nodes["d"].status, NodeState::Ready);
    assert_eq!(
        third.nodes["a"].reused_from.as_deref(),
        Some(old.as_str()),
        "a last ran in the first run"
    );
    assert_eq!(
        third.nodes["c"].reused_from.as_deref(),
        Some(second.id.as_str()),
        "c last ran in the second"
    );
    assert_eq!(drive(s, &ag, &[]).await, ["d"]);
    assert_eq!(
        s.run(&old).await.expect("run").retried_by,
        vec![second.id.clone()]
    );
}

/// Only a finished run can be retried; unknown runs and nodes are not found.
pub async fn retry_refuses_live_runs_and_unknown_names(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &diamond()).await;
    match s.retry_run(&run, None).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("finished"), "{msg}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    drive(s, &ag, &["a"]).await;
    assert!(matches!(
        s.retry_run(&run, Some("nope")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.retry_run("no-such-run", None).await,
        Err(StoreError::NotFound(_))
    ));
    let canceled = start_run(s, &diamond()).await;
    s.cancel_run(&canceled).await.expect("cancel");
    let rerun = s.retry_run(&canceled, None).await.expect("retry canceled");
    let st = states(s, &rerun.run.id).await;
    assert_eq!(st["a"], NodeState::Ready);
    assert_eq!(st["e"], NodeState::Ready);
    assert_eq!(st["d"], NodeState::Waiting);
}

/// Output of an attempt its agent ended itself is taken until a newer attempt opens;
/// output of a reaped attempt is refused at once.
pub async fn late_output_is_refused_once_the_attempt_is_not_current(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut flaky = node("flaky", &[]);
    flaky.retry.attempts = 3;
    flaky.retry.on = vec![baton_core::RetryOn::Failure];
    flaky.retry.backoff_ms = 0;
    flaky.retry.max_backoff_ms = 0;
    start_run(s, &workflow("late", vec![flaky, node("lost", &[])])).await;
    let (got, _) = claim_nodes(s, &ag, 2).await;
    let f = got.iter().find(|a| a.node == "flaky").expect("flaky");
    let l = got.iter().find(|a| a.node == "lost").expect("lost");
    s.start_attempt(&ag, aref(f)).await.expect("start");
    s.report(&ag, aref(f), Outcome::exited(1), None)
        .await
        .expect("report");
    s.append_log(
        &ag,
        aref(f),
        0,
        Stream::Stdout,
        "flushed after the report\n",
    )
    .await
    .expect("output just after the report is kept");
    s.artifact_target(&ag, aref(f))
        .await
        .expect("artifacts just after the report are kept");

    let (retry, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(retry[0].node, "flaky");
    assert_eq!(retry[0].attempt, 2);
    assert!(matches!(
        s.append_log(&ag, aref(f), 1, Stream::Stdout, "too late\n")
            .await,
        Err(StoreError::Stale(_))
    ));
    assert!(matches!(
        s.artifact_target(&ag, aref(f)).await,
        Err(StoreError::Stale(_))
    ));

    s.append_log(&ag, aref(l), 0, Stream::Stdout, "before\n")
        .await
        .expect("live output");
    h.clock.advance(LEASE as i64 + 1);
    s.heartbeat(&ag, &[aref(&retry[0])], LEASE)
        .await
        .expect("keep the retry alive");
    let reaped = s.reap_expired().await.expect("reap");
    assert_eq!(reaped.lost, vec![l.attempt_id]);
    assert!(matches!(
        s.append_log(&ag, aref(l), 1, Stream::Stdout, "after the reap\n")
            .await,
        Err(StoreError::Stale(_))
    ));
    assert!(matches!(
        s.artifact_target(&ag, aref(l)).await,
        Err(StoreError::Stale(_))
    ));
    let doc = s.run(&retry[0].run_id).await.expect("run");
    let lost = &doc.nodes["lost"];
    assert_eq!(lost.attempts[0].reason, Some(Reason::Lost));
}
