//! How attempts end — reported by their agent or reaped when their lease runs out — and
//! what that means for the node, its downstream and its run.
//!
//! Decisions come from `baton_core` (`decide_attempt_end`, `run_result`): this file only
//! applies them to the rows around the node that changed.

use baton_api::AttemptRef;
use baton_core::{AttemptDecision, NodeState, Outcome, Reason, RetryOn, decide_attempt_end};
use rusqlite::{OptionalExtension, params};

use super::attempts::AttemptRow;
use super::db::{Db, SqlResult, corrupt, state};
use super::deadlines;
use super::downstream;
use super::runs::RunRow;
use crate::{Reaped, Reported, Result, StoreError};

/// Most attempts one reaping pass ends, to keep the write short; the rest are left for
/// the next pass, which `next_expiry` (then in the past) asks for at once.
const REAP_BATCH: i64 = 500;

/// Records how an attempt ended: a compare-and-set on the attempt, its agent and fence.
pub(crate) fn report(
    db: &Db<'_>,
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
    let attempt = AttemptRow::owned(db, agent_id, at)?;
    // Checked before the repeat test, so the same report sent again compares equal.
    let (outcome, message) = match deadlines::timed_out(db, &attempt, outcome)? {
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
    end_attempt(db, &attempt, outcome, message)?;
    let woke = db.woke(&[]);
    Ok(Reported {
        outcome,
        duplicate: false,
        woke,
    })
}

/// Ends every attempt whose lease ran out as `error` (`lost`), retrying by policy.
pub(crate) fn reap(db: &Db<'_>) -> Result<Reaped> {
    let expired: Vec<i64> = {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT id FROM attempts \
                 WHERE status IN ('pending', 'running') AND lease_until < ?1 \
                 ORDER BY lease_until LIMIT ?2",
            )
            .ctx("finding expired leases")?;
        let rows = stmt
            .query_map(params![db.now, REAP_BATCH], |r| r.get(0))
            .ctx("finding expired leases")?;
        rows.map(|r| r.ctx("finding expired leases"))
            .collect::<Result<_>>()?
    };
    for &id in &expired {
        let Some(attempt) = AttemptRow::load(db, id)? else {
            continue;
        };
        end_attempt(
            db,
            &attempt,
            Outcome::error(Reason::Lost),
            Some("the agent stopped renewing the lease"),
        )?;
    }
    let next_expiry: Option<i64> = db
        .conn
        .prepare_cached(
            "SELECT MIN(lease_until) FROM attempts WHERE status IN ('pending', 'running')",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("finding the next lease expiry")?;
    Ok(Reaped {
        lost: expired,
        woke: db.woke(&[]),
        next_expiry,
    })
}

/// Ends a live attempt and moves its node, downstream and run on. Nodes it makes
/// claimable now are noted with [`Db::mark_readied`].
pub(crate) fn end_attempt(
    db: &Db<'_>,
    attempt: &AttemptRow,
    outcome: Outcome,
    message: Option<&str>,
) -> Result<()> {
    let now = db.now;
    db.conn
        .prepare_cached(
            "UPDATE attempts SET status = ?2, reason = ?3, exit_code = ?4, message = ?5, \
             finished_at = ?6, lease_until = NULL WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                attempt.id,
                outcome.state.as_str(),
                outcome.reason.as_str(),
                outcome.exit_code,
                message,
                now
            ])
        })
        .ctx("ending an attempt")?;

    let (idx, node_state, lost): (u32, NodeState, u32) = db
        .conn
        .prepare_cached("SELECT idx, status, lost FROM nodes WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([attempt.node_id], |r| {
                Ok((r.get(0)?, state(r, 1)?, r.get(2)?))
            })
            .optional()
        })
        .ctx("ending an attempt")?
        .ok_or_else(|| corrupt(format!("attempt {} has no node", attempt.id)))?;
    let mut run = RunRow::get(db, &attempt.run_id)?;
    let compiled = db.cache.version(db, &run.version_id)?;
    let spec = compiled.node(idx)?;
    if !spec.resources.is_empty() {
        let released = db
            .conn
            .prepare_cached("DELETE FROM resource_holds WHERE attempt_id = ?1")
            .and_then(|mut s| s.execute([attempt.id]))
            .ctx("releasing resources")?;
        if released > 0 {
            db.mark_freed();
        }
    }
    if !matches!(node_state, NodeState::Pending | NodeState::Running) {
        // A live attempt always has a live node; keep the attempt's end and touch nothing
        // else rather than break the run's counters.
        tracing::warn!(attempt = attempt.id, node = %node_state, "live attempt of a settled node");
        run.settle(now);
        run.save(db)?;
        return Ok(());
    }

    let decision = decide_attempt_end(
        &spec.retry,
        attempt.number,
        lost,
        &outcome,
        run.cancel_requested,
        rand::random::<f64>(),
    );
    let lost = lost + u32::from(RetryOn::of(&outcome) == Some(RetryOn::Lost));
    match decision {
        AttemptDecision::Retry { delay_ms } => {
            let ready_at = now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
            set_node(db, attempt.node_id, NodeState::Ready, Some(ready_at), lost)?;
            run.counts.shift(node_state, NodeState::Ready, 1);
            if delay_ms == 0 {
                db.mark_readied(attempt.node_id);
            }
        }
        AttemptDecision::Finish(end) => {
            set_node(db, attempt.node_id, end, None, lost)?;
            run.counts.shift(node_state, end, 1);
            downstream::node_ended(db, &mut run, &compiled, idx, end)?;
        }
    }
    run.settle(now);
    run.save(db)?;
    Ok(())
}

fn set_node(
    db: &Db<'_>,
    node_id: i64,
    to: NodeState,
    ready_at: Option<i64>,
    lost: u32,
) -> Result<()> {
    db.conn
        .prepare_cached("UPDATE nodes SET status = ?2, ready_at = ?3, lost = ?4 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![node_id, to.as_str(), ready_at, lost]))
        .ctx("moving a node")?;
    Ok(())
}
