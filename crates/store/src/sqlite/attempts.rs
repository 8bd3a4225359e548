//! Attempts as their agent sees them: ownership checks (agent and fence), start and
//! heartbeat.

use baton_api::AttemptRef;
use baton_core::{AttemptState, NodeState, Outcome, Reason, RunState};
use rusqlite::{OptionalExtension, params};

use super::db::{Db, SqlResult, opt_state, state};
use super::runs::RunRow;
use crate::{HeartbeatResult, Result, StoreError};

/// An attempt row.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRow {
    pub(crate) id: i64,
    pub(crate) node_id: i64,
    pub(crate) run_id: String,
    pub(crate) number: u32,
    pub(crate) agent_id: String,
    pub(crate) fence: i64,
    pub(crate) status: AttemptState,
    pub(crate) reason: Option<Reason>,
    pub(crate) exit_code: Option<i32>,
}

impl AttemptRow {
    pub(crate) fn load(db: &Db<'_>, id: i64) -> Result<Option<AttemptRow>> {
        db.conn
            .prepare_cached(
                "SELECT id, node_id, run_id, number, agent_id, fence, status, reason, exit_code \
                 FROM attempts WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(AttemptRow {
                        id: r.get(0)?,
                        node_id: r.get(1)?,
                        run_id: r.get(2)?,
                        number: r.get(3)?,
                        agent_id: r.get(4)?,
                        fence: r.get(5)?,
                        status: state(r, 6)?,
                        reason: opt_state(r, 7)?,
                        exit_code: r.get(8)?,
                    })
                })
                .optional()
            })
            .ctx("loading an attempt")
    }

    /// The attempt if it belongs to `agent_id` and carries this fence, whatever its state;
    /// `Stale` otherwise (including when there is no such attempt).
    pub(crate) fn owned(db: &Db<'_>, agent_id: &str, at: AttemptRef) -> Result<AttemptRow> {
        match AttemptRow::load(db, at.attempt_id)? {
            Some(a) if a.agent_id == agent_id && a.fence == at.fence => Ok(a),
            _ => Err(StoreError::Stale(at.attempt_id)),
        }
    }

    /// How the attempt ended, once it has.
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        if !self.status.is_terminal() {
            return None;
        }
        Some(Outcome {
            state: self.status,
            reason: self.reason.unwrap_or(Reason::Exit),
            exit_code: self.exit_code,
        })
    }
}

/// How stale `last_seen_at` may get before a call rewrites it: saves a page write on
/// most calls of a busy agent, far below any lease.
const SEEN_RESOLUTION_MS: i64 = 1_000;

/// Records that the agent is alive; `NotFound` if it is unknown or deregistered.
pub(crate) fn touch_agent(db: &Db<'_>, agent_id: &str) -> Result<()> {
    let seen: Option<(i64, Option<i64>)> = db
        .conn
        .prepare_cached("SELECT last_seen_at, deregistered_at FROM agents WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .ctx("updating an agent")?;
    match seen {
        Some((_, Some(_))) | None => Err(StoreError::NotFound(format!("agent {agent_id}"))),
        Some((last, None)) if db.now - last < SEEN_RESOLUTION_MS => Ok(()),
        Some(_) => {
            db.conn
                .prepare_cached("UPDATE agents SET last_seen_at = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![agent_id, db.now]))
                .ctx("updating an agent")?;
            Ok(())
        }
    }
}

/// The agent's live attempts whose run is being canceled.
pub(crate) fn canceling(db: &Db<'_>, agent_id: &str) -> Result<Vec<i64>> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT a.id FROM attempts a JOIN runs r ON r.id = a.run_id \
             WHERE a.agent_id = ?1 AND a.status IN ('pending', 'running') \
               AND r.cancel_requested = 1 \
             ORDER BY a.id",
        )
        .ctx("finding canceled attempts")?;
    let rows = stmt
        .query_map([agent_id], |r| r.get(0))
        .ctx("finding canceled attempts")?;
    rows.map(|r| r.ctx("finding canceled attempts")).collect()
}

/// Lease end for a lease of `lease_ms` starting now.
pub(crate) fn lease_until(db: &Db<'_>, lease_ms: u64) -> i64 {
    db.now
        .saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX))
}

/// Marks a claimed attempt started; repeating it is a no-op.
pub(crate) fn start(db: &Db<'_>, agent_id: &str, at: AttemptRef) -> Result<()> {
    let attempt = AttemptRow::owned(db, agent_id, at)?;
    match attempt.status {
        AttemptState::Running => return Ok(()),
        AttemptState::Pending => {}
        _ => return Err(StoreError::Stale(at.attempt_id)),
    }
    db.conn
        .prepare_cached("UPDATE attempts SET status = 'running', started_at = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![attempt.id, db.now]))
        .ctx("starting an attempt")?;
    let moved = db
        .conn
        .prepare_cached("UPDATE nodes SET status = 'running' WHERE id = ?1 AND status = 'pending'")
        .and_then(|mut s| s.execute([attempt.node_id]))
        .ctx("starting an attempt")?;
    let mut run = RunRow::get(db, &attempt.run_id)?;
    run.counts
        .shift(NodeState::Pending, NodeState::Running, moved as i64);
    if run.status == RunState::Pending {
        run.status = RunState::Running;
        run.started_at = Some(db.now);
    }
    run.settle(db.now);
    run.save(db)
}

/// Renews the leases of the agent's live attempts; names the others stale.
pub(crate) fn heartbeat(
    db: &Db<'_>,
    agent_id: &str,
    attempts: &[AttemptRef],
    lease_ms: u64,
) -> Result<HeartbeatResult> {
    touch_agent(db, agent_id)?;
    let until = lease_until(db, lease_ms);
    let mut renew = db
        .conn
        .prepare_cached(
            "UPDATE attempts SET lease_until = ?4 \
             WHERE id = ?1 AND agent_id = ?2 AND fence = ?3 AND status IN ('pending', 'running')",
        )
        .ctx("renewing leases")?;
    let mut stale = Vec::new();
    for at in attempts {
        let n = renew
            .execute(params![at.attempt_id, agent_id, at.fence, until])
            .ctx("renewing leases")?;
        if n == 0 {
            stale.push(at.attempt_id);
        }
    }
    Ok(HeartbeatResult {
        cancel: canceling(db, agent_id)?,
        stale,
    })
}
