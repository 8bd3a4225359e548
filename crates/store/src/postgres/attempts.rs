//! Attempts as their agent sees them: ownership checks (agent and fence), start and
//! heartbeat.
//!
//! An attempt's state only changes under its run's lock (start, report, reap); heartbeats
//! and log appends change only its lease and log size, under the attempt row's own lock,
//! taken in ascending id order.

use baton_api::AttemptRef;
use baton_core::{AttemptState, NodeState, RunState};
use tokio_postgres::Row;

use super::db::{Db, RowExt};
use crate::sqlite::attempts::AttemptRow;
use crate::{HeartbeatResult, Result, StoreError};

/// The attempt columns [`attempt_row`] reads.
macro_rules! select_attempts {
    ($rest:literal) => {
        concat!(
            "SELECT id, node_id, run_id, number, agent_id, fence, status, reason, exit_code \
             FROM attempts ",
            $rest
        )
    };
}

pub(crate) fn attempt_row(r: &Row) -> Result<AttemptRow> {
    Ok(AttemptRow {
        id: r.at(0)?,
        node_id: r.at(1)?,
        run_id: r.at(2)?,
        number: r.u32_at(3)?,
        agent_id: r.at(4)?,
        fence: r.at(5)?,
        status: r.state(6)?,
        reason: r.opt_state(7)?,
        exit_code: r.at(8)?,
    })
}

/// Reads an attempt.
pub(crate) async fn load(db: &Db<'_>, id: i64) -> Result<Option<AttemptRow>> {
    db.query_opt(
        "loading an attempt",
        select_attempts!("WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(attempt_row)
    .transpose()
}

/// A live-or-ended attempt with what its ending needs to know of its node, read under
/// its run's lock (the node's state and counters change only under that lock).
#[derive(Debug, Clone)]
pub(crate) struct Locked {
    pub(crate) attempt: AttemptRow,
    /// The node's index in its version.
    pub(crate) idx: u32,
    /// The node's state.
    pub(crate) node_state: NodeState,
    /// Attempts of the node lost so far.
    pub(crate) lost: u32,
}

/// The columns [`locked_row`] reads, from `attempts a JOIN nodes n`.
macro_rules! select_locked {
    ($rest:literal) => {
        concat!(
            "SELECT a.id, a.node_id, a.run_id, a.number, a.agent_id, a.fence, a.status, \
             a.reason, a.exit_code, n.idx, n.status, n.lost \
             FROM attempts a JOIN nodes n ON n.id = a.node_id ",
            $rest
        )
    };
}
pub(crate) use select_locked;

pub(crate) fn locked_row(r: &Row) -> Result<Locked> {
    Ok(Locked {
        attempt: attempt_row(r)?,
        idx: r.u32_at(9)?,
        node_state: r.state(10)?,
        lost: r.u32_at(11)?,
    })
}

/// Reads and locks these attempts (with their nodes), in ascending id order; their runs'
/// locks must be held.
pub(crate) async fn lock_many(db: &Db<'_>, ids: &[i64]) -> Result<Vec<Locked>> {
    db.query(
        "locking attempts",
        select_locked!("WHERE a.id = ANY($1) ORDER BY a.id FOR UPDATE OF a"),
        &[&ids],
    )
    .await?
    .iter()
    .map(locked_row)
    .collect()
}

/// The attempt if it belongs to `agent_id` and carries this fence, whatever its state;
/// `Stale` otherwise (including when there is no such attempt).
pub(crate) fn owned(row: Option<AttemptRow>, agent_id: &str, at: AttemptRef) -> Result<AttemptRow> {
    match row {
        Some(a) if a.agent_id == agent_id && a.fence == at.fence => Ok(a),
        _ => Err(StoreError::Stale(at.attempt_id)),
    }
}

/// Locks the run of an attempt (so its state cannot change under the caller), then the
/// attempt; `Stale` unless it is the agent's, with this fence. The caller holds no run
/// yet, or already holds this one.
pub(crate) async fn lock_owned(db: &mut Db<'_>, agent_id: &str, at: AttemptRef) -> Result<Locked> {
    db.lock_runs_of(&[at.attempt_id]).await?;
    let row = db
        .query_opt(
            "locking an attempt",
            select_locked!("WHERE a.id = $1 FOR UPDATE OF a"),
            &[&at.attempt_id],
        )
        .await?
        .as_ref()
        .map(locked_row)
        .transpose()?;
    match row {
        Some(l) if l.attempt.agent_id == agent_id && l.attempt.fence == at.fence => Ok(l),
        _ => Err(StoreError::Stale(at.attempt_id)),
    }
}

/// How stale `last_seen_at` may get before a call rewrites it: saves a write on most
/// calls of a busy agent, far below any lease.
const SEEN_RESOLUTION_MS: i64 = 1_000;

/// Records that the agent is alive; `NotFound` if it is unknown or deregistered.
pub(crate) async fn touch_agent(db: &Db<'_>, agent_id: &str) -> Result<()> {
    let row = db
        .query_opt(
            "updating an agent",
            "WITH seen AS ( \
               UPDATE agents SET last_seen_at = $2 \
               WHERE id = $1 AND deregistered_at IS NULL AND last_seen_at <= $2::bigint - $3::bigint \
               RETURNING id) \
             SELECT deregistered_at IS NULL FROM agents WHERE id = $1",
            &[&agent_id, &db.now, &SEEN_RESOLUTION_MS],
        )
        .await?;
    match row {
        Some(r) if r.at::<bool>(0)? => Ok(()),
        _ => Err(StoreError::NotFound(format!("agent {agent_id}"))),
    }
}

/// The agent's live attempts whose run is being canceled.
pub(crate) async fn canceling(db: &Db<'_>, agent_id: &str) -> Result<Vec<i64>> {
    db.query(
        "finding canceled attempts",
        "SELECT a.id FROM attempts a JOIN runs r ON r.id = a.run_id \
         WHERE a.agent_id = $1 AND a.status IN ('pending', 'running') \
           AND r.cancel_requested \
         ORDER BY a.id",
        &[&agent_id],
    )
    .await?
    .iter()
    .map(|r| r.at(0))
    .collect()
}

/// Lease end for a lease of `lease_ms` starting now.
pub(crate) fn lease_until(db: &Db<'_>, lease_ms: u64) -> i64 {
    db.now
        .saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX))
}

/// Marks a claimed attempt started; repeating it is a no-op.
pub(crate) async fn start(db: &mut Db<'_>, agent_id: &str, at: AttemptRef) -> Result<()> {
    let attempt = lock_owned(db, agent_id, at).await?.attempt;
    match attempt.status {
        AttemptState::Running => return Ok(()),
        AttemptState::Pending => {}
        _ => return Err(StoreError::Stale(at.attempt_id)),
    }
    let now = db.now;
    db.execute(
        "starting an attempt",
        "UPDATE attempts SET status = 'running', started_at = $2 WHERE id = $1",
        &[&attempt.id, &now],
    )
    .await?;
    let moved = db
        .execute(
            "starting an attempt",
            "UPDATE nodes SET status = 'running' WHERE id = $1 AND status = 'pending'",
            &[&attempt.node_id],
        )
        .await?;
    let run = db.lock_run(&attempt.run_id).await?;
    run.counts
        .shift(NodeState::Pending, NodeState::Running, moved as i64);
    if run.status == RunState::Pending {
        run.status = RunState::Running;
        run.started_at = Some(now);
    }
    run.settle(now);
    Ok(())
}

/// Renews the leases of the agent's live attempts; names the others stale.
pub(crate) async fn heartbeat(
    db: &Db<'_>,
    agent_id: &str,
    attempts: &[AttemptRef],
    lease_ms: u64,
) -> Result<HeartbeatResult> {
    touch_agent(db, agent_id).await?;
    let until = lease_until(db, lease_ms);
    let ids: Vec<i64> = attempts.iter().map(|a| a.attempt_id).collect();
    let fences: Vec<i64> = attempts.iter().map(|a| a.fence).collect();
    // Locks in id order (the subquery's sorted scan), as every writer of attempts does.
    let renewed: Vec<i64> = db
        .query(
            "renewing leases",
            "UPDATE attempts SET lease_until = $3 WHERE id IN ( \
               SELECT a.id FROM attempts a \
               JOIN unnest($1::bigint[], $4::bigint[]) AS r(id, fence) \
                 ON a.id = r.id AND a.fence = r.fence \
               WHERE a.agent_id = $2 AND a.status IN ('pending', 'running') \
               ORDER BY a.id FOR UPDATE OF a) \
             RETURNING id",
            &[&ids, &agent_id, &until, &fences],
        )
        .await?
        .iter()
        .map(|r| r.at(0))
        .collect::<Result<_>>()?;
    let stale = ids.into_iter().filter(|id| !renewed.contains(id)).collect();
    Ok(HeartbeatResult {
        cancel: canceling(db, agent_id).await?,
        stale,
    })
}
