//! What a node's end does to the nodes below it, under their trigger rules (`when`).
//!
//! As in SQLite (`sqlite::downstream`), each child keeps counters of its needs and
//! [`gate`] decides the waiting ones; here a whole level of the walk costs two statements:
//! one moves the children the rules decided, one counts the ends of the skipped ones for
//! their own children (aggregated per child, since an `UPDATE … FROM` changes a row once).
//! Node rows are only touched under their run's lock, which the caller holds.

use std::collections::BTreeMap;

use baton_core::{Gate, NodeState, counts_as};

use crate::sqlite::downstream::decide;
use tokio_postgres::Row;

use super::db::{Db, RowExt};
use crate::Result;
use crate::sqlite::cache::Compiled;

/// Counts the ends of skipped nodes for their children: `$2` child indexes, `$3` how many
/// of their needs ended, `$4` and `$5` how many of those count as bad and failed.
const COUNT_ENDS: &str = "UPDATE nodes SET remaining = nodes.remaining - e.n, \
       needs_bad = nodes.needs_bad + e.bad, needs_failed = nodes.needs_failed + e.failed \
     FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS e(idx, n, bad, failed) \
     WHERE nodes.run_id = $1 AND nodes.idx = e.idx \
     RETURNING nodes.idx, nodes.id, nodes.status, nodes.remaining, nodes.needs_bad, \
       nodes.needs_failed";

/// Moves nodes the rules decided: `$1` row ids, `$2` their new states, `$3` now.
const MOVE: &str = "UPDATE nodes SET status = m.status, \
       ready_at = CASE WHEN m.status = 'ready' THEN $3::bigint END \
     FROM unnest($1::bigint[], $2::text[]) AS m(id, status) \
     WHERE nodes.id = m.id";

/// Node `idx` of run `run_id` just ended in `state` (its own row and the run's counters
/// already say so): counts the end for each child, then [`settle`]s them. The run's lock
/// must be held. Returns true when some node became claimable right now.
pub(crate) async fn node_ended(
    db: &mut Db<'_>,
    run_id: &str,
    compiled: &Compiled,
    idx: u32,
    state: NodeState,
) -> Result<bool> {
    let children = compiled.dag.children(idx);
    if children.is_empty() {
        return Ok(false);
    }
    let (bad, failed) = counts_as(state);
    let idxs: Vec<i64> = children.iter().map(|&c| i64::from(c)).collect();
    let n = vec![1i64; idxs.len()];
    let bads = vec![i64::from(bad); idxs.len()];
    let fails = vec![i64::from(failed); idxs.len()];
    let counted = db
        .query(
            "counting a need's end",
            COUNT_ENDS,
            &[&run_id, &idxs, &n, &bads, &fails],
        )
        .await?;
    settle(db, run_id, compiled, counted).await
}

/// Children of a node that just ended, counted already by the caller's statement (rows of
/// `idx, id, status, remaining, needs_bad, needs_failed`): readies or skips the waiting ones their rules now decide, carries skips on
/// down, and moves the run's counters. The run's lock must be held. Returns true when
/// some node became claimable right now (each is also noted with [`Db::mark_readied`]).
pub(crate) async fn settle(
    db: &mut Db<'_>,
    run_id: &str,
    compiled: &Compiled,
    mut counted: Vec<Row>,
) -> Result<bool> {
    let now = db.now;
    let mut woke = false;
    loop {
        let mut ids: Vec<i64> = Vec::new();
        let mut moves: Vec<&'static str> = Vec::new();
        let mut skipped: Vec<u32> = Vec::new();
        for r in &counted {
            if r.state::<NodeState>(2)? != NodeState::Waiting {
                continue;
            }
            let idx = r.u32_at(0)?;
            let to = match decide(compiled, idx, [r.at(3)?, r.at(4)?, r.at(5)?])? {
                Gate::Wait => continue,
                Gate::Ready => NodeState::Ready,
                Gate::Skip => NodeState::Skipped,
            };
            let id: i64 = r.at(1)?;
            ids.push(id);
            moves.push(to.as_str());
            if to == NodeState::Ready {
                woke = true;
                db.mark_readied(id);
            } else {
                skipped.push(idx);
            }
        }
        if ids.is_empty() {
            return Ok(woke);
        }
        db.execute(
            "moving nodes their needs decided",
            MOVE,
            &[&ids, &moves, &now],
        )
        .await?;
        let run = db.lock_run(run_id).await?;
        let readied = (ids.len() - skipped.len()) as i64;
        run.counts
            .shift(NodeState::Waiting, NodeState::Ready, readied);
        run.counts
            .shift(NodeState::Waiting, NodeState::Skipped, skipped.len() as i64);
        if skipped.is_empty() {
            return Ok(woke);
        }
        let mut ends: BTreeMap<u32, i64> = BTreeMap::new();
        for &s in &skipped {
            for &c in compiled.dag.children(s) {
                *ends.entry(c).or_default() += 1;
            }
        }
        if ends.is_empty() {
            return Ok(woke);
        }
        let (bad, failed) = counts_as(NodeState::Skipped);
        let idxs: Vec<i64> = ends.keys().map(|&c| i64::from(c)).collect();
        let n: Vec<i64> = ends.values().copied().collect();
        let bads: Vec<i64> = n.iter().map(|&k| k * i64::from(bad)).collect();
        let fails: Vec<i64> = n.iter().map(|&k| k * i64::from(failed)).collect();
        counted = db
            .query(
                "counting a need's end",
                COUNT_ENDS,
                &[&run_id, &idxs, &n, &bads, &fails],
            )
            .await?;
    }
}
