//! W1–W4: the workloads Celery, Prefect, Airflow and apalis were measured with on a machine
//! like ours, so that Baton's figures sit beside theirs.

use anyhow::Result;

use super::footprint::idle_rss;
use super::{Ctx, apply_and_warm, how, timed_run};
use crate::cluster::Cluster;
use crate::figures::{Figure, Figures};
use crate::graphs::{self, Step};

/// The peers ran W1–W3 on two workers.
const AGENTS: usize = 2;

const W4: &str = "VmRSS from /proc/PID/status of a fresh server plus one agent, 1 s after the agent is online, before any run (the peers' \"in all\")";

pub(super) async fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let mut figs = Figures::new("peers");
    let cluster = Cluster::start(&ctx.opts, AGENTS).await?;
    let api = &cluster.api;

    let n = ctx.sizes.w1_nodes;
    let w3 = ctx.sizes.w3_width;
    let cases = [
        (
            format!("W1: {n} independent noop, {AGENTS} agents"),
            "w1",
            graphs::independent("w1", n, Step::Noop),
            Some(n),
        ),
        (
            "W2: chain a→b→c noop, end to end".to_owned(),
            "w2",
            graphs::chain("w2", 3, Step::Noop),
            None,
        ),
        (
            format!("W3: 1 → {w3} → 1 noop"),
            "w3",
            graphs::fanout("w3", w3, Step::Noop),
            None,
        ),
    ];
    for (label, name, source, rate) in cases {
        ctx.progress(&label);
        apply_and_warm(api, name, source).await?;
        for _ in 0..ctx.repeats {
            let (_, wall) = timed_run(api, name).await?;
            figs.add(format!("{label}: wall"), "ms", how::WALL, wall);
            if let Some(nodes) = rate {
                figs.add(
                    format!("{label}: throughput"),
                    "nodes/s",
                    how::RATE,
                    nodes as f64 / (wall / 1000.0),
                );
            }
        }
    }
    drop(cluster);

    ctx.progress("W4: idle memory");
    for _ in 0..ctx.repeats {
        let (server, agent) = idle_rss(ctx).await?;
        figs.add(
            "W4: idle memory, server + 1 agent",
            "MiB",
            W4,
            server + agent,
        );
    }
    Ok(figs.into_vec())
}
