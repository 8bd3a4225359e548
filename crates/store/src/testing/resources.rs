//! Cases about resources (named semaphores) and the order claims hand nodes out in
//! (priority, then ready order).

use std::sync::Arc;

use baton_api::{CreateRun, ResourceDoc, format_time};
use baton_core::{NodeSpec, Outcome, Reason, ResourceUse, RetryOn, RetryPolicy, Workflow};

use super::{Harness, LEASE, agent, aref, claim_nodes, node, workflow};
use crate::Store;

/// A node `id` naming these resources, each with its count.
fn using(id: &str, resources: &[(&str, u32)]) -> NodeSpec {
    let mut n = node(id, &[]);
    n.resources = resources
        .iter()
        .map(|(name, count)| ResourceUse {
            name: (*name).to_owned(),
            count: *count,
        })
        .collect();
    n
}

/// Applies `wf` (if new) and starts a run of it at `priority`; returns the run id.
async fn run_at(store: &dyn Store, wf: &Workflow, priority: Option<i32>) -> String {
    store
        .apply_workflow(wf, "# test\n")
        .await
        .expect("apply workflow");
    store
        .create_run(&CreateRun {
            workflow: wf.name.clone(),
            version: None,
            priority,
        })
        .await
        .expect("create run")
        .run
        .id
}

/// The listing of one resource.
async fn resource(store: &dyn Store, name: &str) -> Option<ResourceDoc> {
    store
        .resources()
        .await
        .expect("list resources")
        .into_iter()
        .find(|r| r.name == name)
}

/// The runs of a resource's holders, in listing order.
async fn holder_runs(store: &dyn Store, name: &str) -> Vec<String> {
    resource(store, name)
        .await
        .map(|r| r.holders.into_iter().map(|h| h.run_id).collect())
        .unwrap_or_default()
}

/// A resource with a count of 2 admits two holders and refuses a third until one ends.
pub async fn counted_resource_admits_that_many_holders(h: Harness) {
    let s = &*h.store;
    let wf = workflow(
        "pool",
        vec![
            using("a", &[("db", 2)]),
            using("b", &[("db", 2)]),
            using("c", &[("db", 2)]),
        ],
    );
    let ag = agent(s, "a", &[], &[]).await;
    run_at(s, &wf, None).await;

    let (first, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got.len(), 2, "two holders at once: {got:?}");
    assert!(claim_nodes(s, &ag, 10).await.0.is_empty(), "a third waits");
    assert_eq!(resource(s, "db").await.expect("db").holders.len(), 2);

    s.report(&ag, aref(&first[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let (third, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got.len(), 1, "the freed place goes to the third");
    assert!(!first.iter().any(|a| a.node == third[0].node));
}

/// Nodes that disagree on a resource's count get the strictest count among the holders
/// and themselves: a node that asked for it alone has it alone.
pub async fn disagreeing_counts_keep_every_holder_within_its_own(h: Harness) {
    let s = &*h.store;
    let shared = workflow("shared", vec![using("s", &[("db", 3)])]);
    let alone = workflow("alone", vec![using("x", &[("db", 1)])]);
    let ag = agent(s, "a", &[], &[]).await;

    let lone = run_at(s, &alone, None).await;
    h.clock.advance(1);
    run_at(s, &shared, None).await;
    let (x, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        vec!["x".to_owned()],
        "a count-3 node may not join a holder that declared 1"
    );
    assert_eq!(holder_runs(s, "db").await, vec![lone.clone()]);
    s.report(&ag, aref(&x[0]), Outcome::exited(0), None)
        .await
        .expect("report");

    // With a count-3 holder, another count-3 node joins but a count-1 node waits for
    // the resource to empty, and (met first) keeps later nodes from overtaking it.
    let (first, _) = claim_nodes(s, &ag, 10).await;
    assert_eq!(first.len(), 1, "the waiting count-3 node");
    let lone = run_at(s, &alone, None).await;
    h.clock.advance(1);
    run_at(s, &shared, None).await;
    assert!(
        claim_nodes(s, &ag, 10).await.0.is_empty(),
        "x waits for the holder to leave; the later s does not overtake it"
    );
    s.report(&ag, aref(&first[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let (got, _) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].run_id.as_str(), got[0].node.as_str()),
        (lone.as_str(), "x")
    );
}

/// A hold ends with its attempt, however it ends: a report, a lost agent (reaped), a
/// cancel (the agent reports the attempt canceled).
pub async fn resources_are_released_on_report_reap_and_cancel(h: Harness) {
    let s = &*h.store;
    let wf = workflow("locked", vec![using("a", &[("db", 1)])]);
    let ag = agent(s, "a", &[], &[]).await;
    let first = run_at(s, &wf, None).await;
    h.clock.advance(1);
    let second = run_at(s, &wf, None).await;
    h.clock.advance(1);
    let third = run_at(s, &wf, None).await;

    // Report.
    let (a, _) = claim_nodes(s, &ag, 10).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].run_id, first);
    let r = s
        .report(&ag, aref(&a[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(r.woke, "a release wakes claims waiting for the resource");
    assert!(holder_runs(s, "db").await.is_empty());

    // A lost agent: the lease runs out and the reaper ends the attempt.
    let (b, _) = claim_nodes(s, &ag, 10).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].run_id, second);
    assert_eq!(holder_runs(s, "db").await, vec![second.clone()]);
    h.clock.advance(LEASE as i64 + 1);
    let reaped = s.reap_expired().await.expect("reap");
    assert_eq!(reaped.lost, vec![b[0].attempt_id]);
    assert!(reaped.woke);
    assert!(
        holder_runs(s, "db").await.is_empty(),
        "the lost agent's hold is gone"
    );

    // Cancel: the third run (ready longest now) takes it; its run is canceled and the
    // agent reports the attempt canceled.
    let other = agent(s, "b", &[], &[]).await;
    let (c, _) = claim_nodes(s, &other, 1).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].run_id, third);
    s.cancel_run(&third).await.expect("cancel");
    assert_eq!(
        holder_runs(s, "db").await,
        vec![third.clone()],
        "held until it stops"
    );
    let told = s.claim(&other, 0, LEASE).await.expect("claim");
    assert_eq!(told.cancel, vec![c[0].attempt_id]);
    s.report(
        &other,
        aref(&c[0]),
        Outcome::canceled(Reason::Canceled),
        None,
    )
    .await
    .expect("report canceled");
    assert!(holder_runs(s, "db").await.is_empty());

    // The retry of the lost attempt gets it now.
    let (retry, _) = claim_nodes(s, &ag, 10).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0].run_id.as_str(), retry[0].attempt),
        (second.as_str(), 2)
    );
}

/// Nodes waiting for a resource get it in the order they became ready, and the listing
/// names them in that order.
pub async fn resource_waiters_get_it_in_ready_order(h: Harness) {
    let s = &*h.store;
    let wf = workflow("queue", vec![using("a", &[("db", 1)])]);
    let ag = agent(s, "a", &[], &[]).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        runs.push(run_at(s, &wf, None).await);
        h.clock.advance(5);
    }
    let (mut held, _) = claim_nodes(s, &ag, 10).await;
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(held.len(), 1, "one holder at a time");
        assert_eq!(&held[0].run_id, run, "holder {i} in ready order");
        let doc = resource(s, "db").await.expect("db listed");
        assert_eq!(doc.holders.len(), 1);
        let waiting: Vec<&str> = doc.waiters.iter().map(|w| w.run_id.as_str()).collect();
        let expect: Vec<&str> = runs[i + 1..].iter().map(String::as_str).collect();
        assert_eq!(waiting, expect, "waiters in the order they get it");
        assert_eq!(doc.waiting, expect.len() as u64);
        s.report(&ag, aref(&held[0]), Outcome::exited(0), None)
            .await
            .expect("report");
        held = claim_nodes(s, &ag, 10).await.0;
    }
    assert!(held.is_empty());
    assert!(resource(s, "db").await.is_none(), "nothing holds or waits");
}

/// Claims hand out the highest priority first, across runs, workflows and requirements
/// (labels), whatever the order the nodes became ready in.
pub async fn claims_take_the_highest_priority_first(h: Harness) {
    let s = &*h.store;
    let plain = workflow("plain", vec![node("p", &[])]);
    let mut labelled = node("l", &[]);
    labelled.selector = [("os".to_owned(), "linux".to_owned())].into();
    let labelled = workflow("labelled", vec![labelled]);
    let ag = agent(s, "a", &[("os", "linux")], &[]).await;

    let mut made = Vec::new();
    for (wf, prio) in [
        (&plain, None),
        (&labelled, Some(-3)),
        (&plain, Some(7)),
        (&labelled, Some(2)),
        (&labelled, Some(7)),
        (&plain, Some(2)),
    ] {
        made.push((run_at(s, wf, prio).await, prio.unwrap_or(0)));
        h.clock.advance(1);
    }
    // Highest priority first; equal priorities in the order they became ready.
    let mut expect = made.clone();
    expect.sort_by_key(|(_, prio)| -prio);
    let mut order = Vec::new();
    loop {
        let (got, _) = claim_nodes(s, &ag, 1).await;
        let Some(a) = got.first() else { break };
        order.push(a.run_id.clone());
    }
    let expect: Vec<String> = expect.into_iter().map(|(run, _)| run).collect();
    assert_eq!(order, expect);

    // One claim of several takes them in the same order.
    let ag2 = agent(s, "b", &[("os", "linux")], &[]).await;
    let low = run_at(s, &plain, Some(1)).await;
    h.clock.advance(1);
    let high = run_at(s, &labelled, Some(9)).await;
    let (got, _) = claim_nodes(s, &ag2, 10).await;
    let runs: Vec<&str> = got.iter().map(|a| a.run_id.as_str()).collect();
    assert_eq!(runs, vec![high.as_str(), low.as_str()]);
}

/// Equal priorities go in ready order: a node that became ready again (a retry) queues
/// behind those ready before it, so nothing starves.
pub async fn equal_priority_claims_go_in_ready_order(h: Harness) {
    let s = &*h.store;
    let wf = workflow("fifo", vec![node("a", &[])]);
    let ag = agent(s, "a", &[], &[]).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(run_at(s, &wf, Some(4)).await);
        h.clock.advance(1);
    }
    let (first, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(first[0].run_id, runs[0]);
    // Lost and retried at once: ready again, now the newest.
    h.clock.advance(LEASE as i64 + 1);
    s.reap_expired().await.expect("reap");
    let mut order = Vec::new();
    loop {
        let (got, _) = claim_nodes(s, &ag, 1).await;
        let Some(a) = got.first() else { break };
        order.push(a.run_id.clone());
    }
    assert_eq!(
        order,
        vec![runs[1].clone(), runs[2].clone(), runs[0].clone()]
    );
}

/// A backing-off node is not handed out before its time, whatever its priority, and a
/// claim that finds only it says when to look again.
pub async fn backing_off_nodes_wait_whatever_their_priority(h: Harness) {
    let s = &*h.store;
    let mut flaky = node("f", &[]);
    flaky.retry = RetryPolicy {
        attempts: 2,
        on: vec![RetryOn::Failure],
        backoff_ms: 60_000,
        max_backoff_ms: 60_000,
        lost_attempts: 2,
    };
    let flaky = workflow("flaky", vec![flaky]);
    let plain = workflow("plain", vec![node("p", &[])]);
    let ag = agent(s, "a", &[], &[]).await;
    let hot = run_at(s, &flaky, Some(10)).await;
    let (f, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(f[0].run_id, hot);
    s.report(&ag, aref(&f[0]), Outcome::exited(1), None)
        .await
        .expect("report failure");
    let latest = h.clock.now() + 60_000;
    let cold = run_at(s, &plain, Some(0)).await;

    let got = s.claim(&ag, 5, LEASE).await.expect("claim");
    let runs: Vec<&str> = got.assignments.iter().map(|a| a.run_id.as_str()).collect();
    assert_eq!(runs, vec![cold.as_str()], "the backing-off node waits");
    let at = got
        .next_ready_at
        .expect("the claim says when the retry falls due");
    assert!(at <= latest && at > h.clock.now(), "due {at}");
    assert!(claim_nodes(s, &ag, 5).await.0.is_empty());
    h.clock.advance(at - h.clock.now());
    let (again, _) = claim_nodes(s, &ag, 5).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].run_id.as_str(), again[0].attempt),
        (hot.as_str(), 2)
    );
}

/// `resources` names each holder (run, workflow, node, attempt, agent, since, count) and
/// each waiter (run, node, priority, ready since, count).
pub async fn resources_list_holders_and_waiters(h: Harness) {
    let s = &*h.store;
    let wf = workflow(
        "deploy",
        vec![using("push", &[("prod", 1), ("net", 4)]), node("free", &[])],
    );
    let other = workflow("report", vec![using("scan", &[("net", 4)])]);
    let ag = agent(s, "builder-1", &[], &[]).await;
    assert!(s.resources().await.expect("list").is_empty(), "nothing yet");

    let first = run_at(s, &wf, None).await;
    let claimed_at = h.clock.now();
    let (got, _) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got.len(), 2, "push and free");
    h.clock.advance(1000);
    let waiting = run_at(s, &wf, Some(3)).await;
    let waiting_since = h.clock.now();
    h.clock.advance(1000);
    let scan = run_at(s, &other, None).await;

    let list = s.resources().await.expect("list");
    let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["net", "prod"], "by name");
    let prod = &list[1];
    assert_eq!(prod.holders.len(), 1);
    let holder = &prod.holders[0];
    assert_eq!(holder.run_id, first);
    assert_eq!(holder.workflow, "deploy");
    assert_eq!(holder.node, "push");
    assert_eq!(holder.attempt, 1);
    assert_eq!(holder.agent, "builder-1");
    assert_eq!(holder.since, format_time(claimed_at));
    assert_eq!(holder.count, 1);
    assert_eq!(prod.waiting, 1);
    let waiter = &prod.waiters[0];
    assert_eq!(waiter.run_id, waiting);
    assert_eq!(waiter.workflow, "deploy");
    assert_eq!(waiter.node, "push");
    assert_eq!(waiter.priority, 3);
    assert_eq!(waiter.ready_since, format_time(waiting_since));
    assert_eq!(waiter.count, 1);

    let net = &list[0];
    assert_eq!(net.holders.len(), 1);
    assert_eq!(net.holders[0].count, 4);
    let waiters: Vec<(&str, &str)> = net
        .waiters
        .iter()
        .map(|w| (w.run_id.as_str(), w.node.as_str()))
        .collect();
    assert_eq!(
        waiters,
        vec![(waiting.as_str(), "push"), (scan.as_str(), "scan")],
        "priority 3 before priority 0"
    );
}

/// Concurrent claims never put more holders on a resource than its count.
pub async fn concurrent_claims_never_overfill_a_resource(h: Harness) {
    let store = h.store.clone();
    let nodes: Vec<NodeSpec> = (0..24)
        .map(|i| using(&format!("n{i}"), &[("db", 3)]))
        .collect();
    run_at(&*store, &workflow("crowd", nodes), None).await;
    let mut agents = Vec::new();
    for i in 0..8 {
        agents.push(Arc::new(agent(&*store, &format!("a{i}"), &[], &[]).await));
    }
    let mut done = 0;
    let mut rounds = 0;
    while done < 24 {
        rounds += 1;
        assert!(rounds < 200, "no progress");
        let mut tasks = Vec::new();
        for ag in &agents {
            let (store, ag) = (store.clone(), ag.clone());
            tasks.push(tokio::spawn(async move {
                let got = store.claim(&ag, 4, LEASE).await.expect("claim");
                (ag, got.assignments)
            }));
        }
        let mut held = Vec::new();
        for t in tasks {
            let (ag, got) = t.await.expect("claim task");
            held.extend(got.into_iter().map(|a| (ag.clone(), a)));
        }
        assert!(held.len() <= 3, "round {rounds}: {} holders", held.len());
        let listed = resource(&*store, "db").await.map_or(0, |r| r.holders.len());
        assert_eq!(listed, held.len());
        for (ag, a) in &held {
            store
                .report(ag, aref(a), Outcome::exited(0), None)
                .await
                .expect("report");
        }
        done += held.len();
    }
}

/// A claim pages past many nodes waiting for a resource (all ready at the same instant,
/// so only the row id orders them) to reach a free one behind them.
pub async fn claims_find_free_nodes_behind_many_waiting_ones(h: Harness) {
    let s = &*h.store;
    let mut nodes: Vec<NodeSpec> = (0..40)
        .map(|i| using(&format!("w{i:02}"), &[("db", 1)]))
        .collect();
    nodes.push(node("free", &[]));
    let ag = agent(s, "a", &[], &[]).await;
    run_at(s, &workflow("crowd", nodes), None).await;
    let (_, got) = claim_nodes(s, &ag, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains("w00"), "the first in line takes db: {got:?}");
    assert!(got.contains("free"), "the free node is found: {got:?}");
    assert!(claim_nodes(s, &ag, 2).await.0.is_empty());
}

/// A node `id` naming these resources that only agents labelled `kind` run.
fn using_on(id: &str, kind: &str, resources: &[(&str, u32)]) -> NodeSpec {
    let mut n = using(id, resources);
    n.selector = [("kind".to_owned(), kind.to_owned())].into();
    n
}

/// The runs of a resource's waiters, in listing order.
async fn waiter_runs(store: &dyn Store, name: &str) -> Vec<String> {
    resource(store, name)
        .await
        .map(|r| r.waiters.into_iter().map(|w| w.run_id).collect())
        .unwrap_or_default()
}

/// A node that needs a resource emptier than its holders keep it (count 1 behind count-2
/// holders that overlap) is first in line once a claim refused it: from then on no node
/// behind it takes the resource, on any agent, in any later claim, so the holders drain
/// and it gets the resource. The listing names it first among the waiters.
pub async fn waiting_for_an_emptier_resource_is_not_starved_by_overlapping_holders(h: Harness) {
    let s = &*h.store;
    let wide = workflow("wide", vec![using_on("b", "b", &[("x", 2)])]);
    let alone = workflow("alone", vec![using_on("a", "a", &[("x", 1)])]);
    // Ready before everything, but no agent can run it: never met, it holds nothing back.
    let ghost = workflow("ghost", vec![using_on("z", "c", &[("x", 1)])]);
    let one = agent(s, "one", &[("kind", "a")], &[]).await;
    let two = agent(s, "two", &[("kind", "b")], &[]).await;

    let z = run_at(s, &ghost, None).await;
    h.clock.advance(1);
    run_at(s, &wide, None).await;
    h.clock.advance(1);
    run_at(s, &wide, None).await;
    h.clock.advance(1);
    let (held, _) = claim_nodes(s, &two, 10).await;
    assert_eq!(held.len(), 2, "two count-2 holders");
    let a = run_at(s, &alone, None).await;
    h.clock.advance(1);
    assert!(
        claim_nodes(s, &one, 10).await.0.is_empty(),
        "x is not empty"
    );
    let b3 = run_at(s, &wide, None).await;
    h.clock.advance(1);

    s.report(&two, aref(&held[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(
        claim_nodes(s, &two, 10).await.0.is_empty(),
        "b3 would fit beside the other b, but a is first in line"
    );
    assert_eq!(
        waiter_runs(s, "x").await,
        vec![a.clone(), z.clone(), b3.clone()],
        "the first in line is listed first"
    );

    s.report(&two, aref(&held[1]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(
        claim_nodes(s, &two, 10).await.0.is_empty(),
        "x stays empty for a"
    );
    let (got, _) = claim_nodes(s, &one, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run_id, a);
    assert_eq!(holder_runs(s, "x").await, vec![a.clone()]);
    assert!(claim_nodes(s, &two, 10).await.0.is_empty(), "a has x alone");

    s.report(&one, aref(&got[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let (got, _) = claim_nodes(s, &two, 10).await;
    assert_eq!(got.len(), 1, "b3 goes next");
    assert_eq!(got[0].run_id, b3);
    assert_eq!(waiter_runs(s, "x").await, vec![z], "only the ghost waits");
}

/// A first waiter that goes away (its run canceled, or its queue timeout passed) holds
/// nothing back any more: the next node takes the resource at once.
pub async fn a_first_waiter_that_goes_away_frees_the_resource_for_the_rest(h: Harness) {
    let s = &*h.store;
    let wide = workflow("wide", vec![using_on("b", "b", &[("x", 2)])]);
    let alone = workflow("alone", vec![using_on("a", "a", &[("x", 1)])]);
    let mut patient = using_on("a", "a", &[("x", 1)]);
    patient.queue_timeout_ms = Some(60_000);
    let patient = workflow("patient", vec![patient]);
    let one = agent(s, "one", &[("kind", "a")], &[]).await;
    let two = agent(s, "two", &[("kind", "b")], &[]).await;

    for _ in 0..2 {
        run_at(s, &wide, None).await;
        h.clock.advance(1);
    }
    let (mut held, _) = claim_nodes(s, &two, 10).await;
    assert_eq!(held.len(), 2);

    // Canceled.
    let a = run_at(s, &alone, None).await;
    h.clock.advance(1);
    assert!(claim_nodes(s, &one, 10).await.0.is_empty());
    let b3 = run_at(s, &wide, None).await;
    h.clock.advance(1);
    s.report(&two, aref(&held.remove(0)), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(claim_nodes(s, &two, 10).await.0.is_empty(), "a is first");
    s.cancel_run(&a).await.expect("cancel");
    let (got, _) = claim_nodes(s, &two, 10).await;
    assert_eq!(got.len(), 1, "the canceled node holds nothing back");
    assert_eq!(got[0].run_id, b3);
    held.extend(got);

    // Its queue timeout passed.
    let p = run_at(s, &patient, None).await;
    h.clock.advance(1);
    assert!(claim_nodes(s, &one, 10).await.0.is_empty());
    let b4 = run_at(s, &wide, None).await;
    h.clock.advance(1);
    s.report(&two, aref(&held.remove(0)), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(claim_nodes(s, &two, 10).await.0.is_empty(), "p is first");
    assert_eq!(waiter_runs(s, "x").await, vec![p.clone(), b4.clone()]);
    h.clock.advance(60_000);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.nodes, vec![(p, "a".to_owned())]);
    assert!(expired.woke, "waiting agents look again");
    let (got, _) = claim_nodes(s, &two, 10).await;
    assert_eq!(got.len(), 1, "the timed-out node holds nothing back");
    assert_eq!(got[0].run_id, b4);
}

/// A node of higher priority that has to wait goes before the node first in line.
pub async fn a_higher_priority_waiter_goes_before_the_first_in_line(h: Harness) {
    let s = &*h.store;
    let lock = |id: &str, kind: &str| workflow(id, vec![using_on(id, kind, &[("x", 1)])]);
    let (low, high, holder) = (lock("low", "a"), lock("high", "b"), lock("hold", "b"));
    let one = agent(s, "one", &[("kind", "a")], &[]).await;
    let two = agent(s, "two", &[("kind", "b")], &[]).await;

    run_at(s, &holder, None).await;
    h.clock.advance(1);
    let (held, _) = claim_nodes(s, &two, 10).await;
    assert_eq!(held.len(), 1);
    let l = run_at(s, &low, None).await;
    h.clock.advance(1);
    assert!(claim_nodes(s, &one, 10).await.0.is_empty(), "low is first");
    let hi = run_at(s, &high, Some(5)).await;
    h.clock.advance(1);
    assert!(
        claim_nodes(s, &two, 10).await.0.is_empty(),
        "high waits too"
    );
    assert_eq!(waiter_runs(s, "x").await, vec![hi.clone(), l.clone()]);

    s.report(&two, aref(&held[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(
        claim_nodes(s, &one, 10).await.0.is_empty(),
        "low waits behind high"
    );
    let (got, _) = claim_nodes(s, &two, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run_id, hi);
    s.report(&two, aref(&got[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let (got, _) = claim_nodes(s, &one, 10).await;
    assert_eq!(got[0].run_id, l);
}
