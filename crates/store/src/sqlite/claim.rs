//! Handing ready nodes to an agent.
//!
//! Ready nodes are indexed by `(req_id, ready_at, id)`. A claim walks, for each
//! requirement the agent meets, that index in order, and merges the walks so the oldest
//! ready node goes first whatever its requirement. Nodes the agent cannot run are never
//! read, and only as many rows are read as the claim takes (plus those skipped because
//! a resource they name is held).

use std::collections::HashMap;

use baton_api::Assignment;
use baton_core::NodeState;
use rusqlite::{OptionalExtension, params};

use super::attempts::{canceling, lease_until, touch_agent};
use super::db::{Db, SqlResult, random_fence};
use super::runs::RunRow;
use crate::{Claimed, Result, StoreError};

/// A ready node as the index gives it.
#[derive(Debug, Clone)]
struct Ready {
    id: i64,
    run_id: String,
    idx: u32,
    ready_at: i64,
    attempts: u32,
}

/// The walk along one requirement's ready nodes.
struct Walk {
    req_id: i64,
    buf: std::collections::VecDeque<Ready>,
    /// Position after the last row read.
    after: (i64, i64),
    done: bool,
}

/// Hands the agent up to `max` ready nodes it can run.
pub(crate) fn claim(db: &Db<'_>, agent_id: &str, max: u32, lease_ms: u64) -> Result<Claimed> {
    touch_agent(db, agent_id)?;
    let mut out = Claimed {
        cancel: canceling(db, agent_id)?,
        ..Claimed::default()
    };
    if max == 0 {
        return Ok(out);
    }
    let taken = take_ready(db, agent_id, max, lease_ms)?;
    out.assignments = taken.assignments;
    if out.assignments.len() < max as usize {
        out.next_ready_at = next_ready_at(db, &taken.reqs)?;
    }
    Ok(out)
}

/// What [`take_ready`] handed out.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) assignments: Vec<Assignment>,
    /// Row ids of the nodes taken, in the order of `assignments`.
    pub(crate) node_ids: Vec<i64>,
    /// The requirements the agent meets.
    reqs: Vec<i64>,
}

/// Opens attempts for the agent on up to `max` ready nodes it can run, oldest first; the
/// agent must be known to be registered.
pub(crate) fn take_ready(db: &Db<'_>, agent_id: &str, max: u32, lease_ms: u64) -> Result<Taken> {
    let mut out = Taken::default();
    let reqs = db.cache.matching(db, agent_id)?;
    if reqs.is_empty() {
        return Ok(out);
    }
    let mut walks: Vec<Walk> = reqs
        .iter()
        .map(|&req_id| Walk {
            req_id,
            buf: Default::default(),
            after: (i64::MIN, i64::MIN),
            done: false,
        })
        .collect();
    // Runs touched by this claim, with whether a node of theirs was taken.
    let mut runs: HashMap<String, (RunRow, bool)> = HashMap::new();
    let until = lease_until(db, lease_ms);
    let batch = i64::from(max.min(256)) + 4;
    while out.assignments.len() < max as usize {
        let Some(node) = next_ready(db, &mut walks, batch)? else {
            break;
        };
        if let Some(a) = take(db, &mut runs, agent_id, &node, until)? {
            out.assignments.push(a);
            out.node_ids.push(node.id);
        }
    }
    for (run, taken) in runs.values_mut() {
        if *taken {
            run.settle(db.now);
            run.save(db)?;
        }
    }
    out.reqs = reqs;
    Ok(out)
}

/// The oldest claimable node over every walk.
fn next_ready(db: &Db<'_>, walks: &mut [Walk], batch: i64) -> Result<Option<Ready>> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT id, run_id, idx, ready_at, attempts FROM nodes \
             WHERE req_id = ?1 AND status = 'ready' AND ready_at <= ?2 \
               AND (ready_at, id) > (?3, ?4) \
             ORDER BY ready_at, id LIMIT ?5",
        )
        .ctx("finding ready nodes")?;
    for w in walks.iter_mut() {
        if !w.buf.is_empty() || w.done {
            continue;
        }
        let rows = stmt
            .query_map(
                params![w.req_id, db.now, w.after.0, w.after.1, batch],
                |r| {
                    Ok(Ready {
                        id: r.get(0)?,
                        run_id: r.get(1)?,
                        idx: r.get(2)?,
                        ready_at: r.get(3)?,
                        attempts: r.get(4)?,
                    })
                },
            )
            .ctx("finding ready nodes")?;
        for row in rows {
            w.buf.push_back(row.ctx("finding ready nodes")?);
        }
        w.done = (w.buf.len() as i64) < batch;
        if let Some(last) = w.buf.back() {
            w.after = (last.ready_at, last.id);
        }
    }
    let best = walks
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.buf.front().map(|h| ((h.ready_at, h.id), i)))
        .min()
        .map(|(_, i)| i);
    Ok(best.and_then(|b| walks[b].buf.pop_front()))
}

/// Opens an attempt of `node` for the agent, unless a resource it names is held.
fn take(
    db: &Db<'_>,
    runs: &mut HashMap<String, (RunRow, bool)>,
    agent_id: &str,
    node: &Ready,
    until: i64,
) -> Result<Option<Assignment>> {
    if !runs.contains_key(&node.run_id) {
        runs.insert(node.run_id.clone(), (RunRow::get(db, &node.run_id)?, false));
    }
    let Some((run, taken)) = runs.get_mut(&node.run_id) else {
        return Ok(None);
    };
    let compiled = db.cache.version(db, &run.version_id)?;
    let spec = compiled.node(node.idx)?;
    if !spec.resources.is_empty() {
        let mut held = db
            .conn
            .prepare_cached("SELECT 1 FROM resource_holds WHERE resource = ?1")
            .ctx("checking resources")?;
        for r in &spec.resources {
            if held
                .query_row([&r.name], |_| Ok(()))
                .optional()
                .ctx("checking resources")?
                .is_some()
            {
                return Ok(None);
            }
        }
    }
    let number = node.attempts + 1;
    let fence = random_fence();
    let attempt_id: i64 = db
        .conn
        .prepare_cached(
            "INSERT INTO attempts \
             (node_id, run_id, number, agent_id, fence, status, claimed_at, lease_until) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7) RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![node.id, node.run_id, number, agent_id, fence, db.now, until],
                |r| r.get(0),
            )
        })
        .ctx("opening an attempt")?;
    let moved = db
        .conn
        .prepare_cached(
            "UPDATE nodes SET status = 'pending', attempts = ?2, attempt_id = ?3, ready_at = NULL \
             WHERE id = ?1 AND status = 'ready'",
        )
        .and_then(|mut s| s.execute(params![node.id, number, attempt_id]))
        .ctx("claiming a node")?;
    if moved != 1 {
        // The row came from this transaction's own read, so this cannot happen; refuse
        // rather than hand out a node twice.
        return Err(StoreError::Conflict(format!(
            "node {} of run {} is no longer ready",
            spec.id, node.run_id
        )));
    }
    if !spec.resources.is_empty() {
        let mut hold = db
            .conn
            .prepare_cached("INSERT INTO resource_holds (resource, attempt_id) VALUES (?1, ?2)")
            .ctx("taking resources")?;
        for r in &spec.resources {
            hold.execute(params![r.name, attempt_id])
                .ctx("taking resources")?;
        }
    }
    run.counts.shift(NodeState::Ready, NodeState::Pending, 1);
    *taken = true;
    Ok(Some(Assignment {
        attempt_id,
        fence,
        run_id: node.run_id.clone(),
        workflow: compiled.name.clone(),
        node: spec.id.clone(),
        attempt: number,
        action: spec.action.clone(),
        env: spec.env.clone(),
        timeout_ms: spec.timeout_ms,
        artifacts: spec.artifacts.clone(),
    }))
}

/// When the earliest backing-off node the agent could run becomes claimable.
fn next_ready_at(db: &Db<'_>, reqs: &[i64]) -> Result<Option<i64>> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT MIN(ready_at) FROM nodes \
             WHERE req_id = ?1 AND status = 'ready' AND ready_at > ?2",
        )
        .ctx("finding backing-off nodes")?;
    let mut next: Option<i64> = None;
    for &req in reqs {
        let at: Option<i64> = stmt
            .query_row(params![req, db.now], |r| r.get(0))
            .ctx("finding backing-off nodes")?;
        next = match (next, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(next)
}
