//! Deadlines kept on the database's clock: a run's `timeout` and a node's queue timeout.
//!
//! Found through the same partial indexes as in SQLite. Several replicas may run a pass
//! at once: each locks the runs concerned (in id order) and tests every deadline again
//! under the lock, so a deadline is enforced once.

use std::collections::HashMap;

use baton_core::{NodeState, Outcome, Reason};

use super::db::{Db, RowExt};
use super::downstream::node_ended;
use super::run_doc::online_agents;
use super::runs::stop;
use crate::sqlite::attempts::AttemptRow;
use crate::sqlite::cache::requirement_of;
use crate::sqlite::deadlines::{BATCH, limit};
use crate::sqlite::run_doc::{Offer, explain};
use crate::{Expired, Result};

pub(crate) use crate::sqlite::deadlines::RUN_TIMEOUT_MESSAGE;

/// When the next deadline falls due, if any, and the time now, in one round trip.
pub(crate) async fn next_due(db: &Db<'_>) -> Result<Option<i64>> {
    let row = db
        .query_one(
            "finding the next deadline",
            "SELECT (SELECT MIN(deadline) FROM runs WHERE deadline IS NOT NULL), \
               (SELECT MIN(ready_at + queue_timeout_ms) FROM nodes \
                WHERE status = 'ready' AND queue_timeout_ms IS NOT NULL)",
            &[],
        )
        .await?;
    let (run, node): (Option<i64>, Option<i64>) = (row.at(0)?, row.at(1)?);
    Ok(match (run, node) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Ends what is due: runs past their timeout, ready nodes past their queue timeout.
pub(crate) async fn expire(db: &mut Db<'_>) -> Result<Expired> {
    let now = db.now;
    let due_runs: Vec<String> = db
        .query(
            "finding runs past their timeout",
            "SELECT id FROM runs WHERE deadline IS NOT NULL AND deadline <= $1 \
             ORDER BY deadline LIMIT $2",
            &[&now, &BATCH],
        )
        .await?
        .iter()
        .map(|r| r.at(0))
        .collect::<Result<_>>()?;
    let due_nodes: Vec<Overdue> = db
        .query(
            "finding nodes past their queue timeout",
            "SELECT id, run_id, idx, queue_timeout_ms FROM nodes \
             WHERE status = 'ready' AND queue_timeout_ms IS NOT NULL \
               AND ready_at + queue_timeout_ms <= $1 \
             ORDER BY ready_at + queue_timeout_ms LIMIT $2",
            &[&now, &BATCH],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Overdue {
                id: r.at(0)?,
                run_id: r.at(1)?,
                idx: r.u32_at(2)?,
                queue_timeout_ms: r.at(3)?,
            })
        })
        .collect::<Result<_>>()?;
    let mut all: Vec<String> = due_runs.clone();
    all.extend(due_nodes.iter().map(|n| n.run_id.clone()));
    db.lock_runs(&all).await?;

    let mut out = Expired::default();
    out.canceling = expire_runs(db, &due_runs, &mut out.runs).await?;
    expire_nodes(db, &due_nodes, &mut out.nodes, &mut out.woke).await?;
    let full = due_runs.len() as i64 == BATCH || due_nodes.len() as i64 == BATCH;
    out.next_due = if full { Some(now) } else { next_due(db).await? };
    Ok(out)
}

/// Stops runs whose deadline passed; returns whether some stopped run has live attempts.
async fn expire_runs(db: &mut Db<'_>, due: &[String], stopped: &mut Vec<String>) -> Result<bool> {
    let now = db.now;
    let mut canceling = false;
    for id in due {
        // Tested again under the run's lock: another replica may have seen it first.
        let cleared = db
            .execute(
                "clearing a run deadline",
                "UPDATE runs SET deadline = NULL \
                 WHERE id = $1 AND deadline IS NOT NULL AND deadline <= $2",
                &[id, &now],
            )
            .await?;
        if cleared == 0 {
            continue;
        }
        let run = db.lock_run(id).await?;
        // A finished run, or one a user is already canceling, keeps its own ending.
        if run.status.is_terminal() || run.cancel_requested {
            continue;
        }
        run.reason = Some(Reason::Timeout);
        stop(db, id).await?;
        let run = db.lock_run(id).await?;
        canceling |= run.counts.get(NodeState::Pending) + run.counts.get(NodeState::Running) > 0;
        stopped.push(id.clone());
    }
    Ok(canceling)
}

/// A ready node whose queue timeout passed.
struct Overdue {
    id: i64,
    run_id: String,
    idx: u32,
    queue_timeout_ms: i64,
}

/// Ends ready nodes nobody claimed in time as `error` (`no_agent`) and moves their
/// downstream on by its trigger rules.
async fn expire_nodes(
    db: &mut Db<'_>,
    due: &[Overdue],
    ended: &mut Vec<(String, String)>,
    woke: &mut bool,
) -> Result<()> {
    if due.is_empty() {
        return Ok(());
    }
    let now = db.now;
    let online: Vec<Offer> = online_agents(db).await?;
    let mut versions = HashMap::new();
    for node in due {
        let version_id = db.lock_run(&node.run_id).await?.version_id.clone();
        let compiled = match versions.get(&version_id) {
            Some(c) => std::sync::Arc::clone(c),
            None => {
                let c = db.cache.version(db, &version_id).await?;
                versions.insert(version_id, std::sync::Arc::clone(&c));
                c
            }
        };
        let spec = compiled.node(node.idx)?;
        let waited = limit(node.queue_timeout_ms);
        let message = match explain(&requirement_of(spec), &online) {
            Some(missing) => format!("no agent claimed it within {waited}: {missing}"),
            None => format!(
                "no agent claimed it within {waited}; agents that can run it were busy or a \
                 resource it needs was held"
            ),
        };
        // Tested again under the run's lock: the node may have been claimed (and made
        // ready again by a retry) since it was found.
        let n = db
            .execute(
                "ending a node nobody claimed",
                "UPDATE nodes SET status = 'error', ready_at = NULL, reason = $2, message = $3 \
                 WHERE id = $1 AND status = 'ready' AND ready_at + queue_timeout_ms <= $4",
                &[&node.id, &Reason::NoAgent.as_str(), &message, &now],
            )
            .await?;
        if n == 0 {
            continue;
        }
        db.lock_run(&node.run_id)
            .await?
            .counts
            .shift(NodeState::Ready, NodeState::Error, 1);
        if !spec.resources.is_empty() {
            // It may have been first in line for a resource, holding it back: agents on
            // every replica look again.
            *woke = true;
            db.mark_work();
        }
        *woke |= node_ended(db, &node.run_id, &compiled, node.idx, NodeState::Error).await?;
        ended.push((node.run_id.clone(), spec.id.clone()));
    }
    settle_all(db, due).await
}

/// Settles each run a node of `due` belongs to, once.
async fn settle_all(db: &mut Db<'_>, due: &[Overdue]) -> Result<()> {
    let now = db.now;
    let mut seen: Vec<&str> = Vec::new();
    for node in due {
        if seen.contains(&node.run_id.as_str()) {
            continue;
        }
        seen.push(&node.run_id);
        db.lock_run(&node.run_id).await?.settle(now);
    }
    Ok(())
}

/// The ending to record for a report of `attempt`, whose run's lock is held: an attempt
/// its agent stopped because the run was stopped by its timeout (`canceled`/`canceled`)
/// ends `error`/`timeout`, since the run could not finish. `None` when the report stands
/// as sent.
pub(crate) fn timed_out(db: &Db<'_>, attempt: &AttemptRow, outcome: Outcome) -> Option<Outcome> {
    if outcome != Outcome::canceled(Reason::Canceled) {
        return None;
    }
    let reason = db.held(&attempt.run_id).and_then(|r| r.reason);
    (reason == Some(Reason::Timeout)).then(|| Outcome::error(Reason::Timeout))
}
