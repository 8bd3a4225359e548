//! Scheduling decisions: what an attempt's end means for its node, its
//! downstream and its run.
//!
//! The store applies these decisions incrementally inside its transactions;
//! [`RunMachine`] applies the very same functions to a whole run held in
//! memory, which is what the property tests exercise.

use crate::dag::{Dag, NodeIdx};
use crate::plan::{plan_run, propagate};
use crate::state::{AttemptState, NodeState, Outcome, RunState};
use crate::trigger::Upstream;
use crate::workflow::{RetryOn, RetryPolicy, When};

/// What becomes of a node after one of its attempts ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptDecision {
    /// Back to `ready`, claimable after `delay_ms`.
    Retry {
        /// Back-off before the next attempt may be claimed.
        delay_ms: u64,
    },
    /// The node ends in this terminal state.
    Finish(NodeState),
}

/// Decides a node's fate after attempt number `attempt` (1-based) ended with `outcome`.
///
/// `previous_lost` counts the node's earlier attempts that were lost (or handed back by a
/// shutting-down agent); `cancel_requested` is true once the run is being canceled, which
/// forbids any retry. `jitter` in `[0, 1)` spreads back-offs so retries do not stampede.
///
/// Unless `on` names `lost`, lost attempts are paid from `lost_attempts` and do not use up
/// `attempts`: a node that failed once and then lost its agent still gets its failure retries.
pub fn decide_attempt_end(
    policy: &RetryPolicy,
    attempt: u32,
    previous_lost: u32,
    outcome: &Outcome,
    cancel_requested: bool,
    jitter: f64,
) -> AttemptDecision {
    let finish = AttemptDecision::Finish(match outcome.state {
        AttemptState::Success => NodeState::Success,
        AttemptState::Failure => NodeState::Failure,
        AttemptState::Canceled if cancel_requested => NodeState::Canceled,
        AttemptState::Canceled => match RetryOn::of(outcome) {
            // A shutdown hand-back whose lost budget is spent ends as an error.
            Some(RetryOn::Lost) => NodeState::Error,
            _ => NodeState::Canceled,
        },
        _ => NodeState::Error,
    });
    if cancel_requested {
        return finish;
    }
    let Some(cond) = RetryOn::of(outcome) else {
        return finish;
    };
    let lost_counts = policy.on.contains(&RetryOn::Lost);
    if policy.on.contains(&cond) {
        let counted = if lost_counts {
            attempt
        } else {
            attempt.saturating_sub(previous_lost)
        };
        if counted < policy.attempts {
            return AttemptDecision::Retry {
                delay_ms: backoff_delay_ms(policy, counted, jitter),
            };
        }
        return finish;
    }
    if cond == RetryOn::Lost && previous_lost < policy.lost_attempts {
        // A lost agent says nothing about the work: try again at once elsewhere.
        return AttemptDecision::Retry { delay_ms: 0 };
    }
    finish
}

/// Back-off before attempt `attempt + 1`: `backoff * 2^(attempt-1)`, capped, then jittered
/// into `[half, full]` of that so retries of many nodes spread out.
pub fn backoff_delay_ms(policy: &RetryPolicy, attempt: u32, jitter: f64) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    let base = policy
        .backoff_ms
        .saturating_mul(1u64 << exp)
        .min(policy.max_backoff_ms.max(policy.backoff_ms));
    let half = base / 2;
    // A NaN jitter casts to 0; float rounding near u64::MAX is kept in range by the min.
    let spread = ((base - half) as f64 * jitter.clamp(0.0, 1.0)) as u64;
    half.saturating_add(spread).min(base)
}

/// A run's result once every node is terminal, from the count of nodes in each state.
///
/// Canceled wins (a user asked for it), then failure (the work itself failed), then error;
/// skipped nodes only follow from those. `None` while some node is not terminal.
pub fn run_result(
    total: usize,
    count: impl Fn(NodeState) -> usize,
    cancel_requested: bool,
) -> Option<RunState> {
    let done: usize = NodeState::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|&s| count(s))
        .sum();
    if done < total {
        return None;
    }
    Some(if cancel_requested || count(NodeState::Canceled) > 0 {
        RunState::Canceled
    } else if count(NodeState::Failure) > 0 {
        RunState::Failure
    } else if count(NodeState::Error) > 0 {
        RunState::Error
    } else {
        RunState::Success
    })
}

/// Something that happens to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An agent claims a ready node; opens attempt `attempts + 1`.
    Claim(NodeIdx),
    /// The agent started attempt `attempt` of the node.
    Start(NodeIdx, u32),
    /// Attempt `attempt` of the node ended (reported by its agent, or reaped as lost).
    End(NodeIdx, u32, Outcome),
    /// A user cancels the run.
    Cancel,
}

/// A change the machine made, for the caller to persist or act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A node moved between states.
    Node(NodeIdx, NodeState),
    /// The node will be ready again, claimable after the delay.
    RetryAfter(NodeIdx, u64),
    /// The attempt must be stopped on its agent.
    Kill(NodeIdx, u32),
    /// The run moved to a new state.
    Run(RunState),
}

/// Why an event changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The event is about an attempt that is not the node's current one, or already ended.
    #[error("stale attempt")]
    Stale,
    /// The node is not in a state that allows the event.
    #[error("node is {0}")]
    WrongState(NodeState),
    /// The run is already finished.
    #[error("run is finished")]
    Finished,
    /// The event names a node index the graph does not have.
    #[error("no node {0}")]
    UnknownNode(NodeIdx),
}

/// A whole run held in memory: the reference model of Baton's scheduling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMachine {
    dag: Dag,
    policies: Vec<RetryPolicy>,
    /// Each node's trigger rule.
    rules: Vec<When>,
    /// What each node's needs have done so far (a cancel ends nodes without counting).
    upstream: Vec<Upstream>,
    states: Vec<NodeState>,
    /// Nodes per state, indexed like [`NodeState::ALL`], so settling the run costs O(1).
    counts: [usize; NodeState::ALL.len()],
    attempts: Vec<u32>,
    attempt_open: Vec<bool>,
    lost: Vec<u32>,
    run: RunState,
    cancel_requested: bool,
}

impl RunMachine {
    /// Starts a run in which every node waits for all its needs to succeed
    /// (`all_success`): roots become ready.
    ///
    /// `policies` holds one policy per node in index order; missing ones are the default
    /// policy and extra ones are ignored.
    pub fn new(dag: Dag, policies: Vec<RetryPolicy>) -> RunMachine {
        RunMachine::with_rules(dag, policies, Vec::new())
    }

    /// Starts a run whose nodes follow trigger rules: `rules` holds one per node in index
    /// order (missing ones are `all_success`, extra ones are ignored).
    pub fn with_rules(dag: Dag, policies: Vec<RetryPolicy>, rules: Vec<When>) -> RunMachine {
        RunMachine::rerun(dag, policies, rules, &[])
    }

    /// Starts a re-run that keeps the nodes marked in `kept` (by index; missing ones are
    /// not kept) as successes, planned by [`plan_run`] like the stores' re-runs.
    pub fn rerun(
        dag: Dag,
        mut policies: Vec<RetryPolicy>,
        mut rules: Vec<When>,
        kept: &[bool],
    ) -> RunMachine {
        let n = dag.len();
        policies.resize(n, RetryPolicy::default());
        rules.resize(n, When::default());
        let plan = plan_run(&dag, &rules, kept);
        let mut counts = [0; NodeState::ALL.len()];
        for s in &plan {
            counts[s.state as usize] += 1;
        }
        let mut m = RunMachine {
            states: plan.iter().map(|s| s.state).collect(),
            upstream: plan.iter().map(|s| s.upstream).collect(),
            counts,
            attempts: vec![0; n],
            attempt_open: vec![false; n],
            lost: vec![0; n],
            policies,
            rules,
            run: RunState::Pending,
            cancel_requested: false,
            dag,
        };
        // A run with nothing left to do (no nodes, or every one kept or skipped) is over.
        m.settle_run(&mut Vec::new());
        m
    }

    /// The graph.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The run's state.
    pub fn run_state(&self) -> RunState {
        self.run
    }

    /// True once the run has been asked to cancel.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// A node's state. Panics if `idx` is not a node of the graph.
    pub fn node_state(&self, idx: NodeIdx) -> NodeState {
        self.states[idx as usize]
    }

    /// Every node's state, in index order.
    pub fn node_states(&self) -> &[NodeState] {
        &self.states
    }

    /// What a node's needs have done so far, as its trigger rule sees them. Panics if `idx`
    /// is not a node of the graph.
    pub fn upstream(&self, idx: NodeIdx) -> Upstream {
        self.upstream[idx as usize]
    }

    /// Attempts opened so far for a node. Panics if `idx` is not a node of the graph.
    pub fn attempts(&self, idx: NodeIdx) -> u32 {
        self.attempts[idx as usize]
    }

    /// Nodes an agent could claim now.
    pub fn ready(&self) -> Vec<NodeIdx> {
        (0..self.dag.len() as NodeIdx)
            .filter(|&i| self.states[i as usize] == NodeState::Ready)
            .collect()
    }

    /// Applies one event. A rejected event changes nothing.
    pub fn apply(&mut self, event: Event, jitter: f64) -> Result<Vec<Effect>, Rejected> {
        if self.run.is_terminal() {
            return Err(Rejected::Finished);
        }
        let mut fx = Vec::new();
        match event {
            Event::Claim(i) => {
                let s = self.state_of(i)?;
                if s != NodeState::Ready {
                    return Err(Rejected::WrongState(s));
                }
                self.attempts[i as usize] += 1;
                self.attempt_open[i as usize] = true;
                self.set(i, NodeState::Pending, &mut fx);
            }
            Event::Start(i, a) => {
                let s = self.state_of(i)?;
                if a != self.attempts[i as usize] || !self.attempt_open[i as usize] {
                    return Err(Rejected::Stale);
                }
                if s != NodeState::Pending {
                    return Err(Rejected::WrongState(s));
                }
                self.set(i, NodeState::Running, &mut fx);
                if self.run == RunState::Pending {
                    self.run = RunState::Running;
                    fx.push(Effect::Run(RunState::Running));
                }
            }
            Event::End(i, a, outcome) => {
                self.state_of(i)?;
                if a != self.attempts[i as usize] || !self.attempt_open[i as usize] {
                    return Err(Rejected::Stale);
                }
                self.attempt_open[i as usize] = false;
                let decision = decide_attempt_end(
                    &self.policies[i as usize],
                    a,
                    self.lost[i as usize],
                    &outcome,
                    self.cancel_requested,
                    jitter,
                );
                if RetryOn::of(&outcome) == Some(RetryOn::Lost) {
                    self.lost[i as usize] += 1;
                }
                match decision {
                    AttemptDecision::Retry { delay_ms } => {
                        self.set(i, NodeState::Ready, &mut fx);
                        fx.push(Effect::RetryAfter(i, delay_ms));
                    }
                    AttemptDecision::Finish(state) => self.finish_node(i, state, &mut fx),
                }
            }
            Event::Cancel => {
                self.cancel_requested = true;
                for i in 0..self.dag.len() as NodeIdx {
                    match self.states[i as usize] {
                        NodeState::Waiting | NodeState::Ready => {
                            self.set(i, NodeState::Canceled, &mut fx)
                        }
                        NodeState::Pending | NodeState::Running => {
                            fx.push(Effect::Kill(i, self.attempts[i as usize]))
                        }
                        _ => {}
                    }
                }
            }
        }
        self.settle_run(&mut fx);
        Ok(fx)
    }

    fn state_of(&self, i: NodeIdx) -> Result<NodeState, Rejected> {
        self.states
            .get(i as usize)
            .copied()
            .ok_or(Rejected::UnknownNode(i))
    }

    fn set(&mut self, i: NodeIdx, s: NodeState, fx: &mut Vec<Effect>) {
        let old = std::mem::replace(&mut self.states[i as usize], s);
        debug_assert!(!old.is_terminal(), "terminal states never change");
        self.counts[old as usize] -= 1;
        self.counts[s as usize] += 1;
        fx.push(Effect::Node(i, s));
    }

    /// Ends node `i` in `state` and moves the nodes below it their rules now decide.
    fn finish_node(&mut self, i: NodeIdx, state: NodeState, fx: &mut Vec<Effect>) {
        self.set(i, state, fx);
        let counts = &mut self.counts;
        propagate(
            &self.dag,
            &self.rules,
            &mut self.states,
            &mut self.upstream,
            i,
            state,
            |c, to| {
                counts[NodeState::Waiting as usize] -= 1;
                counts[to as usize] += 1;
                fx.push(Effect::Node(c, to));
            },
        );
    }

    fn settle_run(&mut self, fx: &mut Vec<Effect>) {
        let counts = &self.counts;
        let count = |s: NodeState| counts[s as usize];
        if let Some(result) = run_result(self.states.len(), count, self.cancel_requested) {
            self.run = result;
            fx.push(Effect::Run(result));
        }
    }
}
