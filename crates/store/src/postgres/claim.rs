//! Handing ready nodes to an agent, safely beside other claims on other connections and
//! other replicas.
//!
//! Candidates come from the `(req_id, prio_key, ready_at, id)` index, one walk per
//! requirement the agent meets, merged in claim order (highest priority, then longest
//! ready; a `LATERAL` join), with no lock. The walks go one priority level at a time (a
//! seek finds the next, in the statement that reads its first page) and read only the
//! level's claimable rows (`ready_at <= now`): nodes backing off are never read, and a
//! claim that comes up short learns when to look again from one seek per requirement and
//! level. A node that names resources must find room in them first (see
//! [`super::resources`]); a claim that met a resource another claim was taking at that
//! moment looks again soon ([`CONTENDED_RETRY_MS`]) rather than waking every agent. Each
//! is then taken under its run's lock: the run row carries the node counters, so every
//! writer that moves nodes of a run holds it, and two claims of one run take turns. The take itself is one statement that moves the node only if it is
//! still ready (`WHERE status = 'ready'`) and opens the attempt with a fresh fencing
//! token; `UNIQUE (node_id, number)` is the last line of defence. A run whose lock would
//! break the lock order is only tried (`FOR UPDATE SKIP LOCKED`): its nodes stay ready for
//! the next claim.

use baton_api::Assignment;
use baton_core::NodeState;

use super::attempts::{canceling, lease_until, touch_agent};
use super::db::{Db, RowExt};
use super::outputs;
use super::resources::{self, Claiming};
use crate::{Claimed, Result};

/// A ready node as the index gives it.
#[derive(Debug, Clone)]
struct Ready {
    id: i64,
    run_id: String,
    idx: u32,
    /// Its priority level (the walk's), with `ready_at` and `id` its place in line.
    prio_key: i64,
    ready_at: i64,
    /// The run's workflow version, so a node that must wait takes no run lock.
    version_id: String,
}

/// How soon a claim that found a resource locked by another claim looks again. That claim
/// may free room (or take the last of it) when it commits, within milliseconds; telling
/// only the agent that met the lock to look again, instead of notifying every waiting
/// agent on every replica, keeps a full resource from turning into a storm of claims
/// that wake each other and contend again.
const CONTENDED_RETRY_MS: i64 = 100;

/// Hands the agent up to `max` ready nodes it can run.
pub(crate) async fn claim(
    db: &mut Db<'_>,
    agent_id: &str,
    max: u32,
    lease_ms: u64,
) -> Result<Claimed> {
    touch_agent(db, agent_id).await?;
    let mut out = Claimed {
        cancel: canceling(db, agent_id).await?,
        ..Claimed::default()
    };
    if max == 0 {
        return Ok(out);
    }
    let taken = take_ready(db, agent_id, max, lease_ms).await?;
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
    /// When the earliest backing-off node the agent could run becomes claimable; known
    /// only when the walk went to the end (fewer than `max` taken).
    next_ready_at: Option<i64>,
}

/// Opens attempts for the agent on up to `max` ready nodes it can run, highest priority
/// then oldest first; the agent must be known to be registered.
pub(crate) async fn take_ready(
    db: &mut Db<'_>,
    agent_id: &str,
    max: u32,
    lease_ms: u64,
) -> Result<Taken> {
    let mut out = Taken::default();
    let reqs = db
        .cache
        .matching(db, agent_id, db.newest_requirement)
        .await?;
    if reqs.is_empty() {
        return Ok(out);
    }
    let until = lease_until(db, lease_ms);
    let batch = i64::from(max.min(256)) + 4;
    let now = db.now;
    let mut levels: Vec<i64> = Vec::new();
    let mut touched: Vec<String> = Vec::new();
    let mut claiming = Claiming::default();
    'levels: while out.assignments.len() < max as usize {
        let above = levels.last().copied();
        let mut page = first_page(db, &reqs, above, batch).await?;
        let level = match page.first() {
            Some(node) => node.prio_key,
            // The next level has nothing claimable (or there is none): step past it.
            None => match next_level(db, &reqs, above).await? {
                Some(level) => {
                    levels.push(level);
                    continue;
                }
                None => {
                    out.next_ready_at = next_ready_at(db, &reqs, &levels).await?;
                    break;
                }
            },
        };
        levels.push(level);
        let mut after = (i64::MIN, i64::MIN);
        loop {
            for node in &page {
                if out.assignments.len() >= max as usize {
                    break 'levels;
                }
                after = (node.ready_at, node.id);
                if let Some(a) = take(db, &mut claiming, agent_id, node, until).await? {
                    out.assignments.push(a);
                    db.mark_taken(node.id);
                    if !touched.contains(&node.run_id) {
                        touched.push(node.run_id.clone());
                    }
                }
            }
            if (page.len() as i64) < batch {
                break;
            }
            page = candidates(db, &reqs, level, after, batch).await?;
        }
    }
    if claiming.contended {
        // Only this agent looks again, soon (see `CONTENDED_RETRY_MS`).
        let soon = now + CONTENDED_RETRY_MS;
        out.next_ready_at = Some(out.next_ready_at.map_or(soon, |t| t.min(soon)));
    }
    for run_id in &touched {
        db.lock_run(run_id).await?.settle(now);
    }
    Ok(out)
}

/// The next priority level after `after` (the first when `None`) with a ready node
/// (claimable or not) of these requirements: one index seek per requirement.
async fn next_level(db: &Db<'_>, reqs: &[i64], after: Option<i64>) -> Result<Option<i64>> {
    db.query_one(
        "finding ready nodes",
        "SELECT MIN(l.p) FROM unnest($1::bigint[]) AS q(req) \
         CROSS JOIN LATERAL ( \
           SELECT MIN(prio_key) AS p FROM nodes \
           WHERE req_id = q.req AND status = 'ready' AND prio_key > $2) AS l",
        &[&reqs, &after.unwrap_or(i64::MIN)],
    )
    .await?
    .at(0)
}

/// When the earliest backing-off node of these requirements in these levels becomes
/// claimable: one index seek per requirement and level (levels are few).
async fn next_ready_at(db: &Db<'_>, reqs: &[i64], levels: &[i64]) -> Result<Option<i64>> {
    if levels.is_empty() {
        return Ok(None);
    }
    db.query_one(
        "finding backing-off nodes",
        "SELECT MIN(b.at) FROM unnest($1::bigint[]) AS q(req) \
         CROSS JOIN unnest($2::bigint[]) AS l(p) \
         CROSS JOIN LATERAL ( \
           SELECT MIN(ready_at) AS at FROM nodes \
           WHERE req_id = q.req AND status = 'ready' AND prio_key = l.p \
             AND ready_at > $3) AS b",
        &[&reqs, &levels, &db.now],
    )
    .await?
    .at(0)
}

/// The first page of claimable nodes of these requirements in the next priority level
/// after `above` (the first when `None`), which the same statement seeks (one round trip
/// per level, not two, as most claims meet one level); empty when that level has none
/// (or there is no level), the level then still unknown.
async fn first_page(
    db: &Db<'_>,
    reqs: &[i64],
    above: Option<i64>,
    batch: i64,
) -> Result<Vec<Ready>> {
    db.query(
        "finding ready nodes",
        "WITH l AS ( \
           SELECT MIN(s.p) AS p FROM unnest($1::bigint[]) AS q(req) \
           CROSS JOIN LATERAL ( \
             SELECT MIN(prio_key) AS p FROM nodes \
             WHERE req_id = q.req AND status = 'ready' AND prio_key > $2) AS s) \
         SELECT n.id, n.run_id, n.idx, n.prio_key, n.ready_at, r.version_id \
         FROM unnest($1::bigint[]) AS q(req) \
         CROSS JOIN LATERAL ( \
           SELECT id, run_id, idx, prio_key, ready_at FROM nodes \
           WHERE req_id = q.req AND status = 'ready' AND prio_key = (SELECT p FROM l) \
             AND ready_at <= $3 \
           ORDER BY ready_at, id LIMIT $4) AS n \
         JOIN runs r ON r.id = n.run_id \
         ORDER BY n.ready_at, n.id LIMIT $4",
        &[&reqs, &above.unwrap_or(i64::MIN), &db.now, &batch],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Ready {
            id: r.at(0)?,
            run_id: r.at(1)?,
            idx: r.u32_at(2)?,
            prio_key: r.at(3)?,
            ready_at: r.at(4)?,
            version_id: r.at(5)?,
        })
    })
    .collect()
}

/// The next page of claimable nodes of these requirements in priority level `level` after
/// `after`, in claim order.
async fn candidates(
    db: &Db<'_>,
    reqs: &[i64],
    level: i64,
    after: (i64, i64),
    batch: i64,
) -> Result<Vec<Ready>> {
    db.query(
        "finding ready nodes",
        "SELECT n.id, n.run_id, n.idx, n.ready_at, r.version_id \
         FROM unnest($1::bigint[]) AS q(req) \
         CROSS JOIN LATERAL ( \
           SELECT id, run_id, idx, ready_at FROM nodes \
           WHERE req_id = q.req AND status = 'ready' AND prio_key = $2 \
             AND ready_at <= $3 AND (ready_at, id) > ($4, $5) \
           ORDER BY ready_at, id LIMIT $6) AS n \
         JOIN runs r ON r.id = n.run_id \
         ORDER BY n.ready_at, n.id LIMIT $6",
        &[&reqs, &level, &db.now, &after.0, &after.1, &batch],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Ready {
            id: r.at(0)?,
            run_id: r.at(1)?,
            idx: r.u32_at(2)?,
            prio_key: level,
            ready_at: r.at(3)?,
            version_id: r.at(4)?,
        })
    })
    .collect()
}

/// Opens an attempt of `node` for the agent, unless a resource it names has no room, its
/// run is locked out of order, or it is no longer ready.
async fn take(
    db: &mut Db<'_>,
    claiming: &mut Claiming,
    agent_id: &str,
    node: &Ready,
    until: i64,
) -> Result<Option<Assignment>> {
    let compiled = db.cache.version(db, &node.version_id).await?;
    let spec = compiled.node(node.idx)?;
    let place = (node.prio_key, node.ready_at, node.id);
    if !spec.resources.is_empty() && !resources::admit(db, claiming, &spec.resources, place).await?
    {
        return Ok(None);
    }
    if db.try_lock_run(&node.run_id).await?.is_none() {
        return Ok(None);
    }
    let fence = rand::random::<i64>();
    let now = db.now;
    let Some(row) = db
        .query_opt(
            "claiming a node",
            "WITH n AS ( \
               UPDATE nodes SET status = 'pending', attempts = attempts + 1, ready_at = NULL, \
                 attempt_id = nextval('attempts_id_seq') \
               WHERE id = $1 AND status = 'ready' AND ready_at <= $2 \
               RETURNING id, run_id, attempts, attempt_id) \
             INSERT INTO attempts \
               (id, node_id, run_id, number, agent_id, fence, status, claimed_at, lease_until) \
             SELECT attempt_id, id, run_id, attempts, $3, $4, 'pending', $2, $5 FROM n \
             RETURNING id, number",
            &[&node.id, &now, &agent_id, &fence, &until],
        )
        .await?
    else {
        // Taken (or canceled) between the look and the lock.
        return Ok(None);
    };
    let attempt_id: i64 = row.at(0)?;
    let number = row.u32_at(1)?;
    if !spec.resources.is_empty() {
        resources::hold(db, claiming, &spec.resources, attempt_id, place).await?;
    }
    let run = db.lock_run(&node.run_id).await?;
    run.counts.shift(NodeState::Ready, NodeState::Pending, 1);
    let has_outputs = run.has_outputs;
    // Most runs have no outputs: their claims look for no inputs.
    let inputs = if has_outputs {
        outputs::inputs(db, &node.run_id, &compiled, node.idx).await?
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
