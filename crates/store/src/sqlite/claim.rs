//! Handing ready nodes to an agent.
//!
//! Ready nodes are indexed by `(req_id, prio_key, ready_at, id)`, `prio_key` being minus
//! the run's priority. A claim walks, for each requirement the agent meets, that index in
//! order, and merges the walks on the same key: the highest priority first, and within one
//! priority the longest ready, whatever its requirement (so nothing waits behind newer
//! work of its priority). Nodes the agent cannot run are never read, and only as many rows
//! are read as the claim takes, plus those skipped: backing off (their `ready_at` is
//! later; the earliest of them tells a waiting claim when to look again) or waiting for a
//! resource (each resource's holds are read once per claim, see [`super::resources`]).

use std::collections::HashMap;

use baton_api::Assignment;
use baton_core::NodeState;
use rusqlite::params;

use super::attempts::{canceling, lease_until, touch_agent};
use super::db::{Db, SqlResult, random_fence};
use super::outputs;
use super::resources::{self, Rooms};
use super::runs::RunRow;
use crate::{Claimed, Result, StoreError};

/// A ready node as the index gives it.
#[derive(Debug, Clone)]
struct Ready {
    id: i64,
    run_id: String,
    idx: u32,
    prio_key: i64,
    ready_at: i64,
    attempts: u32,
    /// The run's workflow version, so a node that must wait costs no read of its run.
    version_id: String,
}

/// The walk along one requirement's ready nodes.
struct Walk {
    req_id: i64,
    buf: std::collections::VecDeque<Ready>,
    /// Position (`prio_key`, `ready_at`, `id`) after the last row read.
    after: (i64, i64, i64),
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
        out.next_ready_at = taken.next_ready_at;
    }
    Ok(out)
}

/// What [`take_ready`] handed out.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) assignments: Vec<Assignment>,
    /// Row ids of the nodes taken, in the order of `assignments`.
    pub(crate) node_ids: Vec<i64>,
    /// When the earliest backing-off node the agent could run becomes claimable; known
    /// only when the walk went to the end (fewer than `max` taken).
    next_ready_at: Option<i64>,
}

/// Opens attempts for the agent on up to `max` ready nodes it can run, highest priority
/// then oldest first; the agent must be known to be registered.
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
            after: (i64::MIN, i64::MIN, i64::MIN),
            done: false,
        })
        .collect();
    // Runs touched by this claim, with whether a node of theirs was taken.
    let mut runs: HashMap<String, (RunRow, bool)> = HashMap::new();
    let mut rooms = Rooms::default();
    let until = lease_until(db, lease_ms);
    let batch = i64::from(max.min(256)) + 4;
    while out.assignments.len() < max as usize {
        let Some(node) = next_ready(db, &mut walks, batch)? else {
            break;
        };
        if node.ready_at > db.now {
            let at = node.ready_at;
            out.next_ready_at = Some(out.next_ready_at.map_or(at, |t| t.min(at)));
            continue;
        }
        if let Some(a) = take(db, &mut runs, &mut rooms, agent_id, &node, until)? {
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
    Ok(out)
}

/// The first ready node over every walk, in claim order.
fn next_ready(db: &Db<'_>, walks: &mut [Walk], batch: i64) -> Result<Option<Ready>> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT n.id, n.run_id, n.idx, n.prio_key, n.ready_at, n.attempts, r.version_id \
             FROM nodes n JOIN runs r ON r.id = n.run_id \
             WHERE n.req_id = ?1 AND n.status = 'ready' \
               AND (n.prio_key, n.ready_at, n.id) > (?2, ?3, ?4) \
             ORDER BY n.prio_key, n.ready_at, n.id LIMIT ?5",
        )
        .ctx("finding ready nodes")?;
    for w in walks.iter_mut() {
        if !w.buf.is_empty() || w.done {
            continue;
        }
        let rows = stmt
            .query_map(
                params![w.req_id, w.after.0, w.after.1, w.after.2, batch],
                |r| {
                    Ok(Ready {
                        id: r.get(0)?,
                        run_id: r.get(1)?,
                        idx: r.get(2)?,
                        prio_key: r.get(3)?,
                        ready_at: r.get(4)?,
                        attempts: r.get(5)?,
                        version_id: r.get(6)?,
                    })
                },
            )
            .ctx("finding ready nodes")?;
        for row in rows {
            w.buf.push_back(row.ctx("finding ready nodes")?);
        }
        w.done = (w.buf.len() as i64) < batch;
        if let Some(last) = w.buf.back() {
            w.after = (last.prio_key, last.ready_at, last.id);
        }
    }
    let best = walks
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.buf.front().map(|h| ((h.prio_key, h.ready_at, h.id), i)))
        .min()
        .map(|(_, i)| i);
    Ok(best.and_then(|b| walks[b].buf.pop_front()))
}

/// Opens an attempt of `node` for the agent, unless a resource it names has no room.
fn take(
    db: &Db<'_>,
    runs: &mut HashMap<String, (RunRow, bool)>,
    rooms: &mut Rooms,
    agent_id: &str,
    node: &Ready,
    until: i64,
) -> Result<Option<Assignment>> {
    let compiled = db.cache.version(db, &node.version_id)?;
    let spec = compiled.node(node.idx)?;
    if !spec.resources.is_empty() && !resources::admit(db, rooms, &spec.resources)? {
        return Ok(None);
    }
    if !runs.contains_key(&node.run_id) {
        runs.insert(node.run_id.clone(), (RunRow::get(db, &node.run_id)?, false));
    }
    let Some((run, taken)) = runs.get_mut(&node.run_id) else {
        return Ok(None);
    };
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
        resources::hold(db, rooms, &spec.resources, attempt_id)?;
    }
    run.counts.shift(NodeState::Ready, NodeState::Pending, 1);
    *taken = true;
    // Most runs have no outputs: their claims look for no inputs.
    let inputs = if run.has_outputs {
        outputs::inputs(db, &node.run_id, &compiled, node.idx)?
    } else {
        Default::default()
    };
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
        inputs,
    }))
}
