//! Property tests of `RunMachine` over random DAGs, retry policies and event sequences.
//!
//! Every delivered event is checked against the machine's invariants: a node is ready or
//! ran only once its trigger rule was met by its needs' states, is skipped only once its
//! rule can no longer be met, and never waits when its rule decided; terminal states never
//! change, attempt numbers only grow, refused events change nothing, a node succeeds at
//! most once, the run's result follows from the nodes that ran, and every run ends under
//! a fair scheduler. T6 of RELIABILITY.md: duplicated, reordered and stale reports
//! lead to the same final state as single delivery.

use baton_core::{
    Dag, Effect, Event, Gate, NodeIdx, NodeState, Outcome, Reason, Rejected, RetryOn, RetryPolicy,
    RunMachine, RunState, Upstream, When, gate,
};
use proptest::prelude::*;

const MAX_NODES: usize = 30;

/// A random DAG: edges only go from a lower to a higher index, so it is acyclic.
fn dag_strategy() -> impl Strategy<Value = Dag> {
    (1..=MAX_NODES)
        .prop_flat_map(|n| (Just(n), prop::collection::vec((0..n, 0..n), 0..=2 * n)))
        .prop_map(|(n, edges)| {
            let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
            let mut needs = vec![Vec::new(); n];
            for (x, y) in edges {
                if x != y {
                    let (lo, hi) = (x.min(y), x.max(y));
                    needs[hi].push(ids[lo].clone());
                }
            }
            Dag::from_edges(ids, &needs)
        })
}

fn policy_strategy() -> impl Strategy<Value = RetryPolicy> {
    let custom = (
        0u32..=4,
        prop::collection::vec(any::<bool>(), 4),
        0u64..5_000,
        0u64..20_000,
        0u32..=3,
    )
        .prop_map(
            |(attempts, on, backoff_ms, max_backoff_ms, lost_attempts)| {
                let all = [
                    RetryOn::Failure,
                    RetryOn::Error,
                    RetryOn::Timeout,
                    RetryOn::Lost,
                ];
                RetryPolicy {
                    attempts,
                    on: all
                        .into_iter()
                        .zip(on)
                        .filter(|(_, pick)| *pick)
                        .map(|(c, _)| c)
                        .collect(),
                    backoff_ms,
                    max_backoff_ms,
                    lost_attempts,
                }
            },
        );
    prop_oneof![1 => Just(RetryPolicy::default()), 2 => custom]
}

fn rule_strategy() -> impl Strategy<Value = When> {
    prop_oneof![
        3 => Just(When::AllSuccess),
        1 => Just(When::AllDone),
        1 => Just(When::AnySuccess),
        1 => Just(When::AnyFailure),
    ]
}

fn outcome_strategy() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::exited(0)),
        2 => Just(Outcome::exited(1)),
        1 => Just(Outcome::error(Reason::Setup)),
        1 => Just(Outcome::error(Reason::Timeout)),
        2 => Just(Outcome::error(Reason::Lost)),
        1 => Just(Outcome::error(Reason::NoAgent)),
        1 => Just(Outcome::canceled(Reason::Canceled)),
        1 => Just(Outcome::canceled(Reason::Shutdown)),
    ]
}

/// One step of a random history; selectors pick among the nodes the step applies to now.
#[derive(Debug, Clone)]
enum Step {
    /// Claim a ready node.
    Claim(usize),
    /// Start a claimed node's attempt.
    Start(usize),
    /// End a claimed or running node's attempt.
    End(usize, Outcome),
    /// Deliver an accepted end again: a duplicate or late report.
    Duplicate(usize),
    /// Report an end for an attempt older than the node's current one.
    StaleEnd(usize, u32, Outcome),
    /// Any event at all, possibly about an unknown node or attempt.
    Raw(u32, u32, u8, Outcome),
    /// A user cancels the run.
    Cancel,
}

fn step_strategy() -> impl Strategy<Value = (Step, f64)> {
    let sel = any::<usize>;
    let step = prop_oneof![
        40 => sel().prop_map(Step::Claim),
        30 => sel().prop_map(Step::Start),
        40 => (sel(), outcome_strategy()).prop_map(|(s, o)| Step::End(s, o)),
        10 => sel().prop_map(Step::Duplicate),
        10 => (sel(), 1u32..4, outcome_strategy()).prop_map(|(s, b, o)| Step::StaleEnd(s, b, o)),
        8 => (0..MAX_NODES as u32 + 2, 0u32..6, 0u8..4, outcome_strategy())
            .prop_map(|(n, a, k, o)| Step::Raw(n, a, k, o)),
        1 => Just(Step::Cancel),
    ];
    (step, 0.0..1.0f64)
}

/// A random run: graph, policies, rules, and which nodes a re-run keeps.
#[derive(Debug, Clone)]
struct Case {
    dag: Dag,
    policies: Vec<RetryPolicy>,
    rules: Vec<When>,
    kept: Vec<bool>,
}

impl Case {
    fn machine(&self) -> RunMachine {
        RunMachine::rerun(
            self.dag.clone(),
            self.policies.clone(),
            self.rules.clone(),
            &self.kept,
        )
    }
}

/// A random case; with `rerun`, some nodes are kept as a re-run keeps them: successes
/// whose needs are all kept too.
fn case_strategy(rerun: bool) -> impl Strategy<Value = (Case, Vec<(Step, f64)>)> {
    dag_strategy().prop_flat_map(move |dag| {
        let n = dag.len();
        let keep = if rerun { 0.5 } else { 0.0 };
        (
            Just(dag),
            prop::collection::vec(policy_strategy(), n),
            prop::collection::vec(rule_strategy(), n),
            prop::collection::vec(prop::bool::weighted(keep), n),
            prop::collection::vec(step_strategy(), 0..150),
        )
            .prop_map(|(dag, policies, rules, mut kept, steps)| {
                // Needs have lower indexes, so one pass in index order closes the set.
                for i in 0..dag.len() {
                    kept[i] = kept[i] && dag.needs(i as NodeIdx).iter().all(|&p| kept[p as usize]);
                }
                let case = Case {
                    dag,
                    policies,
                    rules,
                    kept,
                };
                (case, steps)
            })
    })
}

/// What node `i`'s needs have done in `m`, counted from their states alone.
fn upstream_of(m: &RunMachine, i: NodeIdx) -> Upstream {
    let needs = m.dag().needs(i);
    let mut up = Upstream {
        needs: needs.len() as u32,
        remaining: needs.len() as u32,
        ..Upstream::default()
    };
    for &p in needs {
        let s = m.node_state(p);
        if s.is_terminal() {
            up.end(s);
        }
    }
    up
}

/// The run's result from the nodes that ran (skipped nodes do not count), as the issue
/// states it: canceled over failure over error over success.
fn expected_result(m: &RunMachine) -> RunState {
    let has = |s: NodeState| m.node_states().contains(&s);
    if m.cancel_requested() || has(NodeState::Canceled) {
        RunState::Canceled
    } else if has(NodeState::Failure) {
        RunState::Failure
    } else if has(NodeState::Error) {
        RunState::Error
    } else {
        RunState::Success
    }
}

fn open(m: &RunMachine, s: NodeState) -> Vec<NodeIdx> {
    (0..m.dag().len() as NodeIdx)
        .filter(|&i| m.node_state(i) == s)
        .collect()
}

fn pick(from: &[NodeIdx], sel: usize) -> Option<NodeIdx> {
    (!from.is_empty()).then(|| from[sel % from.len()])
}

fn run_rank(s: RunState) -> u8 {
    match s {
        RunState::Created => 0,
        RunState::Pending => 1,
        RunState::Running => 2,
        _ => 3,
    }
}

/// Delivers events to a machine and checks every invariant after each one.
struct Checked {
    m: RunMachine,
    /// Accepted events in delivery order, with their jitter: the logical history.
    accepted: Vec<(Event, f64)>,
    /// Accepted successes per node.
    successes: Vec<u32>,
    /// The first terminal state each node reached.
    terminal: Vec<Option<NodeState>>,
    /// Most attempts each node's policy allows: its tries plus, unless `on` names `lost`,
    /// its lost-agent retries.
    budgets: Vec<u32>,
    /// Each node's trigger rule.
    rules: Vec<When>,
    /// Nodes a re-run kept: successes that never ran here.
    kept: Vec<bool>,
}

fn budget(p: &RetryPolicy) -> u32 {
    let lost = if p.on.contains(&RetryOn::Lost) {
        0
    } else {
        p.lost_attempts
    };
    p.attempts.max(1) + lost
}

impl Checked {
    fn new(m: RunMachine, case: &Case) -> Checked {
        let n = m.dag().len();
        let policies = &case.policies;
        let c = Checked {
            rules: (0..n)
                .map(|i| case.rules.get(i).copied().unwrap_or_default())
                .collect(),
            kept: (0..n)
                .map(|i| case.kept.get(i).copied().unwrap_or(false))
                .collect(),
            m,
            accepted: Vec::new(),
            successes: vec![0; n],
            terminal: vec![None; n],
            budgets: (0..n)
                .map(|i| {
                    policies
                        .get(i)
                        .map_or(budget(&RetryPolicy::default()), budget)
                })
                .collect(),
        };
        c.check_rules();
        c
    }

    fn deliver(&mut self, ev: Event, jitter: f64) -> Result<Vec<Effect>, Rejected> {
        let before = self.m.clone();
        let result = self.m.apply(ev.clone(), jitter);
        match &result {
            Err(_) => assert_eq!(self.m, before, "refused {ev:?} changed the machine"),
            Ok(fx) => {
                self.check_step(&before, &ev, fx);
                self.accepted.push((ev, jitter));
            }
        }
        result
    }

    /// Delivers an event that must be refused (or, for a repeated cancel, change nothing).
    fn deliver_noise(&mut self, ev: Event, jitter: f64) {
        let before = self.m.clone();
        match self.m.apply(ev.clone(), jitter) {
            Err(_) => {}
            Ok(fx) => {
                assert!(
                    ev == Event::Cancel && before.cancel_requested(),
                    "noise {ev:?} accepted: {fx:?}"
                );
                assert!(
                    fx.iter().all(|e| matches!(e, Effect::Kill(..))),
                    "a repeated cancel only repeats kills: {fx:?}"
                );
            }
        }
        assert_eq!(self.m, before, "noise {ev:?} changed the machine");
    }

    /// Every node stands where its rule puts it, judged from its needs' states alone: a
    /// node that is ready or ran had its rule met, a skipped one can no longer have it met,
    /// and a waiting one is still undecided (so nothing is left waiting for ever).
    fn check_rules(&self) {
        let m = &self.m;
        for i in 0..m.dag().len() as NodeIdx {
            let up = upstream_of(m, i);
            // A cancel ends waiting and ready nodes without counting them below.
            if !m.cancel_requested() {
                assert_eq!(m.upstream(i), up, "node {i}'s counters");
            }
            if self.kept[i as usize] {
                assert_eq!(m.node_state(i), NodeState::Success, "kept node {i}");
                continue;
            }
            let want = match m.node_state(i) {
                NodeState::Waiting => Gate::Wait,
                NodeState::Skipped => Gate::Skip,
                // A cancel ends nodes whatever their rule.
                NodeState::Canceled => continue,
                _ => Gate::Ready,
            };
            let rule = self.rules[i as usize];
            assert_eq!(
                gate(rule, up),
                want,
                "node {i} ({rule:?}) is {} with needs {up:?}",
                m.node_state(i)
            );
        }
    }

    fn check_step(&mut self, before: &RunMachine, ev: &Event, fx: &[Effect]) {
        let m = &self.m;
        let n = m.dag().len();
        self.check_rules();
        let mut last_effect: Vec<Option<NodeState>> = vec![None; n];
        for e in fx {
            match *e {
                Effect::Node(i, s) => {
                    last_effect[i as usize] = Some(s);
                    if s == NodeState::Success {
                        self.successes[i as usize] += 1;
                        assert!(self.successes[i as usize] <= 1, "node {i} succeeded twice");
                    }
                }
                Effect::Run(s) => assert_eq!(m.run_state(), s, "run effect disagrees"),
                Effect::RetryAfter(i, _) => {
                    assert_eq!(
                        m.node_state(i),
                        NodeState::Ready,
                        "retry of a node not ready"
                    )
                }
                Effect::Kill(i, a) => {
                    assert!(matches!(ev, Event::Cancel), "kill outside a cancel");
                    assert_eq!(a, m.attempts(i), "kill of a stale attempt");
                }
            }
        }
        for (i, effect) in last_effect.into_iter().enumerate() {
            let idx = i as NodeIdx;
            let (was, now) = (before.node_state(idx), m.node_state(idx));
            match effect {
                Some(s) => assert_eq!(s, now, "node {i}: last effect is not its state"),
                None => assert_eq!(was, now, "node {i} changed without an effect"),
            }
            if was.is_terminal() {
                assert_eq!(was, now, "terminal node {i} changed");
            }
            if now.is_terminal() {
                let first = *self.terminal[i].get_or_insert(now);
                assert_eq!(first, now, "node {i} left its terminal state");
            }
            let want_attempts = before.attempts(idx) + u32::from(*ev == Event::Claim(idx));
            assert_eq!(m.attempts(idx), want_attempts, "node {i} attempt numbers");
            assert!(
                m.attempts(idx) <= self.budgets[i],
                "node {i} has {} attempts, over its policy's {}",
                m.attempts(idx),
                self.budgets[i]
            );
        }
        assert!(
            run_rank(m.run_state()) >= run_rank(before.run_state()),
            "run went back"
        );
        let all_done = m.node_states().iter().all(|s| s.is_terminal());
        assert_eq!(
            m.run_state().is_terminal(),
            all_done,
            "run and nodes disagree on the end"
        );
        if m.run_state().is_terminal() {
            assert_eq!(m.run_state(), expected_result(m), "run result");
        }
        if m.cancel_requested() {
            assert!(m.ready().is_empty(), "nothing is ready once canceling");
        }
    }

    /// Interprets one random step against the machine's current state.
    fn step(&mut self, step: &Step, jitter: f64) {
        let m = &self.m;
        let ev = match *step {
            Step::Claim(s) => pick(&m.ready(), s).map(Event::Claim),
            Step::Start(s) => {
                pick(&open(m, NodeState::Pending), s).map(|i| Event::Start(i, m.attempts(i)))
            }
            Step::End(s, o) => {
                let mut live = open(m, NodeState::Pending);
                live.extend(open(m, NodeState::Running));
                pick(&live, s).map(|i| Event::End(i, m.attempts(i), o))
            }
            Step::Duplicate(s) => {
                let ends: Vec<&Event> = self
                    .accepted
                    .iter()
                    .map(|(e, _)| e)
                    .filter(|e| matches!(e, Event::End(..)))
                    .collect();
                if ends.is_empty() {
                    return;
                }
                let dup = ends[s % ends.len()].clone();
                let err = self.deliver(dup.clone(), jitter).err();
                assert!(
                    matches!(err, Some(Rejected::Stale | Rejected::Finished)),
                    "duplicate {dup:?} gave {err:?}"
                );
                return;
            }
            Step::StaleEnd(s, back, o) => {
                let i = (s % m.dag().len()) as NodeIdx;
                let old = m.attempts(i).saturating_sub(back);
                let ev = Event::End(i, old, o);
                let err = self.deliver(ev.clone(), jitter).err();
                assert!(
                    matches!(err, Some(Rejected::Stale | Rejected::Finished)),
                    "stale {ev:?} gave {err:?}"
                );
                return;
            }
            Step::Raw(i, a, kind, o) => Some(match kind {
                0 => Event::Claim(i),
                1 => Event::Start(i, a),
                _ => Event::End(i, a, o),
            }),
            Step::Cancel => Some(Event::Cancel),
        };
        if let Some(ev) = ev {
            // Refusals are legitimate here (a raw event may be anything); the checks in
            // `deliver` hold either way.
            let _ = self.deliver(ev, jitter);
        }
    }

    /// Drives the run to its end with a fair scheduler that lets everything succeed:
    /// at most claim, start and end per node, so 3 events per node must be enough.
    fn drive_to_end(&mut self) {
        let bound = 3 * self.m.dag().len() + 1;
        for _ in 0..bound {
            if self.m.run_state().is_terminal() {
                return;
            }
            let m = &self.m;
            let ev = if let Some(&i) = open(m, NodeState::Running).first() {
                Event::End(i, m.attempts(i), Outcome::exited(0))
            } else if let Some(&i) = open(m, NodeState::Pending).first() {
                Event::Start(i, m.attempts(i))
            } else if let Some(&i) = m.ready().first() {
                Event::Claim(i)
            } else {
                panic!("run is stuck: {:?}", m.node_states());
            };
            if let Err(e) = self.deliver(ev.clone(), 0.5) {
                panic!("fair scheduler's {ev:?} refused: {e}");
            }
        }
        assert!(
            self.m.run_state().is_terminal(),
            "run did not end within {bound} events: {:?}",
            self.m.node_states()
        );
    }
}

/// A tiny deterministic generator for noise, seeded by proptest so a failure replays.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn outcome(&mut self) -> Outcome {
        match self.below(4) {
            0 => Outcome::exited(0),
            1 => Outcome::exited(1),
            2 => Outcome::error(Reason::Lost),
            _ => Outcome::canceled(Reason::Shutdown),
        }
    }
}

/// Noise that a report of `ev` may cause later: 0–4 more copies (so 1–5 deliveries in all)
/// and reports about older attempts of the same node.
fn noise_after(ev: &Event, rng: &mut SplitMix, mailbox: &mut Vec<Event>) {
    match *ev {
        Event::End(i, a, _) | Event::Start(i, a) => {
            for _ in 0..rng.below(5) {
                mailbox.push(ev.clone());
            }
            for _ in 0..rng.below(3) {
                let old = a.saturating_sub(1 + rng.below(3) as u32);
                mailbox.push(Event::End(i, old, rng.outcome()));
                mailbox.push(Event::Start(i, old));
            }
        }
        Event::Cancel => {
            for _ in 0..rng.below(3) {
                mailbox.push(Event::Cancel);
            }
        }
        Event::Claim(_) => {}
    }
}

/// Replays a logical history with duplicated, delayed and stale reports interleaved.
fn replay_noisy(start: RunMachine, case: &Case, history: &[(Event, f64)], seed: u64) -> RunMachine {
    let mut rng = SplitMix(seed);
    let mut c = Checked::new(start, case);
    let mut mailbox = Vec::new();
    for (ev, jitter) in history {
        while !mailbox.is_empty() && rng.below(3) == 0 {
            let noise = mailbox.swap_remove(rng.below(mailbox.len()));
            c.deliver_noise(noise, 0.5);
        }
        if let Err(e) = c.deliver(ev.clone(), *jitter) {
            panic!("logical {ev:?} refused on replay: {e}");
        }
        noise_after(ev, &mut rng, &mut mailbox);
    }
    for noise in mailbox {
        c.deliver_noise(noise, 0.5);
    }
    c.m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random histories keep every invariant, and every run ends under a fair scheduler.
    /// The accepted history, replayed with duplicated and stale reports interleaved
    /// (cancels included), ends in exactly the same machine.
    #[test]
    fn random_histories_keep_invariants_and_end(
        (case, steps) in case_strategy(false),
        seed in any::<u64>(),
    ) {
        let start = case.machine();
        let mut c = Checked::new(start.clone(), &case);
        for (step, jitter) in &steps {
            c.step(step, *jitter);
        }
        c.drive_to_end();
        let replayed = replay_noisy(start, &case, &c.accepted, seed);
        prop_assert_eq!(&replayed, &c.m);
    }

    /// A re-run starts from the shared plan: kept nodes are successes, the rest stand where
    /// their rules put them (skips included), and random histories from there keep every
    /// invariant and end.
    #[test]
    fn reruns_start_where_rules_put_them_and_end(
        (case, steps) in case_strategy(true),
    ) {
        let mut c = Checked::new(case.machine(), &case);
        for (step, jitter) in &steps {
            c.step(step, *jitter);
        }
        c.drive_to_end();
    }

    /// T6: with fixed outcomes per attempt, delivering reports once in one order ends in the
    /// same state as delivering each 1–5 times, across nodes in a random order, with stale
    /// reports of old attempts injected.
    #[test]
    fn noisy_delivery_matches_single_delivery(
        dag in dag_strategy(),
        policies in prop::collection::vec(policy_strategy(), MAX_NODES),
        rules in prop::collection::vec(rule_strategy(), MAX_NODES),
        plan in prop::collection::vec(prop::collection::vec(outcome_strategy(), 0..4), MAX_NODES),
        seed in any::<u64>(),
    ) {
        let outcome_of = |i: NodeIdx, a: u32| {
            plan[i as usize]
                .get(a as usize - 1)
                .copied()
                .unwrap_or(Outcome::exited(0))
        };
        let case = Case { dag, policies, rules, kept: Vec::new() };
        let start = case.machine();

        // Single delivery: lowest index first, each report exactly once.
        let mut single = Checked::new(start.clone(), &case);
        while !single.m.run_state().is_terminal() {
            let m = &single.m;
            let ev = if let Some(&i) = open(m, NodeState::Running).first() {
                Event::End(i, m.attempts(i), outcome_of(i, m.attempts(i)))
            } else if let Some(&i) = open(m, NodeState::Pending).first() {
                Event::Start(i, m.attempts(i))
            } else if let Some(&i) = m.ready().first() {
                Event::Claim(i)
            } else {
                panic!("run is stuck: {:?}", m.node_states());
            };
            prop_assert!(single.deliver(ev, 0.5).is_ok());
            prop_assert!(single.accepted.len() < 10_000, "single delivery does not end");
        }

        // Noisy delivery: any live node may move next, and reports repeat and go stale.
        let mut rng = SplitMix(seed);
        let mut noisy = Checked::new(start, &case);
        let mut mailbox = Vec::new();
        while !noisy.m.run_state().is_terminal() {
            if !mailbox.is_empty() && rng.below(3) == 0 {
                let noise = mailbox.swap_remove(rng.below(mailbox.len()));
                noisy.deliver_noise(noise, 0.5);
                continue;
            }
            let m = &noisy.m;
            let mut moves: Vec<Event> = m.ready().into_iter().map(Event::Claim).collect();
            for i in open(m, NodeState::Pending) {
                moves.push(Event::Start(i, m.attempts(i)));
            }
            for i in open(m, NodeState::Running) {
                moves.push(Event::End(i, m.attempts(i), outcome_of(i, m.attempts(i))));
            }
            prop_assert!(!moves.is_empty(), "run is stuck: {:?}", m.node_states());
            let ev = moves.swap_remove(rng.below(moves.len()));
            prop_assert!(noisy.deliver(ev.clone(), 0.5).is_ok());
            noise_after(&ev, &mut rng, &mut mailbox);
            prop_assert!(noisy.accepted.len() < 10_000, "noisy delivery does not end");
        }
        for noise in mailbox {
            noisy.deliver_noise(noise, 0.5);
        }
        prop_assert_eq!(noisy.m.node_states(), single.m.node_states());
        prop_assert_eq!(noisy.m.run_state(), single.m.run_state());
        prop_assert_eq!(&noisy.m, &single.m);
    }
}
