//! big-dag: a 10,000-node random DAG: validate, apply and complete; time and peak memory.

use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{Ctx, how, ms, timed_run};
use crate::cluster::Cluster;
use crate::figures::{Figure, Figures};
use crate::graphs;
use crate::procfs;

/// Agents that run the DAG.
const AGENTS: usize = 2;
/// The graph's seed: every run of the harness measures the same graph.
const SEED: u64 = 5;

const VALIDATE: &str = "wall time of the `baton validate FILE` process (process start included)";
const PEAK: &str = "VmHWM from /proc/PID/status, reset before each repeat (clear_refs): peak resident memory while validating, applying and running; agents: the largest";
const AFTER: &str = "VmRSS from /proc/PID/status once the run ended: what the server keeps (this repeat's and earlier repeats' versions included)";
const APPLY: &str = "client round trip of POST /api/v1/workflows: the server parses, validates and stores a new version";

pub(super) async fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let mut figs = Figures::new("big-dag");
    let n = ctx.sizes.big_dag;
    let label = format!("dag-{n}");
    ctx.progress(&format!("{label}, {AGENTS} agents"));
    let cluster = Cluster::start(&ctx.opts, AGENTS).await?;
    let api = &cluster.api;
    for r in 0..ctx.repeats {
        // A new name each time, so every apply stores a new workflow rather than finding
        // the same definition already there.
        let name = format!("dag-{n}-{r}");
        let source = graphs::random_dag(&name, n, SEED);
        let file = cluster.scratch().join(format!("{name}.yaml"));
        std::fs::write(&file, &source).with_context(|| format!("writing {}", file.display()))?;

        for pid in std::iter::once(cluster.server_pid()).chain(cluster.agent_pids()) {
            procfs::reset_peak_rss(pid)?;
        }

        let t0 = Instant::now();
        let out = tokio::process::Command::from(cluster.baton())
            .arg("validate")
            .arg(&file)
            .output()
            .await
            .context("running baton validate")?;
        let validate = ms(t0.elapsed());
        if !out.status.success() {
            bail!(
                "baton validate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        figs.add(format!("{label}: validate"), "ms", VALIDATE, validate);

        let t0 = Instant::now();
        api.apply(&format!("{name}.yaml"), source).await?;
        figs.add(format!("{label}: apply"), "ms", APPLY, ms(t0.elapsed()));

        let (_, wall) = timed_run(api, &name).await?;
        figs.add(format!("{label}: run to completion"), "ms", how::WALL, wall);

        figs.add(
            format!("{label}: server peak RSS"),
            "MiB",
            PEAK,
            procfs::peak_rss_mib(cluster.server_pid())?,
        );
        figs.add(
            format!("{label}: server RSS after the run"),
            "MiB",
            AFTER,
            procfs::rss_mib(cluster.server_pid())?,
        );
        let agents = cluster
            .agent_pids()
            .iter()
            .map(|&p| procfs::peak_rss_mib(p))
            .collect::<Result<Vec<f64>>>()?;
        figs.add(
            format!("{label}: agent peak RSS"),
            "MiB",
            PEAK,
            agents.into_iter().fold(0.0, f64::max),
        );
    }
    Ok(figs.into_vec())
}
