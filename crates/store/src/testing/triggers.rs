//! Cases about trigger rules (`when`): which nodes run after their needs ended, which are
//! skipped, how skips travel, and what the run's result is.

use std::collections::BTreeMap;

use baton_core::{NodeSpec, NodeState, Outcome, Reason, RunState, When};

use super::{Harness, agent, aref, claim_nodes, names, node, start_run, states, workflow};
use crate::Store;

/// A shell node `id` that needs `needs` under rule `when`.
fn ruled(id: &str, needs: &[&str], when: When) -> NodeSpec {
    NodeSpec {
        when,
        ..node(id, needs)
    }
}

/// Claims and reports until nothing is claimable: nodes named in `ends` end as given, the
/// rest succeed. Returns the nodes run, in order.
async fn drive(s: &dyn Store, ag: &str, ends: &[(&str, Outcome)]) -> Vec<String> {
    let mut ran = Vec::new();
    loop {
        let (got, _) = claim_nodes(s, ag, 10).await;
        if got.is_empty() {
            return ran;
        }
        for a in got {
            let outcome = ends
                .iter()
                .find(|(id, _)| *id == a.node)
                .map_or(Outcome::exited(0), |&(_, o)| o);
            s.report(ag, aref(&a), outcome, None).await.expect("report");
            ran.push(a.node);
        }
    }
}

/// The expected states of some nodes, to compare with [`states`].
fn expect(pairs: &[(&str, NodeState)]) -> BTreeMap<String, NodeState> {
    pairs.iter().map(|&(id, s)| (id.to_owned(), s)).collect()
}

/// A failed build: `deploy` (all_success) is skipped, `notify` (any_failure) runs, and
/// `report` (all_done after both) runs too; the run fails, since the build did.
pub async fn all_success_skips_and_any_failure_runs_after_a_failure(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "release",
        vec![
            node("build", &[]),
            ruled("deploy", &["build"], When::AllSuccess),
            ruled("notify", &["build"], When::AnyFailure),
            ruled("report", &["deploy", "notify"], When::AllDone),
        ],
    );
    let run = start_run(s, &wf).await;
    let ran = drive(s, &ag, &[("build", Outcome::exited(1))]).await;
    assert_eq!(ran, ["build", "notify", "report"]);
    use NodeState::*;
    assert_eq!(
        states(s, &run).await,
        expect(&[
            ("build", Failure),
            ("deploy", Skipped),
            ("notify", Success),
            ("report", Success),
        ])
    );
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Failure);
}

/// `any_failure` counts an `error` as a failure, but not a need that was skipped.
pub async fn any_failure_counts_errors_but_not_skips(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "errors",
        vec![
            node("a", &[]),
            node("b", &["a"]),
            ruled("on_b", &["b"], When::AnyFailure),
            node("x", &[]),
            ruled("on_x", &["x"], When::AnyFailure),
        ],
    );
    let run = start_run(s, &wf).await;
    let ran = drive(
        s,
        &ag,
        &[
            ("a", Outcome::exited(3)),
            ("x", Outcome::error(Reason::Setup)),
        ],
    )
    .await;
    assert!(ran.contains(&"on_x".to_owned()), "{ran:?}");
    use NodeState::*;
    assert_eq!(
        states(s, &run).await,
        expect(&[
            ("a", Failure),
            ("b", Skipped),
            ("on_b", Skipped),
            ("x", Error),
            ("on_x", Success),
        ])
    );
    assert_eq!(
        s.run(&run).await.expect("run").status,
        RunState::Failure,
        "failure wins over error"
    );
}

/// When every need succeeds, an `any_failure` node is skipped and the run succeeds.
pub async fn any_failure_is_skipped_when_every_need_succeeds(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "clean",
        vec![
            node("a", &[]),
            node("b", &[]),
            ruled("cleanup", &["a", "b"], When::AnyFailure),
        ],
    );
    let run = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 1).await;
    s.report(&ag, aref(&got[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert_eq!(
        states(s, &run).await["cleanup"],
        NodeState::Waiting,
        "the other need may still fail"
    );
    drive(s, &ag, &[]).await;
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.nodes["cleanup"].status, NodeState::Skipped);
    assert!(doc.nodes["cleanup"].attempts.is_empty());
    assert_eq!(doc.status, RunState::Success, "skipped nodes do not count");
}

/// An `all_done` node waits for every need, whatever each did, then runs.
pub async fn all_done_runs_once_every_need_ended(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "done",
        vec![
            node("a", &[]),
            node("b", &[]),
            ruled("report", &["a", "b"], When::AllDone),
        ],
    );
    let run = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 10).await;
    let (a, b) = if got[0].node == "a" {
        (&got[0], &got[1])
    } else {
        (&got[1], &got[0])
    };
    s.report(&ag, aref(a), Outcome::exited(1), None)
        .await
        .expect("report a");
    assert_eq!(states(s, &run).await["report"], NodeState::Waiting);
    assert!(
        claim_nodes(s, &ag, 10).await.1.is_empty(),
        "b has not ended"
    );
    let r = s
        .report(&ag, aref(b), Outcome::exited(0), None)
        .await
        .expect("report b");
    assert!(r.woke, "report became claimable");
    assert_eq!(claim_nodes(s, &ag, 10).await.1, names(&["report"]));
    assert!(!s.run(&run).await.expect("run").status.is_terminal());
}

/// An `any_success` node is ready as soon as one need succeeded, while another still runs;
/// the run waits for that one, whose failure then decides the run's result.
pub async fn any_success_fires_on_the_first_success_and_the_run_waits(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "mirrors",
        vec![
            node("mirror1", &[]),
            node("mirror2", &[]),
            ruled("fetch", &["mirror1", "mirror2"], When::AnySuccess),
        ],
    );
    let run = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 10).await;
    let slow = got.iter().find(|a| a.node == "mirror1").expect("mirror1");
    let fast = got.iter().find(|a| a.node == "mirror2").expect("mirror2");
    s.start_attempt(&ag, aref(slow)).await.expect("start");
    let r = s
        .report(&ag, aref(fast), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(r.woke);
    let (fetch, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got, names(&["fetch"]), "fetch does not wait for mirror1");
    s.report(&ag, aref(&fetch[0]), Outcome::exited(0), None)
        .await
        .expect("report fetch");
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.nodes["fetch"].status, NodeState::Success);
    assert_eq!(doc.nodes["mirror1"].status, NodeState::Running);
    assert_eq!(doc.status, RunState::Running, "the run waits for mirror1");

    s.report(&ag, aref(slow), Outcome::exited(1), None)
        .await
        .expect("report mirror1");
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.nodes["fetch"].status, NodeState::Success);
    assert_eq!(doc.status, RunState::Failure);
}

/// When every need of an `any_success` node fails, it is skipped, and so is what needs it.
pub async fn any_success_is_skipped_when_every_need_fails(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "dead-mirrors",
        vec![
            node("mirror1", &[]),
            node("mirror2", &[]),
            ruled("fetch", &["mirror1", "mirror2"], When::AnySuccess),
            node("build", &["fetch"]),
        ],
    );
    let run = start_run(s, &wf).await;
    let ran = drive(
        s,
        &ag,
        &[
            ("mirror1", Outcome::exited(1)),
            ("mirror2", Outcome::error(Reason::Timeout)),
        ],
    )
    .await;
    assert_eq!(ran.len(), 2, "{ran:?}");
    use NodeState::*;
    assert_eq!(
        states(s, &run).await,
        expect(&[
            ("mirror1", Failure),
            ("mirror2", Error),
            ("fetch", Skipped),
            ("build", Skipped),
        ])
    );
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Failure);
}

/// A failure skips a chain of `all_success` nodes; the skip counts as an end for an
/// `all_done` node below, which runs, and releases what follows it.
pub async fn skips_propagate_down_a_chain_into_an_all_done_node(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "chain",
        vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["b"]),
            ruled("report", &["c"], When::AllDone),
            node("after", &["report"]),
        ],
    );
    let run = start_run(s, &wf).await;
    let (got, _) = claim_nodes(s, &ag, 10).await;
    let r = s
        .report(&ag, aref(&got[0]), Outcome::exited(1), None)
        .await
        .expect("report");
    assert!(r.woke, "report became claimable at once");
    use NodeState::*;
    assert_eq!(
        states(s, &run).await,
        expect(&[
            ("a", Failure),
            ("b", Skipped),
            ("c", Skipped),
            ("report", Ready),
            ("after", Waiting),
        ])
    );
    let ran = drive(s, &ag, &[]).await;
    assert_eq!(ran, ["report", "after"]);
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Failure);
    let listed = s
        .list_runs(&baton_api::RunFilter::default())
        .await
        .expect("list");
    let summary = listed.iter().find(|r| r.id == run).expect("listed");
    assert_eq!(
        summary.counts.get(&Skipped),
        Some(&2),
        "the run's counters follow the skips"
    );
}

/// A node ended `error` by its queue timeout counts as a failure for the nodes below: an
/// `any_failure` node becomes claimable and the pass says agents must look.
pub async fn queue_timeout_error_readies_any_failure_nodes(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut gpu = node("gpu", &[]);
    gpu.selector.insert("gpu".into(), "yes".into());
    gpu.queue_timeout_ms = Some(60_000);
    let wf = workflow(
        "stuck",
        vec![
            gpu,
            node("train", &["gpu"]),
            ruled("alert", &["gpu"], When::AnyFailure),
        ],
    );
    let run = start_run(s, &wf).await;
    assert!(claim_nodes(s, &ag, 10).await.1.is_empty());
    h.clock.advance(60_000);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.nodes, vec![(run.clone(), "gpu".to_owned())]);
    assert!(expired.woke, "alert became claimable");
    use NodeState::*;
    assert_eq!(
        states(s, &run).await,
        expect(&[("gpu", Error), ("train", Skipped), ("alert", Ready)])
    );
    assert_eq!(drive(s, &ag, &[]).await, ["alert"]);
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Error);
}

/// A re-run keeps successes and gates the nodes that run again on them at once: an
/// `any_success` node with a kept need is ready before anything ran, an `any_failure` node
/// whose needs are all kept is skipped (with what needs it), and the rest run by their rules.
pub async fn retry_of_a_run_with_rules_gates_on_kept_nodes(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let wf = workflow(
        "ruled",
        vec![
            node("lint", &[]),
            node("build", &[]),
            ruled("lint_fix", &["lint"], When::AnyFailure),
            node("after_fix", &["lint_fix"]),
            ruled("either", &["lint", "build"], When::AnySuccess),
            node("deploy", &["build"]),
            ruled("notify", &["build"], When::AnyFailure),
            ruled("report", &["deploy", "notify"], When::AllDone),
        ],
    );
    let old = start_run(s, &wf).await;
    drive(s, &ag, &[("build", Outcome::exited(1))]).await;
    use NodeState::*;
    assert_eq!(
        states(s, &old).await,
        expect(&[
            ("lint", Success),
            ("build", Failure),
            ("lint_fix", Skipped),
            ("after_fix", Skipped),
            ("either", Success),
            ("deploy", Skipped),
            ("notify", Success),
            ("report", Success),
        ])
    );
    assert_eq!(s.run(&old).await.expect("old").status, RunState::Failure);

    let new = s.retry_run(&old, None).await.expect("retry").run;
    let planned: BTreeMap<String, NodeState> = new
        .nodes
        .iter()
        .map(|(id, n)| (id.clone(), n.status))
        .collect();
    assert_eq!(
        planned,
        expect(&[
            ("lint", Success),
            ("build", Ready),
            ("lint_fix", Skipped),
            ("after_fix", Skipped),
            ("either", Ready),
            ("deploy", Waiting),
            ("notify", Waiting),
            ("report", Waiting),
        ])
    );
    let mut ran = drive(s, &ag, &[]).await;
    ran.sort();
    assert_eq!(ran, ["build", "deploy", "either", "report"]);
    let doc = s.run(&new.id).await.expect("run");
    assert_eq!(doc.nodes["notify"].status, Skipped);
    assert_eq!(doc.status, RunState::Success);
}
