//! Handing ready nodes to an agent.
//!
//! Ready nodes are indexed by `(req_id, prio_key, ready_at, id)`, `prio_key` being minus
//! the run's priority. A claim walks, for each requirement the agent meets, that index in
//! order, and merges the walks on the same key: the highest priority first, and within one
//! priority the longest ready, whatever its requirement (so nothing waits behind newer
//! work of its priority). Each walk goes one priority level at a time (a seek finds the
//! next level, in the statement that reads its first page) and reads only the level's
//! claimable rows (`ready_at <= now`): nodes backing off, however many, are never read; a
//! level of only them costs one more seek, and a claim that comes up short one seek per
//! level to learn when to look again. Nodes the agent cannot run are never read either,
//! and only as many rows are read as the claim takes, plus those waiting for a resource
//! (each resource's holds are read once per claim, see [`super::resources`]).

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

/// The walk along one requirement's claimable nodes, one priority level at a time.
struct Walk {
    req_id: i64,
    buf: std::collections::VecDeque<Ready>,
    /// The `prio_key` levels met so far, the current one last.
    levels: Vec<i64>,
    /// Position (`ready_at`, `id`) in the current level after the last row read.
    after: (i64, i64),
    /// The current level's claimable rows are all read.
    level_done: bool,
    /// Every level is read.
    done: bool,
}

impl Walk {
    fn new(req_id: i64) -> Walk {
        Walk {
            req_id,
            buf: Default::default(),
            levels: Vec::new(),
            after: (i64::MIN, i64::MIN),
            level_done: true,
            done: false,
        }
    }
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
    let mut walks: Vec<Walk> = reqs.iter().map(|&req_id| Walk::new(req_id)).collect();
    // Runs touched by this claim, with whether a node of theirs was taken.
    let mut runs: HashMap<String, (RunRow, bool)> = HashMap::new();
    let mut rooms = Rooms::default();
    let until = lease_until(db, lease_ms);
    let batch = i64::from(max.min(256)) + 4;
    while out.assignments.len() < max as usize {
        let Some(node) = next_ready(db, &mut walks, batch)? else {
            out.next_ready_at = next_ready_at(db, &walks)?;
            break;
        };
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

/// The first claimable node over every walk, in claim order.
fn next_ready(db: &Db<'_>, walks: &mut [Walk], batch: i64) -> Result<Option<Ready>> {
    for w in walks.iter_mut() {
        while w.buf.is_empty() && !w.done {
            if !w.level_done {
                read_level(db, w, batch)?;
            } else if !read_next_level(db, w, batch)? {
                // The next level has nothing claimable (or there is none): step past it.
                match next_level(db, w)? {
                    Some(level) => w.levels.push(level),
                    None => w.done = true,
                }
            }
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

/// The walk's next priority level with any ready node (claimable or not): one index seek.
fn next_level(db: &Db<'_>, w: &Walk) -> Result<Option<i64>> {
    db.conn
        .prepare_cached(
            "SELECT MIN(prio_key) FROM nodes \
             WHERE req_id = ?1 AND status = 'ready' AND prio_key > ?2",
        )
        .and_then(|mut s| {
            s.query_row(
                params![w.req_id, w.levels.last().copied().unwrap_or(i64::MIN)],
                |r| r.get(0),
            )
        })
        .ctx("finding ready nodes")
}

/// Reads the first page of the walk's next level, which the same statement seeks (one
/// statement per level, not two, as most claims meet one level); false when that page is
/// empty, the level then still unknown.
fn read_next_level(db: &Db<'_>, w: &mut Walk, batch: i64) -> Result<bool> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT n.id, n.run_id, n.idx, n.prio_key, n.ready_at, n.attempts, r.version_id \
             FROM nodes n JOIN runs r ON r.id = n.run_id \
             WHERE n.req_id = ?1 AND n.status = 'ready' \
               AND n.prio_key = (SELECT MIN(prio_key) FROM nodes \
                 WHERE req_id = ?1 AND status = 'ready' AND prio_key > ?2) \
               AND n.ready_at <= ?3 \
             ORDER BY n.ready_at, n.id LIMIT ?4",
        )
        .ctx("finding ready nodes")?;
    let after = w.levels.last().copied().unwrap_or(i64::MIN);
    let rows = stmt
        .query_map(params![w.req_id, after, db.now, batch], ready)
        .ctx("finding ready nodes")?;
    let read = fill(w, rows)?;
    if let Some(first) = w.buf.front() {
        w.levels.push(first.prio_key);
    }
    w.level_done = read < batch;
    Ok(read > 0)
}

/// Reads the next page of the walk's claimable nodes in its current level.
fn read_level(db: &Db<'_>, w: &mut Walk, batch: i64) -> Result<()> {
    let Some(&level) = w.levels.last() else {
        w.level_done = true;
        return Ok(());
    };
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT n.id, n.run_id, n.idx, n.prio_key, n.ready_at, n.attempts, r.version_id \
             FROM nodes n JOIN runs r ON r.id = n.run_id \
             WHERE n.req_id = ?1 AND n.status = 'ready' AND n.prio_key = ?2 \
               AND n.ready_at <= ?3 AND (n.ready_at, n.id) > (?4, ?5) \
             ORDER BY n.ready_at, n.id LIMIT ?6",
        )
        .ctx("finding ready nodes")?;
    let rows = stmt
        .query_map(
            params![w.req_id, level, db.now, w.after.0, w.after.1, batch],
            ready,
        )
        .ctx("finding ready nodes")?;
    w.level_done = fill(w, rows)? < batch;
    Ok(())
}

/// A row of the walk's statements.
fn ready(r: &rusqlite::Row<'_>) -> rusqlite::Result<Ready> {
    Ok(Ready {
        id: r.get(0)?,
        run_id: r.get(1)?,
        idx: r.get(2)?,
        prio_key: r.get(3)?,
        ready_at: r.get(4)?,
        attempts: r.get(5)?,
        version_id: r.get(6)?,
    })
}

/// Appends a page to the walk's buffer and moves its position past it; returns how many
/// rows it held.
fn fill(w: &mut Walk, rows: impl Iterator<Item = rusqlite::Result<Ready>>) -> Result<i64> {
    let mut read = 0;
    for row in rows {
        w.buf.push_back(row.ctx("finding ready nodes")?);
        read += 1;
    }
    if let Some(last) = w.buf.back() {
        w.after = (last.ready_at, last.id);
    }
    Ok(read)
}

/// When the earliest backing-off node of the walks' levels becomes claimable: one index
/// seek per requirement and level (levels are few), once the walks are all read.
fn next_ready_at(db: &Db<'_>, walks: &[Walk]) -> Result<Option<i64>> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT MIN(ready_at) FROM nodes \
             WHERE req_id = ?1 AND status = 'ready' AND prio_key = ?2 AND ready_at > ?3",
        )
        .ctx("finding backing-off nodes")?;
    let mut first: Option<i64> = None;
    for w in walks {
        for &level in &w.levels {
            let at: Option<i64> = stmt
                .query_row(params![w.req_id, level, db.now], |r| r.get(0))
                .ctx("finding backing-off nodes")?;
            if let Some(at) = at {
                first = Some(first.map_or(at, |t: i64| t.min(at)));
            }
        }
    }
    Ok(first)
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
    let place = (node.prio_key, node.ready_at, node.id);
    if !spec.resources.is_empty() && !resources::admit(db, rooms, &spec.resources, place)? {
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
        resources::hold(db, rooms, &spec.resources, attempt_id, place)?;
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
        secrets: Default::default(),
        secret_refs: spec.secrets.clone(),
        refused: None,
    }))
}
