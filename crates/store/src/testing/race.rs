//! Many agents claiming from one store at once.

use std::collections::HashSet;
use std::sync::Arc;

use baton_core::NodeState;

use super::{Harness, LEASE, agent, node, start_run, states, workflow};

/// Sixteen agents race for 2,000 ready nodes: every node is handed out exactly once.
pub async fn concurrent_claims_take_each_node_once(h: Harness) {
    const NODES: usize = 2_000;
    const AGENTS: usize = 16;
    let s = h.store.clone();
    let nodes = (0..NODES).map(|i| node(&format!("n{i}"), &[])).collect();
    let run = start_run(&*s, &workflow("wide", nodes)).await;
    let mut agents = Vec::new();
    for i in 0..AGENTS {
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
    assert_eq!(nodes_seen.len(), NODES);
    let st = states(&*s, &run).await;
    assert!(st.values().all(|&v| v == NodeState::Pending));
    assert!(st.keys().all(|k| nodes_seen.contains(k)));
}
