//! The compiled graph of a workflow: nodes by index, with needs and children.

use std::collections::HashMap;

use crate::workflow::Workflow;

/// A node's position in its workflow's node list.
pub type NodeIdx = u32;

/// A workflow's DAG with O(1) lookups both ways along every edge.
///
/// Compiled once per workflow version and shared: the scheduler walks only the
/// edges around the node that changed, never the whole graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    ids: Vec<String>,
    by_id: HashMap<String, NodeIdx>,
    needs: Vec<Vec<NodeIdx>>,
    children: Vec<Vec<NodeIdx>>,
}

impl Dag {
    /// Compiles a validated workflow. Unknown `needs` (impossible after validation) are dropped.
    pub fn compile(wf: &Workflow) -> Dag {
        Dag::from_edges(
            wf.nodes.iter().map(|n| n.id.clone()).collect(),
            wf.nodes.iter().map(|n| n.needs.as_slice()),
        )
    }

    /// Builds a graph from node ids and, for each node in the same order, the ids it needs.
    pub fn from_edges<'a, I, N>(ids: Vec<String>, needs: I) -> Dag
    where
        I: IntoIterator<Item = &'a N>,
        N: AsRef<[String]> + ?Sized + 'a,
    {
        let by_id: HashMap<String, NodeIdx> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as NodeIdx))
            .collect();
        let mut need_idx = vec![Vec::new(); ids.len()];
        let mut children = vec![Vec::new(); ids.len()];
        for (i, node_needs) in needs.into_iter().enumerate().take(ids.len()) {
            for need in node_needs.as_ref() {
                if let Some(&p) = by_id.get(need)
                    && !need_idx[i].contains(&p)
                {
                    need_idx[i].push(p);
                    children[p as usize].push(i as NodeIdx);
                }
            }
        }
        Dag {
            ids,
            by_id,
            needs: need_idx,
            children,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of node `idx`.
    pub fn id(&self, idx: NodeIdx) -> &str {
        &self.ids[idx as usize]
    }

    /// All ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The index of the node called `id`.
    pub fn index(&self, id: &str) -> Option<NodeIdx> {
        self.by_id.get(id).copied()
    }

    /// Nodes that `idx` needs.
    pub fn needs(&self, idx: NodeIdx) -> &[NodeIdx] {
        &self.needs[idx as usize]
    }

    /// Nodes that need `idx`.
    pub fn children(&self, idx: NodeIdx) -> &[NodeIdx] {
        &self.children[idx as usize]
    }

    /// Nodes with no needs: ready as soon as a run starts.
    pub fn roots(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        (0..self.len() as NodeIdx).filter(|&i| self.needs[i as usize].is_empty())
    }

    /// Every node reachable from `idx` along child edges, excluding `idx`, each once.
    pub fn descendants(&self, idx: NodeIdx) -> Vec<NodeIdx> {
        let mut seen = vec![false; self.len()];
        let mut out = Vec::new();
        let mut stack: Vec<NodeIdx> = self.children(idx).to_vec();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut seen[n as usize], true) {
                out.push(n);
                stack.extend_from_slice(self.children(n));
            }
        }
        out
    }

    /// A cycle, as a path of indices that starts and ends at the same node, if there is one.
    ///
    /// Iterative, so a 10,000-node chain cannot overflow the stack.
    pub fn find_cycle(&self) -> Option<Vec<NodeIdx>> {
        find_cycle(&self.needs)
    }
}

/// Finds a cycle in a graph given as `needs` lists (edges from a node to what it needs).
///
/// Returns the path `a, b, …, a` in needs order, or `None` when the graph is acyclic.
pub(crate) fn find_cycle(needs: &[Vec<NodeIdx>]) -> Option<Vec<NodeIdx>> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut color = vec![WHITE; needs.len()];
    let mut path: Vec<NodeIdx> = Vec::new();
    let mut cursor: Vec<usize> = Vec::new();
    for start in 0..needs.len() {
        if color[start] != WHITE {
            continue;
        }
        color[start] = GREY;
        path.push(start as NodeIdx);
        cursor.push(0);
        while let Some(&node) = path.last() {
            let pos = cursor.last_mut().expect("cursor and path grow together");
            if let Some(&next) = needs[node as usize].get(*pos) {
                *pos += 1;
                match color[next as usize] {
                    WHITE => {
                        color[next as usize] = GREY;
                        path.push(next);
                        cursor.push(0);
                    }
                    GREY => {
                        let from = path.iter().position(|&n| n == next).unwrap_or(0);
                        let mut cycle = path[from..].to_vec();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                color[node as usize] = BLACK;
                path.pop();
                cursor.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&str, &[&str])]) -> Dag {
        let ids = edges.iter().map(|(id, _)| id.to_string()).collect();
        let needs: Vec<Vec<String>> = edges
            .iter()
            .map(|(_, n)| n.iter().map(|s| s.to_string()).collect())
            .collect();
        Dag::from_edges(ids, &needs)
    }

    #[test]
    fn diamond_edges_both_ways() {
        let d = dag(&[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        assert_eq!(d.roots().collect::<Vec<_>>(), vec![0]);
        assert_eq!(d.children(0), &[1, 2]);
        assert_eq!(d.needs(3), &[1, 2]);
        let mut desc = d.descendants(0);
        desc.sort();
        assert_eq!(desc, vec![1, 2, 3]);
        assert_eq!(d.find_cycle(), None);
    }

    #[test]
    fn finds_cycle_path() {
        let d = dag(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("x", &[])]);
        let cycle = d.find_cycle().expect("cycle");
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
    }

    #[test]
    fn long_chain_does_not_overflow() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("n{i}")).collect();
        let needs: Vec<Vec<String>> = (0..20_000)
            .map(|i| {
                if i == 0 {
                    vec![]
                } else {
                    vec![format!("n{}", i - 1)]
                }
            })
            .collect();
        let d = Dag::from_edges(ids, &needs);
        assert_eq!(d.find_cycle(), None);
        assert_eq!(d.descendants(0).len(), 19_999);
    }
}
