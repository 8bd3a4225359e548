//! How a run's nodes start, and how a node's end reaches the nodes below it.
//!
//! [`plan_run`] is the one plan both stores write for new runs and re-runs and
//! [`crate::RunMachine`] starts from; [`propagate`] is the walk the machine makes when a
//! node ends (the stores make the same walk in SQL, one edge at a time, with the same
//! [`gate`]).

use crate::dag::{Dag, NodeIdx};
use crate::state::NodeState;
use crate::trigger::{Gate, Upstream, gate};
use crate::workflow::When;

/// How one node of a new run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// `ready`, `waiting`, `skipped`, or `success` for a node a re-run keeps.
    pub state: NodeState,
    /// What its needs have done so far, as its trigger rule sees them.
    pub upstream: Upstream,
}

/// Plans the start of a run of `dag`.
///
/// `rules[i]` is node `i`'s trigger rule (missing ones are `all_success`). `kept[i]` marks
/// a node a re-run keeps (missing ones are not kept): it starts as `success` and counts as
/// a need that ended in success. Every other node is gated on what its kept needs did:
/// `ready`, `waiting`, or `skipped` when its rule can no longer be met, and skips reach
/// the nodes below at once, exactly as if the node had ended so.
pub fn plan_run(dag: &Dag, rules: &[When], kept: &[bool]) -> Vec<Start> {
    let n = dag.len();
    let kept_at = |i: NodeIdx| kept.get(i as usize).copied().unwrap_or(false);
    let mut states = Vec::with_capacity(n);
    let mut upstream = Vec::with_capacity(n);
    for i in 0..n as NodeIdx {
        let needs = dag.needs(i);
        let kept_needs = needs.iter().filter(|&&p| kept_at(p)).count();
        upstream.push(Upstream {
            needs: needs.len() as u32,
            remaining: (needs.len() - kept_needs) as u32,
            ..Upstream::default()
        });
        states.push(if kept_at(i) {
            NodeState::Success
        } else {
            NodeState::Waiting
        });
    }
    let rule = |i: NodeIdx| rules.get(i as usize).copied().unwrap_or_default();
    for i in 0..n as NodeIdx {
        // A skip propagated from a node planned earlier may already have settled it.
        if states[i as usize] != NodeState::Waiting {
            continue;
        }
        match gate(rule(i), upstream[i as usize]) {
            Gate::Wait => {}
            Gate::Ready => states[i as usize] = NodeState::Ready,
            Gate::Skip => {
                states[i as usize] = NodeState::Skipped;
                propagate(
                    dag,
                    rules,
                    &mut states,
                    &mut upstream,
                    i,
                    NodeState::Skipped,
                    |_, _| {},
                );
            }
        }
    }
    states
        .into_iter()
        .zip(upstream)
        .map(|(state, upstream)| Start { state, upstream })
        .collect()
}

/// Node `from` just ended in `state` (already recorded in `states`): counts it for each of
/// its children and moves the waiting ones their rule now decides, calling `moved` for
/// each (from `waiting` to `ready` or `skipped`). A skipped child ends in turn for its own
/// children, so the walk touches each edge below `from` at most once.
///
/// Children that no longer wait count the end too, so every node's counters always say
/// what its needs did, whatever order they ended in.
pub(crate) fn propagate(
    dag: &Dag,
    rules: &[When],
    states: &mut [NodeState],
    upstream: &mut [Upstream],
    from: NodeIdx,
    state: NodeState,
    mut moved: impl FnMut(NodeIdx, NodeState),
) {
    let mut ended = vec![(from, state)];
    while let Some((p, s)) = ended.pop() {
        for &c in dag.children(p) {
            let ci = c as usize;
            upstream[ci].end(s);
            if states[ci] != NodeState::Waiting {
                continue;
            }
            let rule = rules.get(ci).copied().unwrap_or_default();
            let to = match gate(rule, upstream[ci]) {
                Gate::Wait => continue,
                Gate::Ready => NodeState::Ready,
                Gate::Skip => {
                    ended.push((c, NodeState::Skipped));
                    NodeState::Skipped
                }
            };
            states[ci] = to;
            moved(c, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(nodes: &[(&str, &[&str])]) -> Dag {
        let ids = nodes.iter().map(|(id, _)| id.to_string()).collect();
        let needs: Vec<Vec<String>> = nodes
            .iter()
            .map(|(_, n)| n.iter().map(|s| s.to_string()).collect())
            .collect();
        Dag::from_edges(ids, &needs)
    }

    fn states(plan: &[Start]) -> Vec<NodeState> {
        plan.iter().map(|s| s.state).collect()
    }

    #[test]
    fn new_run_readies_roots_and_counts_every_need() {
        let d = dag(&[("a", &[]), ("b", &[]), ("c", &["a", "b"])]);
        let plan = plan_run(&d, &[], &[]);
        use NodeState::*;
        assert_eq!(states(&plan), [Ready, Ready, Waiting]);
        assert_eq!(
            plan[2].upstream,
            Upstream {
                needs: 2,
                remaining: 2,
                bad: 0,
                failed: 0
            }
        );
    }

    #[test]
    fn kept_needs_count_as_successes() {
        // a kept; b runs again; c (any_success of a, b) is ready at once; d (all_success of
        // a, b) waits for b.
        let d = dag(&[
            ("a", &[]),
            ("b", &[]),
            ("c", &["a", "b"]),
            ("d", &["a", "b"]),
        ]);
        let rules = [When::AllSuccess, When::AllSuccess, When::AnySuccess];
        let plan = plan_run(&d, &rules, &[true]);
        use NodeState::*;
        assert_eq!(states(&plan), [Success, Ready, Ready, Waiting]);
        assert_eq!(plan[3].upstream.remaining, 1);
    }

    #[test]
    fn rule_that_cannot_be_met_skips_at_once_and_the_skip_reaches_below() {
        // Everything `cleanup` (any_failure) needs is kept as a success: it can never run,
        // so it and the chain below it are skipped, but `report` (all_done) runs.
        let d = dag(&[
            ("build", &[]),
            ("cleanup", &["build"]),
            ("after", &["cleanup"]),
            ("report", &["after"]),
        ]);
        let rules = [
            When::AllSuccess,
            When::AnyFailure,
            When::AllSuccess,
            When::AllDone,
        ];
        let plan = plan_run(&d, &rules, &[true]);
        use NodeState::*;
        assert_eq!(states(&plan), [Success, Skipped, Skipped, Ready]);
        assert_eq!(plan[3].upstream.bad, 1);
    }

    #[test]
    fn skips_reach_nodes_listed_before_their_needs() {
        // Index order is not topological order: `tail` needs `late`, listed after it.
        let d = dag(&[("tail", &["late"]), ("late", &["x"]), ("x", &[])]);
        let rules = [When::AllDone, When::AnyFailure];
        let plan = plan_run(&d, &rules, &[false, false, true]);
        use NodeState::*;
        assert_eq!(states(&plan), [Ready, Skipped, Success]);
    }
}
