//! Random histories applied to the store and to `baton_core::RunMachine` side by side:
//! after every event both must agree on every node's state and the run's. Workflows get
//! random trigger rules, so the store's per-edge counters are checked against the model.

use std::collections::BTreeMap;

use baton_api::AttemptRef;
use baton_core::{
    Dag, Event, NodeIdx, NodeState, Outcome, Reason, RetryOn, RetryPolicy, RunMachine, When,
    Workflow,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Harness, LEASE, agent, node, workflow};
use crate::{Store, StoreError};

/// Seeds tried per run of the case; each is one random workflow and history.
const SEEDS: u64 = 40;
/// Random events per history before it is driven to its end.
const EVENTS: usize = 80;

/// An attempt the model believes is live.
#[derive(Debug, Clone)]
struct Live {
    at: AttemptRef,
    agent: usize,
    idx: NodeIdx,
    number: u32,
    started: bool,
    lease_until: i64,
}

/// An attempt that ended, with how.
#[derive(Debug, Clone)]
struct Ended {
    at: AttemptRef,
    agent: usize,
    outcome: Outcome,
}

struct Replay<'a> {
    store: &'a dyn Store,
    h: &'a Harness,
    rng: StdRng,
    seed: u64,
    machine: RunMachine,
    run: String,
    agents: Vec<String>,
    live: Vec<Live>,
    ended: Vec<Ended>,
    log: Vec<String>,
}

fn random_workflow(rng: &mut StdRng, name: &str) -> Workflow {
    let n = rng.random_range(1..=9usize);
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let needs: Vec<String> = (0..i)
            .filter(|_| rng.random_bool(0.3))
            .map(|j| format!("n{j}"))
            .collect();
        let needs_ref: Vec<&str> = needs.iter().map(String::as_str).collect();
        let mut spec = node(&format!("n{i}"), &needs_ref);
        // As the parser allows: a rule only on a node that needs something.
        if !needs.is_empty() {
            const RULES: [When; 4] = [
                When::AllSuccess,
                When::AllDone,
                When::AnySuccess,
                When::AnyFailure,
            ];
            spec.when = RULES[rng.random_range(0..RULES.len())];
        }
        let on: Vec<RetryOn> = [
            RetryOn::Failure,
            RetryOn::Error,
            RetryOn::Timeout,
            RetryOn::Lost,
        ]
        .into_iter()
        .filter(|_| rng.random_bool(0.4))
        .collect();
        spec.retry = RetryPolicy {
            attempts: rng.random_range(1..=3),
            on,
            backoff_ms: if rng.random_bool(0.5) {
                0
            } else {
                rng.random_range(500..=3_000)
            },
            max_backoff_ms: 4_000,
            lost_attempts: rng.random_range(0..=2),
        };
        nodes.push(spec);
    }
    workflow(name, nodes)
}

fn random_outcome(rng: &mut StdRng) -> Outcome {
    match rng.random_range(0..40) {
        0..=19 => Outcome::exited(0),
        20..=27 => Outcome::exited(rng.random_range(1..=3)),
        28..=31 => Outcome::error(Reason::Setup),
        32..=35 => Outcome::error(Reason::Timeout),
        36..=38 => Outcome::canceled(Reason::Shutdown),
        _ => Outcome::canceled(Reason::Canceled),
    }
}

impl Replay<'_> {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {}: {what}\nhistory:\n  {}",
            self.seed,
            self.log.join("\n  ")
        )
    }

    /// Compares every node and the run with the machine.
    async fn check(&self) {
        let doc = self.store.run(&self.run).await.expect("run document");
        let dag = self.machine.dag();
        for i in 0..dag.len() as NodeIdx {
            let n = &doc.nodes[dag.id(i)];
            let want = self.machine.node_state(i);
            if n.status != want {
                self.fail(&format!(
                    "node {} is {} in the store, {want} in the machine",
                    dag.id(i),
                    n.status
                ));
            }
            if n.attempts.len() as u32 != self.machine.attempts(i) {
                self.fail(&format!("node {} attempt count differs", dag.id(i)));
            }
        }
        if doc.status != self.machine.run_state() {
            self.fail(&format!(
                "run is {} in the store, {} in the machine",
                doc.status,
                self.machine.run_state()
            ));
        }
    }

    fn apply(&mut self, event: Event) {
        if let Err(e) = self.machine.apply(event.clone(), 0.5) {
            self.fail(&format!("the machine refused {event:?}: {e}"));
        }
    }

    async fn claim(&mut self, agent: usize, max: u32) {
        let got = self
            .store
            .claim(&self.agents[agent], max, LEASE)
            .await
            .expect("claim");
        self.log.push(format!(
            "claim agent{agent} max {max} -> {}",
            got.assignments.len()
        ));
        for a in got.assignments {
            let Some(idx) = self.machine.dag().index(&a.node) else {
                self.fail(&format!("claim handed out unknown node {}", a.node));
            };
            if self.machine.node_state(idx) != NodeState::Ready {
                self.fail(&format!("claim handed out {} which is not ready", a.node));
            }
            self.apply(Event::Claim(idx));
            if a.attempt != self.machine.attempts(idx) {
                self.fail(&format!("attempt number of {} differs", a.node));
            }
            self.live.push(Live {
                at: AttemptRef {
                    attempt_id: a.attempt_id,
                    fence: a.fence,
                },
                agent,
                idx,
                number: a.attempt,
                started: false,
                lease_until: self.h.clock.now() + LEASE as i64,
            });
        }
    }

    async fn start(&mut self, k: usize) {
        let l = self.live[k].clone();
        self.log.push(format!("start attempt {}", l.at.attempt_id));
        self.store
            .start_attempt(&self.agents[l.agent], l.at)
            .await
            .unwrap_or_else(|e| self.fail(&format!("start failed: {e}")));
        if !l.started {
            self.apply(Event::Start(l.idx, l.number));
            self.live[k].started = true;
        }
    }

    async fn report(&mut self, k: usize, outcome: Outcome) {
        let l = self.live.remove(k);
        self.log
            .push(format!("report attempt {} {outcome:?}", l.at.attempt_id));
        let r = self
            .store
            .report(&self.agents[l.agent], l.at, outcome, None)
            .await
            .unwrap_or_else(|e| self.fail(&format!("report failed: {e}")));
        if r.duplicate {
            self.fail("a first report came back as a duplicate");
        }
        self.apply(Event::End(l.idx, l.number, outcome));
        self.ended.push(Ended {
            at: l.at,
            agent: l.agent,
            outcome,
        });
    }

    async fn duplicate(&mut self, k: usize) {
        let e = self.ended[k].clone();
        self.log
            .push(format!("repeat report of attempt {}", e.at.attempt_id));
        match self
            .store
            .report(&self.agents[e.agent], e.at, e.outcome, None)
            .await
        {
            Ok(r) if r.duplicate && r.outcome == e.outcome => {}
            other => self.fail(&format!("a repeated report gave {other:?}")),
        }
    }

    async fn stale(&mut self, at: AttemptRef, agent: usize, outcome: Outcome) {
        self.log
            .push(format!("stale report of attempt {}", at.attempt_id));
        match self
            .store
            .report(&self.agents[agent], at, outcome, None)
            .await
        {
            Err(StoreError::Stale(_)) => {}
            other => self.fail(&format!("a stale report gave {other:?}")),
        }
    }

    async fn heartbeat(&mut self, agent: usize) {
        let mine: Vec<AttemptRef> = self
            .live
            .iter()
            .filter(|l| l.agent == agent)
            .map(|l| l.at)
            .collect();
        self.log
            .push(format!("heartbeat agent{agent} ({} attempts)", mine.len()));
        let hb = self
            .store
            .heartbeat(&self.agents[agent], &mine, LEASE)
            .await
            .expect("heartbeat");
        if !hb.stale.is_empty() {
            self.fail(&format!(
                "heartbeat called live attempts stale: {:?}",
                hb.stale
            ));
        }
        let until = self.h.clock.now() + LEASE as i64;
        for l in self.live.iter_mut().filter(|l| l.agent == agent) {
            l.lease_until = until;
        }
    }

    async fn advance_and_reap(&mut self, ms: i64) {
        self.h.clock.advance(ms);
        let now = self.h.clock.now();
        self.log.push(format!("advance {ms} ms and reap"));
        let reaped = self.store.reap_expired().await.expect("reap");
        let mut expected: Vec<i64> = self
            .live
            .iter()
            .filter(|l| l.lease_until < now)
            .map(|l| l.at.attempt_id)
            .collect();
        expected.sort_unstable();
        let mut lost = reaped.lost.clone();
        lost.sort_unstable();
        if lost != expected {
            self.fail(&format!("reaped {lost:?}, expected {expected:?}"));
        }
        for id in lost {
            let k = self
                .live
                .iter()
                .position(|l| l.at.attempt_id == id)
                .unwrap_or_else(|| self.fail("reaped an unknown attempt"));
            let l = self.live.remove(k);
            let outcome = Outcome::error(Reason::Lost);
            self.apply(Event::End(l.idx, l.number, outcome));
            self.ended.push(Ended {
                at: l.at,
                agent: l.agent,
                outcome,
            });
        }
    }

    async fn cancel(&mut self) {
        self.log.push("cancel".to_owned());
        let terminal = self.machine.run_state().is_terminal();
        match self.store.cancel_run(&self.run).await {
            Ok(_) if !terminal => self.apply(Event::Cancel),
            Err(StoreError::Conflict(_)) if terminal => {}
            other => self.fail(&format!("cancel gave {other:?}")),
        }
    }

    async fn step(&mut self) {
        let pick = self.rng.random_range(0..100);
        let agent = self.rng.random_range(0..self.agents.len());
        match pick {
            0..=24 => {
                let max = self.rng.random_range(1..=3);
                self.claim(agent, max).await;
            }
            25..=39 if !self.live.is_empty() => {
                let k = self.rng.random_range(0..self.live.len());
                self.start(k).await;
            }
            40..=64 if !self.live.is_empty() => {
                let k = self.rng.random_range(0..self.live.len());
                let outcome = random_outcome(&mut self.rng);
                self.report(k, outcome).await;
            }
            65..=71 if !self.ended.is_empty() => {
                let k = self.rng.random_range(0..self.ended.len());
                self.duplicate(k).await;
            }
            72..=79 if !self.live.is_empty() => {
                let k = self.rng.random_range(0..self.live.len());
                let l = self.live[k].clone();
                let outcome = random_outcome(&mut self.rng);
                if self.rng.random_bool(0.5) {
                    let at = AttemptRef {
                        fence: l.at.fence.wrapping_add(1),
                        ..l.at
                    };
                    self.stale(at, l.agent, outcome).await;
                } else {
                    let other = (l.agent + 1) % self.agents.len();
                    self.stale(l.at, other, outcome).await;
                }
            }
            80..=87 => self.heartbeat(agent).await,
            88..=97 => {
                let ms = self.rng.random_range(0..=(2 * LEASE as i64));
                self.advance_and_reap(ms).await;
            }
            98 => self.cancel().await,
            _ => {}
        }
    }

    /// Reports success for everything, claiming and waiting out back-offs, until the run
    /// ends.
    async fn finish(&mut self) {
        for _ in 0..500 {
            if self.machine.run_state().is_terminal() {
                return;
            }
            if !self.live.is_empty() {
                self.report(0, Outcome::exited(0)).await;
            } else {
                self.claim(0, 10).await;
                if self.live.is_empty() {
                    self.h.clock.advance(5_000);
                    self.log.push("advance 5000 ms".to_owned());
                }
            }
            self.check().await;
        }
        self.fail("the run did not end");
    }
}

/// Random workflows and random histories of claims, starts, reports, repeated and stale
/// reports, heartbeats, expired leases and cancels end in the same node and run states
/// in the store as in the reference machine.
pub async fn random_histories_match_the_machine(h: Harness) {
    let s = &*h.store;
    let agents = vec![
        agent(s, "replay-0", &[], &[]).await,
        agent(s, "replay-1", &[], &[]).await,
    ];
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(0xba70_0000 + seed);
        let wf = random_workflow(&mut rng, &format!("replay-{seed}"));
        s.apply_workflow(&wf, "").await.expect("apply");
        let run = s
            .create_run(&baton_api::CreateRun::latest(&wf.name))
            .await
            .expect("create")
            .run
            .id;
        let policies: Vec<RetryPolicy> = wf.nodes.iter().map(|n| n.retry.clone()).collect();
        let rules: Vec<When> = wf.nodes.iter().map(|n| n.when).collect();
        let mut r = Replay {
            store: s,
            h: &h,
            rng,
            seed,
            machine: RunMachine::with_rules(Dag::compile(&wf), policies.clone(), rules.clone()),
            run,
            agents: agents.clone(),
            live: Vec::new(),
            ended: Vec::new(),
            log: vec![format!("workflow {:?}", summary(&wf))],
        };
        r.check().await;
        for _ in 0..EVENTS {
            if r.machine.run_state().is_terminal() {
                break;
            }
            r.step().await;
            r.check().await;
        }
        r.finish().await;
        r.check().await;
        // Leftover attempts of a finished run must not leak into the next seed.
        r.advance_and_reap(3 * LEASE as i64).await;

        // Its re-run starts from the shared plan (kept successes, rules gated on them) in
        // the store and in the model alike, and must keep matching as it runs.
        let kept = kept_by_rerun(&r.machine);
        if kept.iter().all(|&k| k) {
            continue;
        }
        let again = s
            .retry_run(&r.run, None)
            .await
            .unwrap_or_else(|e| r.fail(&format!("retry failed: {e}")));
        r.log.push(format!("retry as {}", again.run.id));
        r.run = again.run.id;
        r.machine = RunMachine::rerun(Dag::compile(&wf), policies, rules, &kept);
        r.ended.clear();
        r.check().await;
        for _ in 0..EVENTS / 2 {
            if r.machine.run_state().is_terminal() {
                break;
            }
            r.step().await;
            r.check().await;
        }
        r.finish().await;
        r.check().await;
        r.advance_and_reap(3 * LEASE as i64).await;
    }
}

/// What a re-run of a finished run keeps: successes whose needs are all kept (needs have
/// lower indexes in these workflows, so one pass in index order decides).
fn kept_by_rerun(m: &RunMachine) -> Vec<bool> {
    let dag = m.dag();
    let mut kept = vec![false; dag.len()];
    for i in 0..dag.len() as NodeIdx {
        kept[i as usize] =
            m.node_state(i) == NodeState::Success && dag.needs(i).iter().all(|&p| kept[p as usize]);
    }
    kept
}

/// Each node's needs, rule, attempts, retry conditions and lost-agent retries.
type Summary = BTreeMap<String, (Vec<String>, When, u32, Vec<RetryOn>, u32)>;

fn summary(wf: &Workflow) -> Summary {
    wf.nodes
        .iter()
        .map(|n| {
            (
                n.id.clone(),
                (
                    n.needs.clone(),
                    n.when,
                    n.retry.attempts,
                    n.retry.on.clone(),
                    n.retry.lost_attempts,
                ),
            )
        })
        .collect()
}
