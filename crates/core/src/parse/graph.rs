//! Graph checks over the nodes of a file: `needs` name existing nodes, not themselves, and
//! the graph has no cycle.

use std::collections::HashMap;

use crate::dag::{NodeIdx, find_cycle};

use super::names::{quote, suggest};
use super::node::ReadNode;
use super::report::Report;

/// Most cycles reported for one file: each one found is cut and the search repeated.
const MAX_CYCLES: usize = 20;
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
                        if let Some(close) = suggest(need, index.keys().copied()) {
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
        let path: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&start))
            .map(|&k| nodes[k as usize].spec.id.as_str())
            .collect();
        let node = &nodes[start as usize];
        report.at(
            node.pos,
            Some(&node.spec.id),
            format!("cycle: {}", path.join(" -> ")),
        );
        // Cut the edge that closes this cycle so the next search can find another one.
        edges[last as usize].retain(|&k| k != start);
    }
    for (n, ids) in nodes.iter_mut().zip(resolved) {
        n.spec.needs = ids;
    }
}
