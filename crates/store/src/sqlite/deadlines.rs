//! Deadlines kept on the store's clock: a run's `timeout` and a node's queue timeout.
//!
//! Both are found through partial indexes (`runs_by_deadline`, `nodes_queue_deadline`), so
//! a pass costs a few index probes however many runs and nodes there are. A run's deadline
//! is cleared once a pass has seen it, finished or not, so the index holds only deadlines
//! still to come and finishing a run never has to touch it.

use std::collections::HashMap;

use baton_core::{NodeState, Outcome, Reason};
use rusqlite::{OptionalExtension, params};

use super::attempts::AttemptRow;
use super::cache::requirement_of;
use super::db::{Db, SqlResult, opt_state};
use super::downstream::node_ended;
use super::run_doc::{Offer, explain, online_agents};
use super::runs::{RunRow, stop};
use crate::{Expired, Result};

/// Most runs and most nodes one pass ends, to keep the write short; a full batch asks for
/// the next pass at once.
pub(crate) const BATCH: i64 = 500;

/// The message of an attempt its run's timeout stopped.
pub(crate) const RUN_TIMEOUT_MESSAGE: &str = "the run's timeout passed";

/// When the next deadline falls due, if any.
pub(crate) fn next_due(db: &Db<'_>) -> Result<Option<i64>> {
    let run: Option<i64> = db
        .conn
        .prepare_cached("SELECT MIN(deadline) FROM runs WHERE deadline IS NOT NULL")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("finding the next run deadline")?;
    let node: Option<i64> = db
        .conn
        .prepare_cached(
            "SELECT MIN(ready_at + queue_timeout_ms) FROM nodes \
             WHERE status = 'ready' AND queue_timeout_ms IS NOT NULL",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("finding the next queue deadline")?;
    Ok(match (run, node) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Ends what is due: runs past their timeout, ready nodes past their queue timeout.
pub(crate) fn expire(db: &Db<'_>) -> Result<Expired> {
    let mut out = Expired::default();
    let (runs_full, canceling) = expire_runs(db, &mut out.runs)?;
    out.canceling = canceling;
    let nodes_full = expire_nodes(db, &mut out.nodes, &mut out.woke)?;
    out.next_due = if runs_full || nodes_full {
        Some(db.now)
    } else {
        next_due(db)?
    };
    Ok(out)
}

/// Stops runs whose deadline passed; returns whether the batch was full and whether some
/// stopped run has live attempts.
fn expire_runs(db: &Db<'_>, stopped: &mut Vec<String>) -> Result<(bool, bool)> {
    let due: Vec<String> = {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT id FROM runs WHERE deadline IS NOT NULL AND deadline <= ?1 \
                 ORDER BY deadline LIMIT ?2",
            )
            .ctx("finding runs past their timeout")?;
        let rows = stmt
            .query_map(params![db.now, BATCH], |r| r.get(0))
            .ctx("finding runs past their timeout")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx("finding runs past their timeout")?
    };
    let mut clear = db
        .conn
        .prepare_cached("UPDATE runs SET deadline = NULL WHERE id = ?1")
        .ctx("clearing a run deadline")?;
    let mut canceling = false;
    for id in &due {
        clear.execute([id]).ctx("clearing a run deadline")?;
        let mut run = RunRow::get(db, id)?;
        // A finished run, or one a user is already canceling, keeps its own ending.
        if run.status.is_terminal() || run.cancel_requested {
            continue;
        }
        run.reason = Some(Reason::Timeout);
        stop(db, &mut run)?;
        canceling |= run.counts.get(NodeState::Pending) + run.counts.get(NodeState::Running) > 0;
        stopped.push(run.id);
    }
    Ok((due.len() as i64 == BATCH, canceling))
}

/// A ready node whose queue timeout passed.
struct Overdue {
    id: i64,
    run_id: String,
    idx: u32,
    queue_timeout_ms: i64,
}

/// Ends ready nodes nobody claimed in time as `error` (`no_agent`) and moves their
/// downstream on by its trigger rules; returns whether the batch was full.
fn expire_nodes(db: &Db<'_>, ended: &mut Vec<(String, String)>, woke: &mut bool) -> Result<bool> {
    let due: Vec<Overdue> = {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT id, run_id, idx, queue_timeout_ms FROM nodes \
                 WHERE status = 'ready' AND queue_timeout_ms IS NOT NULL \
                   AND ready_at + queue_timeout_ms <= ?1 \
                 ORDER BY ready_at + queue_timeout_ms LIMIT ?2",
            )
            .ctx("finding nodes past their queue timeout")?;
        let rows = stmt
            .query_map(params![db.now, BATCH], |r| {
                Ok(Overdue {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    idx: r.get(2)?,
                    queue_timeout_ms: r.get(3)?,
                })
            })
            .ctx("finding nodes past their queue timeout")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx("finding nodes past their queue timeout")?
    };
    if due.is_empty() {
        return Ok(false);
    }
    let online: Vec<Offer> = online_agents(db)?;
    let mut runs: HashMap<String, RunRow> = HashMap::new();
    let mut end = db
        .conn
        .prepare_cached(
            "UPDATE nodes SET status = 'error', ready_at = NULL, reason = ?2, message = ?3 \
             WHERE id = ?1 AND status = 'ready'",
        )
        .ctx("ending a node nobody claimed")?;
    for node in &due {
        if !runs.contains_key(&node.run_id) {
            runs.insert(node.run_id.clone(), RunRow::get(db, &node.run_id)?);
        }
        let Some(run) = runs.get_mut(&node.run_id) else {
            continue;
        };
        let compiled = db.cache.version(db, &run.version_id)?;
        let spec = compiled.node(node.idx)?;
        let waited = limit(node.queue_timeout_ms);
        let message = match explain(&requirement_of(spec), &online) {
            Some(missing) => format!("no agent claimed it within {waited}: {missing}"),
            None => format!(
                "no agent claimed it within {waited}; agents that can run it were busy or a \
                 resource it needs was held"
            ),
        };
        let n = end
            .execute(params![node.id, Reason::NoAgent.as_str(), message])
            .ctx("ending a node nobody claimed")?;
        if n == 0 {
            continue;
        }
        run.counts.shift(NodeState::Ready, NodeState::Error, 1);
        // A node naming resources may have been first in line for one, holding it back.
        *woke |= !spec.resources.is_empty();
        node_ended(db, run, &compiled, node.idx, NodeState::Error)?;
        ended.push((run.id.clone(), spec.id.clone()));
    }
    for run in runs.values_mut() {
        run.settle(db.now);
        run.save(db)?;
    }
    Ok(due.len() as i64 == BATCH)
}

/// A configured time limit as a person would write it: `30s`, `10m`, `1h`, `1500ms`.
pub(crate) fn limit(ms: i64) -> String {
    match ms {
        ms if ms > 0 && ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms > 0 && ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms > 0 && ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// The ending to record for a report of `attempt`: an attempt its agent stopped because
/// the run was stopped by its timeout (`canceled`/`canceled`) ends `error`/`timeout`, since
/// the run could not finish. `None` when the report stands as sent.
pub(crate) fn timed_out(
    db: &Db<'_>,
    attempt: &AttemptRow,
    outcome: Outcome,
) -> Result<Option<Outcome>> {
    if outcome != Outcome::canceled(Reason::Canceled) {
        return Ok(None);
    }
    let reason: Option<Reason> = db
        .conn
        .prepare_cached("SELECT reason FROM runs WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([&attempt.run_id], |r| opt_state(r, 0))
                .optional()
        })
        .ctx("reading a run's reason")?
        .flatten();
    Ok((reason == Some(Reason::Timeout)).then(|| Outcome::error(Reason::Timeout)))
}

#[cfg(test)]
mod tests {
    use super::limit;

    #[test]
    fn limits_read_as_written() {
        assert_eq!(limit(3_600_000), "1h");
        assert_eq!(limit(5_400_000), "90m");
        assert_eq!(limit(30_000), "30s");
        assert_eq!(limit(1_500), "1500ms");
    }
}
