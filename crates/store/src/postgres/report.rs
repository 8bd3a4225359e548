//! How attempts end — reported by their agent or reaped when their lease runs out — and
//! what that means for the node, its downstream and its run.
//!
//! Decisions come from `baton_core` (`decide_attempt_end`, `run_result`): this file only
//! applies them to the rows around the node that changed, under the run's lock.

use baton_api::AttemptRef;
use baton_core::{
    AttemptDecision, NodeState, Outcome, Reason, RetryOn, counts_as, decide_attempt_end,
};

use super::attempts::{Locked, lock_owned, locked_row, select_locked};
use super::db::{Db, RowExt};
use super::deadlines;
use super::downstream;
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
    let mut locked = lock_owned(db, agent_id, at).await?;
    report_locked(db, &mut locked, outcome, message).await
}

/// [`report`] of an attempt already locked with its run and found to be the caller's;
/// `locked` is updated to its new state.
pub(crate) async fn report_locked(
    db: &mut Db<'_>,
    locked: &mut Locked,
    outcome: Outcome,
    message: Option<&str>,
) -> Result<Reported> {
    if !outcome.state.is_terminal() {
        return Err(StoreError::Invalid(format!(
            "an attempt cannot end as {}",
            outcome.state
        )));
    }
    // Checked before the repeat test, so the same report sent again compares equal.
    let (outcome, message) = match deadlines::timed_out(db, &locked.attempt, outcome) {
        Some(timed_out) => (timed_out, Some(deadlines::RUN_TIMEOUT_MESSAGE)),
        None => (outcome, message),
    };
    if let Some(stored) = locked.attempt.outcome() {
        if stored == outcome {
            return Ok(Reported {
                outcome: stored,
                duplicate: true,
                woke: false,
            });
        }
        return Err(StoreError::Stale(locked.attempt.id));
    }
    let woke = end_attempt(db, locked, outcome, message).await? || db.freed();
    locked.attempt.status = outcome.state;
    locked.attempt.reason = Some(outcome.reason);
    locked.attempt.exit_code = outcome.exit_code;
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
        let locked: Vec<Locked> = db
            .query(
                "locking expired attempts",
                select_locked!(
                    "WHERE a.id = ANY($1) AND a.status IN ('pending', 'running') \
                     AND a.lease_until < $2 ORDER BY a.id FOR UPDATE OF a"
                ),
                &[&ids, &now],
            )
            .await?
            .iter()
            .map(locked_row)
            .collect::<Result<_>>()?;
        // Reaped in lease order, as found.
        for id in &ids {
            let Some(attempt) = locked.iter().find(|l| l.attempt.id == *id) else {
                continue;
            };
            woke |= end_attempt(
                db,
                attempt,
                Outcome::error(Reason::Lost),
                Some("the agent stopped renewing the lease"),
            )
            .await?;
            lost.push(attempt.attempt.id);
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
        woke: woke || db.freed(),
        next_expiry,
    })
}

/// Ends the attempt, moves its node to `to` and counts, for each child in `$12`, a need
/// that ended counting `$13` bad and `$14` failed (see `baton_core::counts_as`): one
/// statement. Returns the children's counters for `downstream::settle`.
const END_AND_COUNT: &str = "WITH ended AS ( \
       UPDATE attempts SET status = $2, reason = $3, exit_code = $4, message = $5, \
         finished_at = $6, lease_until = NULL WHERE id = $1), \
     moved AS ( \
       UPDATE nodes SET status = $8, ready_at = $9, lost = $10 WHERE id = $7) \
     UPDATE nodes SET remaining = remaining - 1, needs_bad = needs_bad + $13, \
       needs_failed = needs_failed + $14 \
     WHERE run_id = $11 AND idx = ANY($12) \
     RETURNING idx, id, status, remaining, needs_bad, needs_failed";

/// Ends a live attempt and moves its node, downstream and run on; the run's and the
/// attempt's locks are held. Returns true when some node became claimable right now.
pub(crate) async fn end_attempt(
    db: &mut Db<'_>,
    locked: &Locked,
    outcome: Outcome,
    message: Option<&str>,
) -> Result<bool> {
    let now = db.now;
    let attempt = &locked.attempt;
    let node_state = locked.node_state;
    let (version_id, cancel_requested) = {
        let run = db.lock_run(&attempt.run_id).await?;
        (run.version_id.clone(), run.cancel_requested)
    };
    let compiled = db.cache.version(db, &version_id).await?;
    let spec = compiled.node(locked.idx)?;
    if !spec.resources.is_empty() {
        let released = db
            .execute(
                "releasing resources",
                "DELETE FROM resource_holds WHERE attempt_id = $1",
                &[&attempt.id],
            )
            .await?;
        if released > 0 {
            db.mark_freed();
        }
    }
    if !matches!(node_state, NodeState::Pending | NodeState::Running) {
        // A live attempt always has a live node; keep the attempt's end and touch nothing
        // else rather than break the run's counters.
        tracing::warn!(attempt = attempt.id, node = %node_state, "live attempt of a settled node");
        db.execute(
            "ending an attempt",
            "UPDATE attempts SET status = $2, reason = $3, exit_code = $4, message = $5, \
             finished_at = $6, lease_until = NULL WHERE id = $1",
            &[
                &attempt.id,
                &outcome.state.as_str(),
                &outcome.reason.as_str(),
                &outcome.exit_code,
                &message,
                &now,
            ],
        )
        .await?;
        db.lock_run(&attempt.run_id).await?.settle(now);
        return Ok(false);
    }

    let decision = decide_attempt_end(
        &spec.retry,
        attempt.number,
        locked.lost,
        &outcome,
        cancel_requested,
        rand::random::<f64>(),
    );
    let lost = locked.lost + u32::from(RetryOn::of(&outcome) == Some(RetryOn::Lost));
    let (to, ready_at, children) = match decision {
        AttemptDecision::Retry { delay_ms } => {
            let at = now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
            (NodeState::Ready, Some(at), Vec::new())
        }
        AttemptDecision::Finish(end) => {
            let children = compiled.dag.children(locked.idx);
            let children: Vec<i64> = children.iter().map(|&c| i64::from(c)).collect();
            (end, None, children)
        }
    };
    // A retry names no children, so what it would count is never used.
    let (bad, failed) = counts_as(to);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
        &attempt.id,
        &outcome.state.as_str(),
        &outcome.reason.as_str(),
        &outcome.exit_code,
        &message,
        &now,
        &attempt.node_id,
        &to.as_str(),
        &ready_at,
        &i64::from(lost),
        &attempt.run_id,
        &children,
        &i64::from(bad),
        &i64::from(failed),
    ];
    let counted = db
        .query("ending an attempt", END_AND_COUNT, &params)
        .await?;
    db.lock_run(&attempt.run_id)
        .await?
        .counts
        .shift(node_state, to, 1);
    let woke = match decision {
        AttemptDecision::Retry { delay_ms: 0 } => {
            db.mark_readied(attempt.node_id);
            true
        }
        AttemptDecision::Retry { .. } => {
            // Waiting claims must learn when it falls due.
            db.mark_work();
            false
        }
        AttemptDecision::Finish(_) => {
            downstream::settle(db, &attempt.run_id, &compiled, counted).await?
        }
    };
    db.lock_run(&attempt.run_id).await?.settle(now);
    Ok(woke)
}
