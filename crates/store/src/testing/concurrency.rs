//! Cases about workflow concurrency limits (`concurrency: {limit, on_conflict}`) and the
//! run's priority in its documents.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use baton_api::{Assignment, CreateRun, RunDoc, RunFilter};
use baton_core::{
    Concurrency, NodeState, OnConflict, Outcome, Reason, RetryPolicy, RunState, Workflow,
};

use super::{Harness, LEASE, agent, aref, node, workflow};
use crate::Store;

/// A workflow of one node `a` (and `b` after it when `chain`), limited to `limit` active
/// runs.
fn limited(name: &str, limit: u32, on_conflict: OnConflict, chain: bool) -> Workflow {
    let mut nodes = vec![node("a", &[])];
    if chain {
        nodes.push(node("b", &["a"]));
    }
    let mut wf = workflow(name, nodes);
    wf.concurrency = Some(Concurrency { limit, on_conflict });
    wf
}

async fn create(s: &dyn Store, name: &str) -> RunDoc {
    s.create_run(&CreateRun::latest(name))
        .await
        .expect("create run")
        .run
}

/// Every run of `workflow` by id, with its state.
async fn run_states(s: &dyn Store, workflow: &str) -> BTreeMap<String, RunState> {
    s.list_runs(&RunFilter {
        workflow: Some(workflow.to_owned()),
        status: None,
        limit: Some(1000),
    })
    .await
    .expect("list runs")
    .into_iter()
    .map(|r| (r.id, r.status))
    .collect()
}

/// Checks the limit's promise: at most `limit` runs hold a place, and none is free while
/// runs wait. Returns (active, queued).
async fn check_limit(s: &dyn Store, workflow: &str, limit: usize) -> (usize, usize) {
    let states = run_states(s, workflow).await;
    let active = states
        .values()
        .filter(|st| matches!(st, RunState::Pending | RunState::Running))
        .count();
    let queued = states
        .values()
        .filter(|&&st| st == RunState::Created)
        .count();
    assert!(
        active <= limit,
        "{active} active runs over the limit {limit}: {states:?}"
    );
    assert!(
        queued == 0 || active == limit,
        "a place is free while {queued} runs wait: {states:?}"
    );
    (active, queued)
}

/// Claims everything claimable for `agent`, by run.
async fn claim_all(s: &dyn Store, agent: &str) -> HashMap<String, Vec<Assignment>> {
    let got = s.claim(agent, 100, LEASE).await.expect("claim");
    let mut by_run: HashMap<String, Vec<Assignment>> = HashMap::new();
    for a in got.assignments {
        by_run.entry(a.run_id.clone()).or_default().push(a);
    }
    by_run
}

/// Reports every assignment with `code`.
async fn report_all(s: &dyn Store, agent: &str, got: &[Assignment], code: i32) {
    for a in got {
        s.report(agent, aref(a), Outcome::exited(code), None)
            .await
            .expect("report");
    }
}

/// `queue`: runs past the limit wait as `created` with nothing claimable and a message;
/// each place that frees (a run succeeding or failing) goes to the oldest waiting run,
/// whose roots become ready then.
pub async fn concurrency_queue_admits_the_oldest_when_a_place_frees(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    for limit in [1usize, 2] {
        let name = format!("queue{limit}");
        s.apply_workflow(
            &limited(&name, limit as u32, OnConflict::Queue, true),
            "src",
        )
        .await
        .expect("apply");
        let mut runs = Vec::new();
        for _ in 0..limit + 2 {
            runs.push(create(s, &name).await);
            check_limit(s, &name, limit).await;
        }
        for r in &runs[..limit] {
            assert_eq!(r.status, RunState::Pending);
            assert_eq!(r.message, None);
        }
        let waiting = &runs[limit];
        assert_eq!(waiting.status, RunState::Created);
        assert_eq!(
            waiting.message.as_deref(),
            Some(
                format!(
                    "queued: workflow {name} has {limit} active run{} (limit {limit})",
                    if limit == 1 { "" } else { "s" }
                )
                .as_str()
            )
        );
        assert!(
            waiting
                .nodes
                .values()
                .all(|n| n.status == NodeState::Waiting)
        );
        assert_eq!(
            runs[limit + 1].message.as_deref(),
            Some(
                format!(
                    "queued: workflow {name} has {limit} active run{} and 1 queued (limit \
                     {limit})",
                    if limit == 1 { "" } else { "s" }
                )
                .as_str()
            )
        );
        assert_eq!(s.run(&waiting.id).await.expect("run"), *waiting);

        // Only the admitted runs' roots are claimable.
        let got = claim_all(s, &ag).await;
        let mut claimed: Vec<&String> = got.keys().collect();
        claimed.sort();
        let mut admitted: Vec<&String> = runs[..limit].iter().map(|r| &r.id).collect();
        admitted.sort();
        assert_eq!(claimed, admitted);

        // The oldest run's `a` succeeds: the run goes on, nobody is admitted.
        let first = &runs[0].id;
        report_all(s, &ag, &got[first], 0).await;
        assert_eq!(check_limit(s, &name, limit).await, (limit, 2));
        // Its `b` fails: the run ends `failure` and the oldest waiting run starts.
        let b = claim_all(s, &ag).await;
        report_all(s, &ag, &b[first], 1).await;
        assert_eq!(check_limit(s, &name, limit).await, (limit, 1));
        let started = s.run(&waiting.id).await.expect("run");
        assert_eq!(started.status, RunState::Pending);
        assert_eq!(
            started.message, None,
            "an admitted run no longer says why it waits"
        );
        assert_eq!(started.nodes["a"].status, NodeState::Ready);
        assert_eq!(started.nodes["b"].status, NodeState::Waiting);
        assert_eq!(
            s.run(&runs[limit + 1].id).await.expect("run").status,
            RunState::Created,
            "the younger run still waits"
        );

        // Every run ends, in order, each after a place freed.
        let mut live: Vec<Assignment> = got
            .into_iter()
            .filter(|(run, _)| run != first)
            .flat_map(|(_, list)| list)
            .collect();
        let mut done = 1;
        while done < runs.len() {
            live.extend(claim_all(s, &ag).await.into_values().flatten());
            assert!(!live.is_empty(), "a run waits with a free place");
            report_all(s, &ag, &live, 0).await;
            live.clear();
            check_limit(s, &name, limit).await;
            done = run_states(s, &name)
                .await
                .values()
                .filter(|st| st.is_terminal())
                .count();
        }
        let states = run_states(s, &name).await;
        assert_eq!(states[first], RunState::Failure);
        assert!(runs[1..].iter().all(|r| states[&r.id] == RunState::Success));
    }
}

/// `cancel_new`: a run created while the workflow is full ends `canceled` at once, with
/// reason `concurrency` and a message naming the runs holding the places; they go on.
pub async fn concurrency_cancel_new_cancels_the_new_run_at_once(h: Harness) {
    let s = &*h.store;
    for limit in [1usize, 2] {
        let name = format!("single{limit}");
        s.apply_workflow(
            &limited(&name, limit as u32, OnConflict::CancelNew, true),
            "src",
        )
        .await
        .expect("apply");
        let mut active = Vec::new();
        for _ in 0..limit {
            let r = create(s, &name).await;
            assert_eq!(r.status, RunState::Pending);
            active.push(r.id);
        }
        let refused = create(s, &name).await;
        assert_eq!(refused.status, RunState::Canceled);
        assert_eq!(refused.reason, Some(Reason::Concurrency));
        assert!(refused.finished_at.is_some());
        assert!(
            refused
                .nodes
                .values()
                .all(|n| n.status == NodeState::Canceled)
        );
        let message = refused.message.clone().expect("a message");
        assert!(
            message.starts_with(&format!(
                "canceled: workflow {name} already has {limit} active run"
            )),
            "{message}"
        );
        for id in &active {
            assert!(message.contains(id.as_str()), "{message} names {id}");
        }
        assert_eq!(s.run(&refused.id).await.expect("run"), refused);
        assert_eq!(check_limit(s, &name, limit).await, (limit, 0));
        for id in &active {
            assert_eq!(
                s.run(id).await.expect("run").status,
                RunState::Pending,
                "the runs holding the places go on"
            );
        }
        // Once a place frees, a new run starts again.
        s.cancel_run(&active[0]).await.expect("cancel");
        assert_eq!(create(s, &name).await.status, RunState::Pending);
        check_limit(s, &name, limit).await;
    }
}

/// `cancel_running`: a new run asks the oldest runs holding places to cancel (reason
/// `concurrency`), and starts only once they have stopped: at once for a run with no live
/// attempt, after the agent's report for one that has.
pub async fn concurrency_cancel_running_stops_the_oldest_then_starts(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    s.apply_workflow(
        &limited("deploy", 1, OnConflict::CancelRunning, true),
        "src",
    )
    .await
    .expect("apply");
    let old = create(s, "deploy").await;
    let got = claim_all(s, &ag).await;
    let a = &got[&old.id][0];
    s.start_attempt(&ag, aref(a)).await.expect("start");

    let new = create(s, "deploy").await;
    assert_eq!(new.status, RunState::Created, "{new:?}");
    let old_now = s.run(&old.id).await.expect("run");
    assert_eq!(
        old_now.status,
        RunState::Running,
        "its attempt is still live"
    );
    assert!(old_now.cancel_requested);
    assert_eq!(old_now.reason, Some(Reason::Concurrency));
    assert!(
        old_now
            .message
            .as_deref()
            .is_some_and(|m| m.contains("cancel_running")),
        "{old_now:?}"
    );
    assert_eq!(check_limit(s, "deploy", 1).await, (1, 1));
    // The agent hears of the cancel; nothing of the new run is claimable yet.
    let claimed = s.claim(&ag, 10, LEASE).await.expect("claim");
    assert!(claimed.assignments.is_empty());
    assert_eq!(claimed.cancel, vec![a.attempt_id]);

    s.report(&ag, aref(a), Outcome::canceled(Reason::Canceled), None)
        .await
        .expect("report");
    let old_end = s.run(&old.id).await.expect("run");
    assert_eq!(old_end.status, RunState::Canceled);
    assert_eq!(old_end.reason, Some(Reason::Concurrency));
    let started = s.run(&new.id).await.expect("run");
    assert_eq!(started.status, RunState::Pending);
    assert_eq!(started.nodes["a"].status, NodeState::Ready);
    assert_eq!(check_limit(s, "deploy", 1).await, (1, 0));

    // Limit 2: the oldest of two idle runs is stopped and ends at once; the new run
    // starts in its place, the other goes on.
    s.apply_workflow(&limited("pair", 2, OnConflict::CancelRunning, false), "src")
        .await
        .expect("apply");
    let first = create(s, "pair").await;
    let second = create(s, "pair").await;
    let third = create(s, "pair").await;
    assert_eq!(
        s.run(&third.id).await.expect("run").status,
        RunState::Pending,
        "the stopped run had no live attempt"
    );
    let first = s.run(&first.id).await.expect("run");
    assert_eq!(first.status, RunState::Canceled);
    assert_eq!(first.reason, Some(Reason::Concurrency));
    assert_eq!(
        s.run(&second.id).await.expect("run").status,
        RunState::Pending
    );
    assert_eq!(check_limit(s, "pair", 2).await, (2, 0));
}

/// A place frees however a run ends: a lost attempt with no retries left (reaped), its
/// run's timeout, a node nobody claimed in its queue timeout.
pub async fn concurrency_admits_when_runs_end_by_reap_or_deadlines(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;

    // Reaped.
    let mut wf = limited("reaped", 1, OnConflict::Queue, false);
    wf.nodes[0].retry = RetryPolicy {
        lost_attempts: 0,
        ..RetryPolicy::default()
    };
    s.apply_workflow(&wf, "src").await.expect("apply");
    let lost = create(s, "reaped").await;
    let waiting = create(s, "reaped").await;
    let got = claim_all(s, &ag).await;
    assert_eq!(got.len(), 1);
    h.clock.advance(LEASE as i64 + 1);
    let reaped = s.reap_expired().await.expect("reap");
    assert_eq!(reaped.lost, vec![got[&lost.id][0].attempt_id]);
    assert_eq!(s.run(&lost.id).await.expect("run").status, RunState::Error);
    assert_eq!(
        s.run(&waiting.id).await.expect("run").status,
        RunState::Pending
    );
    check_limit(s, "reaped", 1).await;

    // The run's timeout, counted from creation: a queued run's wait counts too.
    let mut wf = limited("timed", 1, OnConflict::Queue, false);
    wf.timeout_ms = Some(60_000);
    s.apply_workflow(&wf, "src").await.expect("apply");
    let slow = create(s, "timed").await;
    h.clock.advance(30_000);
    let next = create(s, "timed").await;
    assert_eq!(next.status, RunState::Created);
    h.clock.advance(30_000);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.runs, vec![slow.id.clone()]);
    let slow = s.run(&slow.id).await.expect("run");
    assert_eq!(
        (slow.status, slow.reason),
        (RunState::Error, Some(Reason::Timeout))
    );
    let next_now = s.run(&next.id).await.expect("run");
    assert_eq!(next_now.status, RunState::Pending);
    h.clock.advance(30_000);
    let expired = s.expire_deadlines().await.expect("deadlines");
    assert_eq!(expired.runs, vec![next.id.clone()], "its wait counted");
    check_limit(s, "timed", 1).await;

    // A node nobody can claim ends `error` (`no_agent`) after its queue timeout.
    let mut wf = limited("unclaimed", 1, OnConflict::Queue, false);
    wf.nodes[0].selector.insert("gpu".into(), "yes".into());
    wf.nodes[0].queue_timeout_ms = Some(5_000);
    s.apply_workflow(&wf, "src").await.expect("apply");
    let stuck = create(s, "unclaimed").await;
    h.clock.advance(4_000);
    let behind = create(s, "unclaimed").await;
    h.clock.advance(1_000);
    s.expire_deadlines().await.expect("deadlines");
    assert_eq!(s.run(&stuck.id).await.expect("run").status, RunState::Error);
    let admitted = s.run(&behind.id).await.expect("run");
    assert_eq!(admitted.status, RunState::Pending);
    h.clock.advance(4_999);
    s.expire_deadlines().await.expect("deadlines");
    assert_eq!(
        s.run(&behind.id).await.expect("run").status,
        RunState::Pending,
        "the queue timeout counts from admission"
    );
    h.clock.advance(1);
    s.expire_deadlines().await.expect("deadlines");
    assert_eq!(
        s.run(&behind.id).await.expect("run").status,
        RunState::Error
    );
}

/// A queued run can be canceled: it ends at once, says no more that it waits, and never
/// takes a place; canceling an active run with live attempts frees its place only when
/// they stopped.
pub async fn concurrency_queued_and_canceled_runs(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    s.apply_workflow(&limited("w", 1, OnConflict::Queue, false), "src")
        .await
        .expect("apply");
    let active = create(s, "w").await;
    let queued = create(s, "w").await;
    let last = create(s, "w").await;
    let canceled = s.cancel_run(&queued.id).await.expect("cancel");
    assert_eq!(canceled.status, RunState::Canceled);
    assert_eq!(canceled.reason, None, "a user's cancel");
    assert_eq!(canceled.message, None);
    assert_eq!(canceled.nodes["a"].status, NodeState::Canceled);
    assert_eq!(check_limit(s, "w", 1).await, (1, 1));

    let got = claim_all(s, &ag).await;
    let a = &got[&active.id][0];
    s.start_attempt(&ag, aref(a)).await.expect("start");
    s.cancel_run(&active.id).await.expect("cancel");
    assert_eq!(
        s.run(&last.id).await.expect("run").status,
        RunState::Created,
        "the canceled run's process may still run"
    );
    assert_eq!(check_limit(s, "w", 1).await, (1, 1));
    s.report(&ag, aref(a), Outcome::canceled(Reason::Canceled), None)
        .await
        .expect("report");
    assert_eq!(
        s.run(&last.id).await.expect("run").status,
        RunState::Pending
    );
    assert_eq!(check_limit(s, "w", 1).await, (1, 0));
}

/// A re-run of a limited workflow takes a place like a new run: it waits while the
/// workflow is full, then starts with its kept nodes still `success`.
pub async fn concurrency_reruns_wait_for_a_place(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    s.apply_workflow(&limited("w", 1, OnConflict::Queue, true), "src")
        .await
        .expect("apply");
    let first = create(s, "w").await;
    let got = claim_all(s, &ag).await;
    report_all(s, &ag, &got[&first.id], 0).await;
    let got = claim_all(s, &ag).await;
    report_all(s, &ag, &got[&first.id], 1).await;
    assert_eq!(
        s.run(&first.id).await.expect("run").status,
        RunState::Failure
    );

    let blocker = create(s, "w").await;
    assert_eq!(blocker.status, RunState::Pending);
    let again = s.retry_run(&first.id, None).await.expect("retry").run;
    assert_eq!(again.status, RunState::Created);
    assert_eq!(again.nodes["a"].status, NodeState::Success, "kept");
    assert_eq!(again.nodes["b"].status, NodeState::Waiting);
    check_limit(s, "w", 1).await;

    let got = claim_all(s, &ag).await;
    assert_eq!(got.keys().collect::<Vec<_>>(), [&blocker.id]);
    s.cancel_run(&blocker.id).await.expect("cancel");
    assert_eq!(
        s.run(&again.id).await.expect("run").status,
        RunState::Created,
        "the blocker's attempt is still live"
    );
    report_all(s, &ag, &got[&blocker.id], 1).await;
    let started = s.run(&again.id).await.expect("run");
    assert_eq!(started.status, RunState::Pending);
    assert_eq!(started.nodes["a"].status, NodeState::Success);
    assert_eq!(started.nodes["b"].status, NodeState::Ready);
}

/// Many runs created at once (in parallel, each on its own connection where the backend
/// has several) never leave more than the limit active, nor a place free while runs wait;
/// every queued run starts in turn as the others finish.
pub async fn concurrency_concurrent_creates_keep_the_limit(h: Harness) {
    const RUNS: usize = 24;
    const LIMIT: usize = 3;
    let s = h.store.clone();
    let ag = agent(&*s, "a", &[], &[]).await;
    s.apply_workflow(
        &limited("race", LIMIT as u32, OnConflict::Queue, false),
        "src",
    )
    .await
    .expect("apply");
    s.apply_workflow(
        &limited("drop", LIMIT as u32, OnConflict::CancelNew, false),
        "src",
    )
    .await
    .expect("apply");
    let mut tasks = Vec::new();
    for i in 0..RUNS * 2 {
        let s = Arc::clone(&s);
        let name = if i % 2 == 0 { "race" } else { "drop" };
        tasks.push(tokio::spawn(async move { create(&*s, name).await }));
    }
    for t in tasks {
        t.await.expect("creator");
    }
    assert_eq!(check_limit(&*s, "race", LIMIT).await, (LIMIT, RUNS - LIMIT));
    let dropped = run_states(&*s, "drop").await;
    assert_eq!(
        dropped
            .values()
            .filter(|&&st| st == RunState::Pending)
            .count(),
        LIMIT
    );
    assert_eq!(
        dropped
            .values()
            .filter(|&&st| st == RunState::Canceled)
            .count(),
        RUNS - LIMIT
    );

    // Finish runs from several tasks at once until every run of `race` ended.
    let mut order = Vec::new();
    loop {
        let got = claim_all(&*s, &ag).await;
        let got: Vec<Assignment> = got
            .into_values()
            .flatten()
            .filter(|a| a.workflow == "race")
            .collect();
        if got.is_empty() {
            break;
        }
        let mut reports = Vec::new();
        for a in got {
            order.push(a.run_id.clone());
            let s = Arc::clone(&s);
            let ag = ag.clone();
            reports.push(tokio::spawn(async move {
                s.report(&ag, aref(&a), Outcome::exited(0), None)
                    .await
                    .expect("report")
            }));
        }
        for r in reports {
            r.await.expect("reporter");
        }
        check_limit(&*s, "race", LIMIT).await;
    }
    let states = run_states(&*s, "race").await;
    assert_eq!(states.len(), RUNS);
    assert!(
        states.values().all(|&st| st == RunState::Success),
        "every queued run was admitted: {states:?}"
    );
    assert_eq!(order.len(), RUNS, "each run's node was handed out once");
}

/// Random histories of creates, claims, reports, cancels and lost agents over one limited
/// workflow, each policy in turn: after every step at most `limit` runs hold a place and
/// none is free while runs wait; in the end every run has ended.
pub async fn concurrency_random_histories_keep_the_limit(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut rng_state: u64 = 0x5eed_1234_abcd_0001;
    let mut rng = move |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    for (i, policy) in [
        OnConflict::Queue,
        OnConflict::CancelNew,
        OnConflict::CancelRunning,
    ]
    .into_iter()
    .enumerate()
    {
        let limit = 1 + i;
        let name = format!("random{i}");
        let mut wf = limited(&name, limit as u32, policy, true);
        wf.nodes[0].retry = RetryPolicy {
            lost_attempts: 0,
            ..RetryPolicy::default()
        };
        s.apply_workflow(&wf, "src").await.expect("apply");
        let mut live: Vec<Assignment> = Vec::new();
        for _ in 0..120 {
            match rng(6) {
                0 | 1 => {
                    create(s, &name).await;
                }
                2 => {
                    let got = s.claim(&ag, 1 + rng(3) as u32, LEASE).await.expect("claim");
                    live.extend(got.assignments);
                }
                3 if !live.is_empty() => {
                    let a = live.swap_remove(rng(live.len() as u64) as usize);
                    let outcome = if rng(4) == 0 {
                        Outcome::exited(1)
                    } else {
                        Outcome::canceled(Reason::Canceled)
                    };
                    let outcome = if rng(2) == 0 {
                        Outcome::exited(0)
                    } else {
                        outcome
                    };
                    // A report of a run canceled meanwhile may be answered differently,
                    // never refused.
                    s.report(&ag, aref(&a), outcome, None)
                        .await
                        .expect("report");
                }
                4 => {
                    let states = run_states(s, &name).await;
                    let open: Vec<&String> = states
                        .iter()
                        .filter(|(_, st)| !st.is_terminal())
                        .map(|(id, _)| id)
                        .collect();
                    if !open.is_empty() {
                        let id = open[rng(open.len() as u64) as usize].clone();
                        s.cancel_run(&id).await.expect("cancel");
                    }
                }
                _ => {
                    // The agent goes quiet: its live attempts are lost.
                    h.clock.advance(LEASE as i64 + 1);
                    s.reap_expired().await.expect("reap");
                    live.clear();
                }
            }
            check_limit(s, &name, limit).await;
        }
        // Drain: run everything left to its end.
        for _ in 0..1000 {
            for a in live.drain(..) {
                s.report(&ag, aref(&a), Outcome::exited(0), None)
                    .await
                    .expect("report");
            }
            check_limit(s, &name, limit).await;
            live.extend(s.claim(&ag, 10, LEASE).await.expect("claim").assignments);
            if live.is_empty() {
                break;
            }
        }
        let states = run_states(s, &name).await;
        assert!(
            states.values().all(|st| st.is_terminal()),
            "every run ended: {states:?}"
        );
    }
}

/// A queue no run ending moved (the last active run was of a version without a limit)
/// is moved by the deadline pass, the safety net.
pub async fn concurrency_deadline_pass_moves_stalled_queues(h: Harness) {
    let s = &*h.store;
    s.apply_workflow(&limited("w", 1, OnConflict::Queue, false), "v1")
        .await
        .expect("apply v1");
    let first = create(s, "w").await;
    let waiting = create(s, "w").await;
    assert_eq!(waiting.status, RunState::Created);
    // Version 2 has no limit: its runs start at once, yet hold a place for version 1.
    s.apply_workflow(&workflow("w", vec![node("a", &[]), node("z", &[])]), "v2")
        .await
        .expect("apply v2");
    let free = create(s, "w").await;
    assert_eq!(free.status, RunState::Pending);
    s.cancel_run(&first.id).await.expect("cancel");
    assert_eq!(
        s.run(&waiting.id).await.expect("run").status,
        RunState::Created,
        "the unlimited run still holds a place"
    );
    s.cancel_run(&free.id).await.expect("cancel");
    assert_eq!(
        s.run(&waiting.id).await.expect("run").status,
        RunState::Created,
        "a run of a version without a limit admits nobody when it ends"
    );
    let pass = s.expire_deadlines().await.expect("deadlines");
    assert!(pass.woke, "agents must look at the admitted run");
    assert_eq!(
        s.run(&waiting.id).await.expect("run").status,
        RunState::Pending
    );
    let again = s.expire_deadlines().await.expect("deadlines");
    assert!(!again.woke, "nothing left to move");
}

/// A run's priority is the workflow's unless the request names one; documents and lists
/// show it.
pub async fn run_priority_is_kept_and_shown(h: Harness) {
    let s = &*h.store;
    let mut wf = workflow("prio", vec![node("a", &[])]);
    wf.priority = 3;
    s.apply_workflow(&wf, "src").await.expect("apply");
    let default = create(s, "prio").await;
    assert_eq!(default.priority, 3);
    let urgent = s
        .create_run(&CreateRun {
            priority: Some(-7),
            ..CreateRun::latest("prio")
        })
        .await
        .expect("create")
        .run;
    assert_eq!(urgent.priority, -7);
    assert_eq!(s.run(&urgent.id).await.expect("run").priority, -7);
    let listed: BTreeMap<String, i64> = s
        .list_runs(&RunFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.id, r.priority))
        .collect();
    assert_eq!(listed[&default.id], 3);
    assert_eq!(listed[&urgent.id], -7);
}
