//! Throughput: 10,000 independent `noop` nodes as one run, and 2,000 one-node runs created
//! by 16 concurrent clients; nodes per second and CPU per 1,000 nodes.

use std::time::Instant;

use anyhow::Result;

use super::{Ctx, apply_and_warm, cpu_of, how, ms, timed_run};
use crate::api::Api;
use crate::cluster::Cluster;
use crate::figures::{Figure, Figures};
use crate::graphs::{self, Step};
use crate::wait;

/// Agents of the throughput cluster, as in W1.
const AGENTS: usize = 2;

pub(super) async fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let mut figs = Figures::new("throughput");
    let cluster = Cluster::start(&ctx.opts, AGENTS).await?;
    let api = &cluster.api;

    let n = ctx.sizes.one_run_nodes;
    let name = format!("independent-{n}");
    let label = format!("{n} noop in one run, {AGENTS} agents");
    ctx.progress(&label);
    apply_and_warm(api, &name, graphs::independent(&name, n, Step::Noop)).await?;
    for _ in 0..ctx.repeats {
        let before = Cpu::of(&cluster)?;
        let (_, wall) = timed_run(api, &name).await?;
        let used = Cpu::of(&cluster)?.minus(&before);
        add_rates(&mut figs, &label, n, wall, &used);
    }

    let runs = ctx.sizes.many_runs;
    let clients = ctx.sizes.clients;
    let label = format!("{runs} one-node noop runs, {clients} clients");
    ctx.progress(&label);
    apply_and_warm(
        api,
        "one-noop",
        graphs::independent("one-noop", 1, Step::Noop),
    )
    .await?;
    for _ in 0..ctx.repeats {
        let before = Cpu::of(&cluster)?;
        let t0 = Instant::now();
        create_many(api, "one-noop", runs, clients).await?;
        let seen = wait::until_all_done(api, "one-noop").await?;
        let wall = ms(seen - t0);
        let used = Cpu::of(&cluster)?.minus(&before);
        add_rates(&mut figs, &label, runs, wall, &used);
    }
    Ok(figs.into_vec())
}

fn add_rates(figs: &mut Figures, label: &str, nodes: usize, wall_ms: f64, cpu: &Cpu) {
    let thousands = nodes as f64 / 1000.0;
    figs.add(format!("{label}: wall"), "ms", how::WALL, wall_ms);
    figs.add(
        format!("{label}: throughput"),
        "nodes/s",
        how::RATE,
        nodes as f64 / (wall_ms / 1000.0),
    );
    figs.add(
        format!("{label}: server CPU"),
        "CPU s / 1k nodes",
        how::CPU,
        cpu.server / thousands,
    );
    figs.add(
        format!("{label}: agents CPU"),
        "CPU s / 1k nodes",
        how::CPU,
        cpu.agents / thousands,
    );
}

/// CPU seconds used so far by the server and by all agents.
struct Cpu {
    server: f64,
    agents: f64,
}

impl Cpu {
    fn of(cluster: &Cluster) -> Result<Cpu> {
        Ok(Cpu {
            server: cpu_of(&[cluster.server_pid()])?,
            agents: cpu_of(&cluster.agent_pids())?,
        })
    }

    fn minus(&self, before: &Cpu) -> Cpu {
        Cpu {
            server: self.server - before.server,
            agents: self.agents - before.agents,
        }
    }
}

/// Creates `total` runs of `workflow` from `clients` concurrent clients, each sending its
/// next request as soon as its last one was answered; returns each request's latency (ms).
pub(super) async fn create_many(
    api: &Api,
    workflow: &str,
    total: usize,
    clients: usize,
) -> Result<Vec<f64>> {
    let clients = clients.max(1);
    let per_client = |c: usize| total / clients + usize::from(c < total % clients);
    let tasks = (0..clients).map(|c| async move {
        let mut lat = Vec::with_capacity(per_client(c));
        for _ in 0..per_client(c) {
            let t0 = Instant::now();
            api.create_run(workflow).await?;
            lat.push(ms(t0.elapsed()));
        }
        anyhow::Ok(lat)
    });
    let all = futures::future::try_join_all(tasks).await?;
    Ok(all.into_iter().flatten().collect())
}
