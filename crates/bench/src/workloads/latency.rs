//! Latency: create-run p50/p99 at concurrency 1 and 16; ready-to-start p50/p99.

use anyhow::Result;

use super::throughput::create_many;
use super::{Ctx, apply_and_warm, how, timed_run};
use crate::cluster::Cluster;
use crate::figures::{Figure, Figures};
use crate::graphs::{self, Step};
use crate::stats::percentile;
use crate::{times, wait};

pub(super) async fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let mut figs = Figures::new("latency");
    let cluster = Cluster::start(&ctx.opts, 1).await?;
    let api = &cluster.api;
    let creates = ctx.sizes.creates;
    apply_and_warm(
        api,
        "one-noop",
        graphs::independent("one-noop", 1, Step::Noop),
    )
    .await?;
    for clients in [1, ctx.sizes.clients] {
        let label = format!("create run, concurrency {clients}");
        ctx.progress(&label);
        for _ in 0..ctx.repeats {
            let lat = create_many(api, "one-noop", creates, clients).await?;
            // Let the runs drain so the next repeat starts from an idle server.
            wait::until_all_done(api, "one-noop").await?;
            for p in [50.0, 99.0] {
                figs.add(
                    format!("{label}: p{p}"),
                    "ms",
                    how::CREATE,
                    percentile(&lat, p).unwrap_or(0.0),
                );
            }
        }
    }

    let len = ctx.sizes.ready_chain;
    let name = format!("ready-chain-{len}");
    let label = format!("ready-to-start, chain-{len} true");
    ctx.progress(&label);
    apply_and_warm(api, &name, graphs::chain(&name, len, Step::True)).await?;
    for _ in 0..ctx.repeats {
        let (doc, _) = timed_run(api, &name).await?;
        let waits = times::ready_to_start(&doc, true)?;
        for p in [50.0, 99.0] {
            figs.add(
                format!("{label}: p{p}"),
                "ms",
                how::READY,
                percentile(&waits, p).unwrap_or(0.0),
            );
        }
    }
    Ok(figs.into_vec())
}
