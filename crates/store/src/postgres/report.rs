//! How attempts end — reported by their agent or reaped when their lease runs out — and
//! what that means for the node, its downstream and its run.
//!
//! Decisions come from `baton_core` (`decide_attempt_end`, `run_result`): this file only
//! applies them to the rows around the node that changed, under the run's lock.

use baton_api::AttemptRef;
use baton_core::{AttemptDecision, NodeState, Outcome, Reason, RetryOn, decide_attempt_end};

use super::attempts::{attempt_row, lock_owned};
use super::db::{Db, RowExt, corrupt};
use super::deadlines;
use crate::sqlite::attempts::AttemptRow;
use crate::{Reaped, Reported, Result, StoreError};

/// Most attempts one reaping pass ends, to keep the write short; the rest are left for
/// the next pass, which `next_expiry` (then in the past) asks for at once.
const REAP_BATCH: i64 = 500;

/// Records how an attempt ended: a compare-and-set on the attempt, its agent and fence.
pub(crate) async fn report(
    db: &mut Db<'_>,
    agent_id: &str,
    at: AttemptRef,
    outcome: Outcome,
    message: Option<&str>,
) -> Result<Reported> {
    if !outcome.state.is_terminal() {
        return Err(StoreError::Invalid(format!(
            "an attempt cannot end as {}",
            outcome.state
        )));
    }
    let attempt = lock_owned(db, agent_id, at).await?;
    // Checked before the repeat test, so the same report sent again compares equal.
    let (outcome, message) = match deadlines::timed_out(db, &attempt, outcome) {
        Some(timed_out) => (timed_out, Some(deadlines::RUN_TIMEOUT_MESSAGE)),
        None => (outcome, message),
    };
    if let Some(stored) = attempt.outcome() {
        if stored == outcome {
            return Ok(Reported {
                outcome: stored,
                duplicate: true,
                woke: false,
            });
        }
        return Err(StoreError::Stale(at.attempt_id));
    }
    let woke = end_attempt(db, &attempt, outcome, message).await?;
    Ok(Reported {
        outcome,
        duplicate: false,
        woke,
    })
}

/// Ends every attempt whose lease ran out as `error` (`lost`), retrying by policy.
///
/// Safe beside other replicas reaping at once: the runs are locked first, and an attempt
/// someone else ended (or renewed) meanwhile is left alone.
pub(crate) async fn reap(db: &mut Db<'_>) -> Result<Reaped> {
    let now = db.now;
    let due = db
        .query(
            "finding expired leases",
            "SELECT id, run_id FROM attempts \
             WHERE status IN ('pending', 'running') AND lease_until < $1 \
             ORDER BY lease_until LIMIT $2",
            &[&now, &REAP_BATCH],
        )
        .await?;
    let mut ids = Vec::with_capacity(due.len());
    let mut runs = Vec::with_capacity(due.len());
    for r in &due {
        ids.push(r.at::<i64>(0)?);
        runs.push(r.at::<String>(1)?);
    }
    let mut lost = Vec::new();
    let mut woke = false;
    if !ids.is_empty() {
        db.lock_runs(&runs).await?;
        // Locked in id order like every writer of attempts; the lease test is made again
        // on the locked rows, so one renewed or ended meanwhile drops out.
        let locked: Vec<AttemptRow> = db
            .query(
                "locking expired attempts",
                "SELECT id, node_id, run_id, number, agent_id, fence, status, reason, \
                   exit_code FROM attempts \
                 WHERE id = ANY($1) AND status IN ('pending', 'running') AND lease_until < $2 \
                 ORDER BY id FOR UPDATE",
                &[&ids, &now],
            )
            .await?
            .iter()
            .map(attempt_row)
            .collect::<Result<_>>()?;
        // Reaped in lease order, as found.
        for id in &ids {
            let Some(attempt) = locked.iter().find(|a| a.id == *id) else {
                continue;
            };
            woke |= end_attempt(
                db,
                attempt,
                Outcome::error(Reason::Lost),
                Some("the agent stopped renewing the lease"),
            )
            .await?;
            lost.push(attempt.id);
        }
    }
    let next_expiry: Option<i64> = db
        .query_one(
            "finding the next lease expiry",
            "SELECT MIN(lease_until) FROM attempts WHERE status IN ('pending', 'running')",
            &[],
        )
        .await?
        .at(0)?;
    Ok(Reaped {
        lost,
        woke,
        next_expiry,
    })
}

/// Ends a live attempt and moves its node, downstream and run on; the run's lock is held.
/// Returns true when some node became claimable right now.
pub(crate) async fn end_attempt(
    db: &mut Db<'_>,
    attempt: &AttemptRow,
    outcome: Outcome,
    message: Option<&str>,
) -> Result<bool> {
    let now = db.now;
    let node = db
        .query_opt(
            "ending an attempt",
            "WITH ended AS ( \
               UPDATE attempts SET status = $2, reason = $3, exit_code = $4, message = $5, \
                 finished_at = $6, lease_until = NULL WHERE id = $1) \
             SELECT idx, status, lost FROM nodes WHERE id = $7",
            &[
                &attempt.id,
                &outcome.state.as_str(),
                &outcome.reason.as_str(),
                &outcome.exit_code,
                &message,
                &now,
                &attempt.node_id,
            ],
        )
        .await?
        .ok_or_else(|| corrupt(format!("attempt {} has no node", attempt.id)))?;
    let idx = node.u32_at(0)?;
    let node_state: NodeState = node.state(1)?;
    let lost = node.u32_at(2)?;
    let version_id = db.lock_run(&attempt.run_id).await?.version_id.clone();
    let compiled = db.cache.version(db, &version_id).await?;
    let spec = compiled.node(idx)?;
    if !spec.resources.is_empty() {
        db.execute(
            "releasing resources",
            "DELETE FROM resource_holds WHERE attempt_id = $1",
            &[&attempt.id],
        )
        .await?;
    }
    if !matches!(node_state, NodeState::Pending | NodeState::Running) {
        // A live attempt always has a live node; keep the attempt's end and touch nothing
        // else rather than break the run's counters.
        tracing::warn!(attempt = attempt.id, node = %node_state, "live attempt of a settled node");
        db.lock_run(&attempt.run_id).await?.settle(now);
        return Ok(false);
    }

    let cancel_requested = db.lock_run(&attempt.run_id).await?.cancel_requested;
    let decision = decide_attempt_end(
        &spec.retry,
        attempt.number,
        lost,
        &outcome,
        cancel_requested,
        rand::random::<f64>(),
    );
    let lost = lost + u32::from(RetryOn::of(&outcome) == Some(RetryOn::Lost));
    let mut woke = false;
    let mut shifts: Vec<(NodeState, NodeState, i64)> = Vec::new();
    match decision {
        AttemptDecision::Retry { delay_ms } => {
            let ready_at = now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
            set_node(db, attempt.node_id, NodeState::Ready, Some(ready_at), lost).await?;
            shifts.push((node_state, NodeState::Ready, 1));
            woke = delay_ms == 0;
            if woke {
                db.mark_readied(attempt.node_id);
            } else {
                // Waiting claims must learn when it falls due.
                db.mark_work();
            }
        }
        AttemptDecision::Finish(end) => {
            set_node(db, attempt.node_id, end, None, lost).await?;
            shifts.push((node_state, end, 1));
            if end == NodeState::Success {
                let children: Vec<i64> = compiled
                    .dag
                    .children(idx)
                    .iter()
                    .map(|&c| i64::from(c))
                    .collect();
                if !children.is_empty() {
                    // Every SET expression reads the row as it was, as in SQLite.
                    let released = db
                        .query(
                            "releasing downstream nodes",
                            "UPDATE nodes SET remaining = remaining - 1, \
                               status = CASE WHEN remaining = 1 AND status = 'waiting' \
                                        THEN 'ready' ELSE status END, \
                               ready_at = CASE WHEN remaining = 1 AND status = 'waiting' \
                                          THEN $3 ELSE ready_at END \
                             WHERE run_id = $1 AND idx = ANY($2) \
                             RETURNING status, id",
                            &[&attempt.run_id, &children, &now],
                        )
                        .await?;
                    for r in &released {
                        // Only a node that was waiting on this very need can be ready
                        // here: a ready node never has needs left.
                        if r.state::<NodeState>(0)? == NodeState::Ready {
                            shifts.push((NodeState::Waiting, NodeState::Ready, 1));
                            woke = true;
                            db.mark_readied(r.at(1)?);
                        }
                    }
                }
            } else {
                let below: Vec<i64> = compiled
                    .dag
                    .descendants(idx)
                    .iter()
                    .map(|&c| i64::from(c))
                    .collect();
                if !below.is_empty() {
                    let skipped = skip_waiting(db, &attempt.run_id, &below).await?;
                    shifts.push((NodeState::Waiting, NodeState::Skipped, skipped));
                }
            }
        }
    }
    let run = db.lock_run(&attempt.run_id).await?;
    for (from, to, n) in shifts {
        run.counts.shift(from, to, n);
    }
    run.settle(now);
    Ok(woke)
}

/// Marks the waiting nodes among `below` (indexes) skipped; returns how many.
pub(crate) async fn skip_waiting(db: &Db<'_>, run_id: &str, below: &[i64]) -> Result<i64> {
    let n = db
        .execute(
            "skipping downstream nodes",
            "UPDATE nodes SET status = 'skipped' \
             WHERE run_id = $1 AND status = 'waiting' AND idx = ANY($2)",
            &[&run_id, &below],
        )
        .await?;
    Ok(n as i64)
}

async fn set_node(
    db: &Db<'_>,
    node_id: i64,
    to: NodeState,
    ready_at: Option<i64>,
    lost: u32,
) -> Result<()> {
    db.execute(
        "moving a node",
        "UPDATE nodes SET status = $2, ready_at = $3, lost = $4 WHERE id = $1",
        &[&node_id, &to.as_str(), &ready_at, &i64::from(lost)],
    )
    .await?;
    Ok(())
}
