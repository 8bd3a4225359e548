//! Footprint: idle memory of the server and of an agent; memory under the throughput load.

use std::time::Duration;

use anyhow::Result;

use super::{Ctx, how, timed_run};
use crate::cluster::Cluster;
use crate::figures::{Figure, Figures};
use crate::graphs::{self, Step};
use crate::procfs;

/// How long a fresh cluster settles before its idle memory is read.
const SETTLE: Duration = Duration::from_secs(1);

const UNDER_LOAD: &str = "VmHWM from /proc/PID/status after one run of independent noop nodes on a fresh server and one agent: peak resident memory, the run included";

pub(super) async fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let mut figs = Figures::new("footprint");
    let n = ctx.sizes.one_run_nodes;
    ctx.progress(&format!("idle, then {n} noop in one run"));
    for _ in 0..ctx.repeats {
        let (cluster, server, agent) = idle_cluster(ctx).await?;
        figs.add("idle server RSS", "MiB", how::IDLE_RSS, server);
        figs.add("idle agent RSS", "MiB", how::IDLE_RSS, agent);

        let api = &cluster.api;
        let name = format!("independent-{n}");
        api.apply(
            &format!("{name}.yaml"),
            graphs::independent(&name, n, Step::Noop),
        )
        .await?;
        timed_run(api, &name).await?;
        figs.add(
            format!("server peak RSS, {n} noop in one run"),
            "MiB",
            UNDER_LOAD,
            procfs::peak_rss_mib(cluster.server_pid())?,
        );
        let agent_pid = cluster.agent_pids().first().copied().unwrap_or_default();
        figs.add(
            format!("agent peak RSS, {n} noop in one run"),
            "MiB",
            UNDER_LOAD,
            procfs::peak_rss_mib(agent_pid)?,
        );
    }
    Ok(figs.into_vec())
}

/// A fresh server and one agent, left idle for [`SETTLE`]; their resident memory (MiB).
async fn idle_cluster(ctx: &Ctx) -> Result<(Cluster, f64, f64)> {
    let mut cluster = Cluster::start(&ctx.opts, 1).await?;
    tokio::time::sleep(SETTLE).await;
    cluster.check_alive()?;
    let server = procfs::rss_mib(cluster.server_pid())?;
    let agent = cluster
        .agent_pids()
        .iter()
        .map(|&p| procfs::rss_mib(p))
        .sum::<Result<f64>>()?;
    Ok((cluster, server, agent))
}

/// Idle resident memory (MiB) of a fresh server and of its one agent.
pub(super) async fn idle_rss(ctx: &Ctx) -> Result<(f64, f64)> {
    let (_cluster, server, agent) = idle_cluster(ctx).await?;
    Ok((server, agent))
}
