//! chain-40 and chain-400: sequential nodes on one agent, `noop` and `run: "true"`.

use anyhow::Result;

use super::{Ctx, apply_and_warm, how, timed_run};
use crate::cluster::Cluster;
use crate::figures::{Figure, Figures};
use crate::graphs::{self, Step};
use crate::stats;
use crate::times;

pub(super) async fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let mut figs = Figures::new("chain");
    let cluster = Cluster::start(&ctx.opts, 1).await?;
    let api = &cluster.api;
    for &len in &ctx.sizes.chains {
        for step in [Step::Noop, Step::True] {
            let name = format!("chain-{len}-{}", step.name());
            let label = format!("chain-{len} {}", step.name());
            ctx.progress(&label);
            apply_and_warm(api, &name, graphs::chain(&name, len, step)).await?;
            for _ in 0..ctx.repeats {
                let (doc, wall) = timed_run(api, &name).await?;
                let hops = times::ready_to_start(&doc, false)?;
                figs.add(format!("{label}: wall"), "ms", how::WALL, wall);
                figs.add(
                    format!("{label}: per node (wall / nodes)"),
                    "ms",
                    how::WALL_PER_NODE,
                    wall / len as f64,
                );
                figs.add(
                    format!("{label}: per-hop overhead (run doc)"),
                    "ms",
                    how::DOC_HOP,
                    stats::mean(&hops).unwrap_or(0.0),
                );
            }
        }
    }
    Ok(figs.into_vec())
}
