//! What a node's end does to the nodes below it, under their trigger rules (`when`).
//!
//! Each child keeps counters of its needs (`remaining`, `needs_bad`, `needs_failed`); an
//! end updates them with one keyed `UPDATE … RETURNING` per edge (which also readies an
//! `all_success` or `all_done` child whose last need just ended), and [`gate`] decides
//! whether a waiting child becomes ready, is skipped (and ends in turn for its own
//! children) or keeps waiting. The cost is the edges touched, whatever the rule.

use baton_core::{Gate, NodeState, Upstream, When, counts_as, gate};
use rusqlite::params;

use super::cache::Compiled;
use super::db::{Db, SqlResult, state};
use super::runs::RunRow;
use crate::Result;

/// Node `idx` of `run` just ended in `end` (its own row and the run's counters already
/// say so): counts the end for each child, readies or skips the waiting ones their rules
/// now decide, and carries skips on down. Nodes it makes claimable are noted with
/// [`Db::mark_readied`].
pub(crate) fn node_ended(
    db: &Db<'_>,
    run: &mut RunRow,
    compiled: &Compiled,
    idx: u32,
    end: NodeState,
) -> Result<()> {
    let mut count = db
        .conn
        .prepare_cached(
            "UPDATE nodes SET remaining = remaining - 1, needs_bad = needs_bad + ?3, \
               needs_failed = needs_failed + ?4, \
               status = CASE WHEN ?5 AND status = 'waiting' AND remaining = 1 \
                          AND (NOT ?6 OR needs_bad + ?3 = 0) THEN 'ready' ELSE status END, \
               ready_at = CASE WHEN ?5 AND status = 'waiting' AND remaining = 1 \
                            AND (NOT ?6 OR needs_bad + ?3 = 0) THEN ?7 ELSE ready_at END \
             WHERE run_id = ?1 AND idx = ?2 \
             RETURNING id, status, remaining, needs_bad, needs_failed",
        )
        .ctx("counting a need's end")?;
    let mut ended = vec![(idx, end)];
    while let Some((p, s)) = ended.pop() {
        let (bad, failed) = counts_as(s);
        for &child in compiled.dag.children(p) {
            let when = compiled.node(child)?.when;
            // `all_success` and `all_done` become ready exactly when their last need ends
            // (`all_success`: with none bad): the same statement moves them, so a chain hop
            // costs one write. `gate` below still decides everything else, and agrees.
            let on_last = matches!(when, When::AllSuccess | When::AllDone);
            let no_bad = when == When::AllSuccess;
            let (id, now_state, counters): (i64, NodeState, [i64; 3]) = count
                .query_row(
                    params![run.id, child, bad, failed, on_last, no_bad, db.now],
                    |r| Ok((r.get(0)?, state(r, 1)?, [r.get(2)?, r.get(3)?, r.get(4)?])),
                )
                .ctx("counting a need's end")?;
            if on_last && now_state == NodeState::Ready && counters[0] == 0 {
                // Moved by the statement itself: under these rules a node with a need left
                // is never ready, so it was waiting until now.
                debug_assert_eq!(decide(compiled, child, counters)?, Gate::Ready);
                run.counts.shift(NodeState::Waiting, NodeState::Ready, 1);
                db.mark_readied(id);
                continue;
            }
            // Children that no longer wait only keep count.
            if now_state != NodeState::Waiting {
                continue;
            }
            let to = match decide(compiled, child, counters)? {
                Gate::Wait => continue,
                Gate::Ready => NodeState::Ready,
                Gate::Skip => NodeState::Skipped,
            };
            let ready_at = (to == NodeState::Ready).then_some(db.now);
            db.conn
                .prepare_cached("UPDATE nodes SET status = ?2, ready_at = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, to.as_str(), ready_at]))
                .ctx("moving a node its needs decided")?;
            run.counts.shift(NodeState::Waiting, to, 1);
            if to == NodeState::Ready {
                db.mark_readied(id);
            } else {
                ended.push((child, to));
            }
        }
    }
    Ok(())
}

/// What node `idx` does now under its trigger rule, from its stored need counters
/// `[remaining, needs_bad, needs_failed]`. Shared by both backends, for need ends and for
/// admitting queued runs.
pub(crate) fn decide(compiled: &Compiled, idx: u32, counters: [i64; 3]) -> Result<Gate> {
    // A negative counter (which the store never writes) reads as 0.
    let counter = |v: i64| u32::try_from(v).unwrap_or(0);
    let up = Upstream {
        needs: u32::try_from(compiled.dag.needs(idx).len()).unwrap_or(u32::MAX),
        remaining: counter(counters[0]),
        bad: counter(counters[1]),
        failed: counter(counters[2]),
    };
    Ok(gate(compiled.node(idx)?.when, up))
}
