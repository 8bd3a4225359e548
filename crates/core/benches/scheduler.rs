//! The pure core on large graphs: parsing and validating a 10,000-node workflow, compiling
//! its DAG, driving a whole run through [`RunMachine`], and the per-attempt decision.
//!
//! `cargo bench -p baton-core --bench scheduler`. Sample sizes are small so a full pass
//! takes about half a minute; CI only compiles this (`cargo bench --no-run`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use baton_core::{
    Dag, Effect, Event, NodeIdx, NodeState, Outcome, Reason, RetryOn, RetryPolicy, RunMachine,
    Workflow, decide_attempt_end, parse_workflow,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Nodes of the large workflow: the format's limit.
const NODES: usize = 10_000;

/// A random DAG of `n` `noop` nodes: each needs one to three earlier nodes, except the
/// first few and about one in twenty. Seeded, so every run measures the same graph.
fn random_dag_yaml(n: usize) -> String {
    let mut state = 5u64;
    let mut next = move |below: usize| -> usize {
        // SplitMix64: enough for graph shapes, no dependency for it.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % below.max(1) as u64) as usize
    };
    let mut out = String::from("name: big\nnodes:\n");
    for i in 0..n {
        let _ = write!(out, "  n{i}: {{uses: noop");
        if i >= 4 && next(20) != 0 {
            let needs: Vec<String> = (0..1 + next(3)).map(|_| format!("n{}", next(i))).collect();
            let _ = write!(out, ", needs: [{}]", needs.join(", "));
        }
        out.push_str("}\n");
    }
    out
}

fn workflow() -> (String, Workflow) {
    let text = random_dag_yaml(NODES);
    let wf = parse_workflow("big.yaml", text.as_bytes()).expect("the generated workflow is valid");
    (text, wf)
}

fn success() -> Outcome {
    Outcome::exited(0)
}

/// Claims, starts and ends every node in turn until the run ends; returns the events applied.
fn drive(mut m: RunMachine, mut ready: Vec<NodeIdx>) -> usize {
    let mut events = 0;
    while let Some(i) = ready.pop() {
        for event in [Event::Claim(i), Event::Start(i, 1)] {
            m.apply(event, 0.5)
                .expect("a ready node can be claimed and started");
        }
        let fx = m
            .apply(Event::End(i, 1, success()), 0.5)
            .expect("a running node can end");
        events += 3;
        ready.extend(fx.iter().filter_map(|e| match e {
            Effect::Node(c, NodeState::Ready) => Some(*c),
            _ => None,
        }));
    }
    assert!(m.run_state().is_terminal(), "every node ran");
    events
}

fn parse(c: &mut Criterion) {
    let (text, _) = workflow();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(NODES as u64));
    g.bench_function("parse_and_validate_10k_nodes", |b| {
        b.iter(|| parse_workflow("big.yaml", black_box(text.as_bytes())))
    });
    g.finish();
}

fn compile(c: &mut Criterion) {
    let (_, wf) = workflow();
    let mut g = c.benchmark_group("dag");
    g.throughput(Throughput::Elements(NODES as u64));
    g.bench_function("compile_10k_nodes", |b| {
        b.iter(|| Dag::compile(black_box(&wf)))
    });
    g.finish();
}

fn run_machine(c: &mut Criterion) {
    let (_, wf) = workflow();
    let dag = Dag::compile(&wf);
    let policies: Vec<RetryPolicy> = wf.nodes.iter().map(|n| n.retry.clone()).collect();
    let mut g = c.benchmark_group("run_machine");
    g.throughput(Throughput::Elements(NODES as u64));
    g.bench_function("drive_10k_nodes_to_completion", |b| {
        b.iter_batched(
            || {
                let m = RunMachine::new(dag.clone(), policies.clone());
                let ready = m.ready();
                (m, ready)
            },
            |(m, ready)| drive(m, ready),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn decide(c: &mut Criterion) {
    let policy = RetryPolicy {
        attempts: 3,
        on: vec![RetryOn::Failure, RetryOn::Error, RetryOn::Timeout],
        ..RetryPolicy::default()
    };
    let cases = [
        ("success", success()),
        ("failure_retried", Outcome::exited(1)),
        ("lost", Outcome::error(Reason::Lost)),
    ];
    let mut g = c.benchmark_group("decide_attempt_end");
    for (name, outcome) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                decide_attempt_end(
                    black_box(&policy),
                    black_box(1),
                    black_box(0),
                    black_box(&outcome),
                    false,
                    0.5,
                )
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse, compile, run_machine, decide
}
criterion_main!(benches);
