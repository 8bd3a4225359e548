//! The workloads: the engine's own (issue 5) and the four the peers were measured on, each
//! on its own fresh cluster.

mod big_dag;
mod chain;
mod fanout;
mod footprint;
mod latency;
mod peers;
mod throughput;

use std::time::Instant;

use anyhow::{Context, Result};
use baton_api::RunDoc;
use clap::ValueEnum;

use crate::api::Api;
use crate::cluster::Options;
use crate::figures::Figure;
use crate::wait;

/// A workload, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum Workload {
    /// Chains of 40 and 400 nodes, one agent, `noop` and `run: "true"`: wall time and
    /// per-hop overhead
    Chain,
    /// One root, 400 parallel nodes, one join; 10 agents; `noop` and `true`
    Fanout,
    /// 10,000 independent `noop` nodes in one run, and 2,000 one-node runs from 16 clients:
    /// nodes per second and CPU per 1,000 nodes
    Throughput,
    /// Create-run latency at concurrency 1 and 16; ready-to-start latency
    Latency,
    /// A 10,000-node random DAG: validate, apply, complete; peak memory
    BigDag,
    /// W1–W4, as Celery, Prefect, Airflow and apalis were measured on: 1,000 independent
    /// nodes on 2 agents, chain a→b→c, 1 → 100 → 1, idle memory
    Peers,
    /// Idle memory of the server and an agent; memory under the throughput load
    Footprint,
}

impl Workload {
    /// The command-line name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Chain => "chain",
            Workload::Fanout => "fanout",
            Workload::Throughput => "throughput",
            Workload::Latency => "latency",
            Workload::BigDag => "big-dag",
            Workload::Peers => "peers",
            Workload::Footprint => "footprint",
        }
    }

    /// Every workload, in the order they run.
    pub(crate) const ALL: [Workload; 7] = [
        Workload::Chain,
        Workload::Fanout,
        Workload::Throughput,
        Workload::Latency,
        Workload::BigDag,
        Workload::Peers,
        Workload::Footprint,
    ];

    /// Runs the workload `ctx.repeats` times and returns its figures.
    pub(crate) async fn run(self, ctx: &Ctx) -> Result<Vec<Figure>> {
        let figures = match self {
            Workload::Chain => chain::run(ctx).await,
            Workload::Fanout => fanout::run(ctx).await,
            Workload::Throughput => throughput::run(ctx).await,
            Workload::Latency => latency::run(ctx).await,
            Workload::BigDag => big_dag::run(ctx).await,
            Workload::Peers => peers::run(ctx).await,
            Workload::Footprint => footprint::run(ctx).await,
        };
        figures.with_context(|| format!("workload {}", self.name()))
    }
}

/// Sizes of the workloads: the issue's, or small ones for `--quick`.
#[derive(Debug, Clone)]
pub(crate) struct Sizes {
    pub(crate) chains: Vec<usize>,
    pub(crate) fanout_width: usize,
    pub(crate) fanout_agents: usize,
    pub(crate) one_run_nodes: usize,
    pub(crate) many_runs: usize,
    pub(crate) clients: usize,
    pub(crate) creates: usize,
    pub(crate) ready_chain: usize,
    pub(crate) big_dag: usize,
    pub(crate) w1_nodes: usize,
    pub(crate) w3_width: usize,
}

impl Sizes {
    /// The sizes of issue 5 and of the peers' workloads.
    pub(crate) fn full() -> Sizes {
        Sizes {
            chains: vec![40, 400],
            fanout_width: 400,
            fanout_agents: 10,
            one_run_nodes: 10_000,
            many_runs: 2_000,
            clients: 16,
            creates: 400,
            ready_chain: 100,
            big_dag: 10_000,
            w1_nodes: 1_000,
            w3_width: 100,
        }
    }

    /// Small enough to run every workload in well under a minute in a debug build.
    pub(crate) fn quick() -> Sizes {
        Sizes {
            chains: vec![10, 40],
            fanout_width: 40,
            fanout_agents: 3,
            one_run_nodes: 500,
            many_runs: 100,
            clients: 16,
            creates: 48,
            ready_chain: 10,
            big_dag: 500,
            w1_nodes: 200,
            w3_width: 100,
        }
    }
}

/// What every workload is run with.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) opts: Options,
    pub(crate) repeats: usize,
    pub(crate) sizes: Sizes,
}

impl Ctx {
    /// A progress line on stderr (stdout is the report).
    pub(crate) fn progress(&self, line: &str) {
        eprintln!("  {line}");
    }
}

/// One run, timed by the client: from just before `POST /runs` to the moment its end is
/// seen. Returns the final document and the wall time in milliseconds.
pub(crate) async fn timed_run(api: &Api, workflow: &str) -> Result<(RunDoc, f64)> {
    let t0 = Instant::now();
    let created = api.create_run(workflow).await?;
    let (doc, seen) = wait::until_done(api, &created).await?;
    Ok((doc, ms(seen - t0)))
}

/// Applies a workflow and runs it once, unmeasured, so first-use costs (compiling the
/// version, warming caches and connections) stay out of the figures.
pub(crate) async fn apply_and_warm(api: &Api, workflow: &str, source: String) -> Result<()> {
    api.apply(&format!("{workflow}.yaml"), source).await?;
    timed_run(api, workflow).await?;
    Ok(())
}

/// A duration in milliseconds.
pub(crate) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The summed CPU seconds of some processes.
pub(crate) fn cpu_of(pids: &[u32]) -> Result<f64> {
    pids.iter().map(|&p| crate::procfs::cpu_seconds(p)).sum()
}

/// Methods, as printed under the table.
pub(crate) mod how {
    /// Client wall time.
    pub(crate) const WALL: &str = "client wall time: from sending POST /runs to seeing the run end (held GET /runs/{id}?wait_after for runs of up to 10 nodes, else the run summary read every 2 ms)";
    /// Wall divided by nodes.
    pub(crate) const WALL_PER_NODE: &str = "client wall time / nodes: sub-millisecond resolution; the whole per-node cost, which for noop is all engine overhead";
    /// Hop gaps from the run document.
    pub(crate) const DOC_HOP: &str = "run document, 1 ms resolution: mean over hops of (next node's started_at, or claimed_at for noop, which sends no start) minus (previous node's finished_at)";
    /// Ready-to-start from the run document.
    pub(crate) const READY: &str = "run document, 1 ms resolution: a node's started_at minus when it became ready (its need's finished_at, or the run's created_at for the root); percentile over the run's nodes";
    /// Nodes per second.
    pub(crate) const RATE: &str = "nodes / client wall time";
    /// CPU per 1,000 nodes.
    pub(crate) const CPU: &str = "utime+stime from /proc/PID/stat (10 ms ticks) over the run, per 1,000 nodes; agents summed";
    /// Idle memory.
    pub(crate) const IDLE_RSS: &str = "VmRSS from /proc/PID/status of a fresh cluster 1 s after every agent is online, before any run";
    /// Create latency.
    pub(crate) const CREATE: &str = "client round trip of POST /runs (one-node noop workflow, 1 agent running the runs); percentile over the repeat's requests";
}
