//! fanout-400: one root, 400 parallel nodes, one join, on 10 agents; `noop` and `true`.

use anyhow::Result;

use super::{Ctx, apply_and_warm, how, timed_run};
use crate::cluster::Cluster;
use crate::figures::{Figure, Figures};
use crate::graphs::{self, Step};

pub(super) async fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let mut figs = Figures::new("fanout");
    let width = ctx.sizes.fanout_width;
    let agents = ctx.sizes.fanout_agents;
    let cluster = Cluster::start(&ctx.opts, agents).await?;
    let api = &cluster.api;
    for step in [Step::Noop, Step::True] {
        let name = format!("fanout-{width}-{}", step.name());
        let label = format!("fanout-{width} {}, {agents} agents", step.name());
        ctx.progress(&label);
        apply_and_warm(api, &name, graphs::fanout(&name, width, step)).await?;
        for _ in 0..ctx.repeats {
            let (_, wall) = timed_run(api, &name).await?;
            figs.add(format!("{label}: wall"), "ms", how::WALL, wall);
        }
    }
    Ok(figs.into_vec())
}
