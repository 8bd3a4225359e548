//! Many agents claiming, reporting and reaping in one store at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use baton_api::{Assignment, AttemptReport};
use baton_core::{AttemptState, NodeState, Outcome, RetryPolicy, RunState};

use super::{Harness, LEASE, agent, node, start_run, states, workflow};

/// Sixteen agents race for 2,000 ready nodes: every node is handed out exactly once.
pub async fn concurrent_claims_take_each_node_once(h: Harness) {
    claim_race(h, 2_000, 16).await;
}

/// T1: 32 agents race for 10,000 ready nodes: no node is handed out twice, and none is
/// left ready (stranded).
pub async fn thirty_two_claimers_take_ten_thousand_nodes_once(h: Harness) {
    claim_race(h, 10_000, 32).await;
}

/// `AGENTS` agents claim (1 to 8 at a time) from one run of `NODES` ready nodes until
/// nothing is left.
async fn claim_race(h: Harness, nodes_n: usize, agents_n: usize) {
    let s = h.store.clone();
    let nodes = (0..nodes_n).map(|i| node(&format!("n{i}"), &[])).collect();
    let run = start_run(&*s, &workflow("wide", nodes)).await;
    let mut agents = Vec::new();
    for i in 0..agents_n {
        agents.push(agent(&*s, &format!("racer-{i}"), &[], &[]).await);
    }

    let mut tasks = Vec::new();
    for (i, id) in agents.into_iter().enumerate() {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let max = 1 + (i % 8) as u32;
            let mut mine = Vec::new();
            loop {
                let got = s.claim(&id, max, LEASE).await.expect("claim");
                if got.assignments.is_empty() {
                    return mine;
                }
                assert!(got.assignments.len() <= max as usize);
                mine.extend(got.assignments.into_iter().map(|a| (a.node, a.attempt_id)));
            }
        }));
    }
    let mut nodes_seen = HashSet::new();
    let mut attempts_seen = HashSet::new();
    for t in tasks {
        for (node, attempt) in t.await.expect("claimer") {
            assert!(nodes_seen.insert(node.clone()), "{node} handed out twice");
            assert!(
                attempts_seen.insert(attempt),
                "attempt {attempt} handed out twice"
            );
        }
    }
    assert_eq!(nodes_seen.len(), nodes_n, "no node was stranded");
    let st = states(&*s, &run).await;
    assert!(st.values().all(|&v| v == NodeState::Pending));
    assert!(st.keys().all(|k| nodes_seen.contains(k)));
}

/// Eight agents claim, report (one by one and in batches) and abandon attempts while a
/// reaper moves the clock past their leases and reaps, all at once: the run succeeds and
/// every node has exactly one successful attempt.
pub async fn claims_reports_and_reaps_at_once_succeed_each_node_once(h: Harness) {
    const ROOTS: usize = 100;
    const CHILDREN: usize = 3;
    const AGENTS: usize = 8;
    let s = h.store.clone();
    // Roots fan out to children; a lost attempt is retried at once, however often.
    let retry = RetryPolicy {
        lost_attempts: 10_000,
        backoff_ms: 0,
        max_backoff_ms: 0,
        ..RetryPolicy::default()
    };
    let mut nodes = Vec::new();
    for r in 0..ROOTS {
        let root = format!("r{r}");
        let mut n = node(&root, &[]);
        n.retry = retry.clone();
        nodes.push(n);
        for c in 0..CHILDREN {
            let mut n = node(&format!("r{r}c{c}"), &[&root]);
            n.retry = retry.clone();
            nodes.push(n);
        }
    }
    let total = nodes.len();
    let run = start_run(&*s, &workflow("churn", nodes)).await;
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        agents.push(agent(&*s, &format!("churn-{i}"), &[], &[]).await);
    }
    let finished = Arc::new(AtomicBool::new(false));
    let abandoned = Arc::new(AtomicUsize::new(0));

    let mut workers = Vec::new();
    for (i, id) in agents.into_iter().enumerate() {
        let s = Arc::clone(&s);
        let finished = Arc::clone(&finished);
        let abandoned = Arc::clone(&abandoned);
        workers.push(tokio::spawn(async move {
            let mut held: Vec<Assignment> = Vec::new();
            let mut handled = 0usize;
            while !finished.load(Ordering::SeqCst) {
                if held.is_empty() {
                    held = s.claim(&id, 4, LEASE).await.expect("claim").assignments;
                    if held.is_empty() {
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
                let mine = std::mem::take(&mut held);
                let mut reports = Vec::new();
                for a in mine {
                    handled += 1;
                    // Some agents lose every fifth attempt: the reaper must end it.
                    if i.is_multiple_of(3) && handled.is_multiple_of(5) {
                        abandoned.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    reports.push(AttemptReport {
                        attempt_id: a.attempt_id,
                        fence: a.fence,
                        outcome: Outcome::exited(0),
                        message: None,
                        outputs: Default::default(),
                    });
                }
                if i.is_multiple_of(2) {
                    let done = s
                        .report_batch(&id, &reports, 4, LEASE)
                        .await
                        .expect("report a batch");
                    held = done.assignments;
                } else {
                    for r in &reports {
                        let at = baton_api::AttemptRef {
                            attempt_id: r.attempt_id,
                            fence: r.fence,
                        };
                        match s.report(&id, at, r.outcome, None).await {
                            // Reaped meanwhile: no longer this agent's to end.
                            Ok(_) | Err(crate::StoreError::Stale(_)) => {}
                            Err(e) => panic!("report: {e}"),
                        }
                    }
                }
            }
        }));
    }

    let reaper = {
        let s = Arc::clone(&s);
        let clock = h.clock.clone();
        let finished = Arc::clone(&finished);
        let abandoned = Arc::clone(&abandoned);
        let run = run.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let doc = s.run(&run).await.expect("run");
                if doc.status.is_terminal() {
                    finished.store(true, Ordering::SeqCst);
                    return;
                }
                let now_abandoned = abandoned.load(Ordering::SeqCst);
                if now_abandoned > seen {
                    seen = now_abandoned;
                    // Every lease given out so far runs out, live or abandoned.
                    clock.advance(LEASE as i64 + 1);
                }
                s.reap_expired().await.expect("reap");
                tokio::task::yield_now().await;
            }
        })
    };
    let all = async {
        reaper.await.expect("reaper");
        for w in workers {
            w.await.expect("worker");
        }
    };
    tokio::time::timeout(Duration::from_secs(300), all)
        .await
        .expect("the churn run finishes");

    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Success);
    assert_eq!(doc.nodes.len(), total);
    let mut successes: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, n) in &doc.nodes {
        assert_eq!(n.status, NodeState::Success, "{id}");
        let won = n
            .attempts
            .iter()
            .filter(|a| a.status == AttemptState::Success)
            .count();
        successes.insert(id, won);
        assert!(
            n.attempts.iter().all(|a| a.status.is_terminal()),
            "{id} has a live attempt in a finished run"
        );
    }
    assert!(successes.values().all(|&n| n == 1), "{successes:?}");
    assert!(
        abandoned.load(Ordering::SeqCst) > 0,
        "some attempts were lost"
    );
    assert!(
        doc.nodes
            .values()
            .flat_map(|n| &n.attempts)
            .any(|a| a.status == AttemptState::Error),
        "the reaper ended some attempt"
    );
}
