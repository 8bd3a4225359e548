//! Graph checks over the nodes of a file: `needs` name existing nodes, not themselves, and
//! the graph has no cycle.

use std::collections::HashMap;

use crate::dag::{NodeIdx, find_cycle};

use super::names::{quote, suggest};
use super::node::ReadNode;
use super::report::Report;

/// Most cycles reported for one file: each one found is cut and the search repeated.
const MAX_CYCLES: usize = 20;
/// Longest cycle shown in full; a longer one shows its two ends.
const CYCLE_SHOWN: usize = 12;
/// Most "did you mean" searches over node ids per file, each of which scans every id.
const MAX_SUGGESTIONS: usize = 50;

/// Resolves every node's `needs` into `spec.needs` (each once, in file order), reporting
/// unknown nodes, self-dependencies and cycles.
pub(crate) fn check(nodes: &mut [ReadNode<'_>], report: &mut Report) {
    // The first node of an id wins; a duplicate id was already reported.
    let mut index: HashMap<&str, NodeIdx> = HashMap::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        index.entry(n.spec.id.as_str()).or_insert(i as NodeIdx);
    }
    let mut edges: Vec<Vec<NodeIdx>> = vec![Vec::new(); nodes.len()];
    let mut suggestions = 0;
    for (i, n) in nodes.iter().enumerate() {
        let id = n.spec.id.as_str();
        for &(need, pos) in &n.needs {
            match index.get(need) {
                Some(&j) if j as usize == i => report.at(pos, Some(id), "needs itself"),
                Some(&j) => {
                    if !edges[i].contains(&j) {
                        edges[i].push(j);
                    }
                }
                None => {
                    let mut message = format!("needs unknown node {}", quote(need));
                    if suggestions < MAX_SUGGESTIONS {
                        suggestions += 1;
                        if let Some(close) = suggest(need, nodes.iter().map(|n| n.spec.id.as_str()))
                        {
                            message.push_str(&format!("; did you mean {close:?}?"));
                        }
                    }
                    report.at(pos, Some(id), message);
                }
            }
        }
    }
    let resolved: Vec<Vec<String>> = edges
        .iter()
        .map(|e| {
            e.iter()
                .map(|&k| nodes[k as usize].spec.id.clone())
                .collect()
        })
        .collect();
    for _ in 0..MAX_CYCLES {
        let Some(mut cycle) = find_cycle(&edges) else {
            break;
        };
        // Start at the node written first, so the message does not depend on search order.
        cycle.pop();
        let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
        cycle.rotate_left(first);
        let (Some(&start), Some(&last)) = (cycle.first(), cycle.last()) else {
            break;
        };
        let ids: Vec<&str> = cycle
            .iter()
            .map(|&k| nodes[k as usize].spec.id.as_str())
            .collect();
        let node = &nodes[start as usize];
        report.at(node.pos, Some(&node.spec.id), cycle_message(&ids));
        // Cut the edge that closes this cycle so the next search can find another one.
        edges[last as usize].retain(|&k| k != start);
    }
    for (n, ids) in nodes.iter_mut().zip(resolved) {
        n.spec.needs = ids;
    }
}

/// `cycle: a -> b -> a` for the nodes `[a, b]` of a cycle.
fn cycle_message(ids: &[&str]) -> String {
    let Some(first) = ids.first() else {
        return "cycle".to_owned();
    };
    if ids.len() <= CYCLE_SHOWN {
        return format!("cycle: {} -> {first}", ids.join(" -> "));
    }
    let half = CYCLE_SHOWN / 2;
    format!(
        "cycle of {} nodes: {} -> … -> {} -> {first}",
        ids.len(),
        ids[..half].join(" -> "),
        ids[ids.len() - half..].join(" -> ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cycles_show_their_ends() {
        assert_eq!(cycle_message(&["a"]), "cycle: a -> a");
        assert_eq!(cycle_message(&["a", "b"]), "cycle: a -> b -> a");
        let ids: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            cycle_message(&ids),
            "cycle of 100 nodes: n0 -> n1 -> n2 -> n3 -> n4 -> n5 -> … \
             -> n94 -> n95 -> n96 -> n97 -> n98 -> n99 -> n0"
        );
    }
}
