//! Handing ready nodes to an agent, safely beside other claims on other connections and
//! other replicas.
//!
//! Candidates come from the `(req_id, ready_at, id)` index, one walk per requirement the
//! agent meets, merged oldest first (a `LATERAL` join), with no lock. Each is then taken
//! under its run's lock: the run row carries the node counters, so every writer that moves
//! nodes of a run holds it, and two claims of one run take turns. The take itself is one
//! statement that moves the node only if it is still ready (`WHERE status = 'ready'`) and
//! opens the attempt with a fresh fencing token; `UNIQUE (node_id, number)` is the last
//! line of defence. A run whose lock would break the lock order is only tried
//! (`FOR UPDATE SKIP LOCKED`): its nodes stay ready for the next claim.

use baton_api::Assignment;
use baton_core::NodeState;

use super::attempts::{canceling, lease_until, touch_agent};
use super::db::{Db, RowExt};
use crate::{Claimed, Result, StoreError};

/// A ready node as the index gives it.
#[derive(Debug, Clone)]
struct Ready {
    id: i64,
    run_id: String,
    idx: u32,
    ready_at: i64,
}

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
        out.next_ready_at = next_ready_at(db, &taken.reqs).await?;
    }
    Ok(out)
}

/// What [`take_ready`] handed out.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) assignments: Vec<Assignment>,
    /// The requirements the agent meets.
    reqs: Vec<i64>,
}

/// Opens attempts for the agent on up to `max` ready nodes it can run, oldest first; the
/// agent must be known to be registered.
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
    let mut after = (i64::MIN, i64::MIN);
    let mut touched: Vec<String> = Vec::new();
    'pages: while out.assignments.len() < max as usize {
        let page = candidates(db, &reqs, after, batch).await?;
        for node in &page {
            if out.assignments.len() >= max as usize {
                break 'pages;
            }
            after = (node.ready_at, node.id);
            if let Some(a) = take(db, agent_id, node, until).await? {
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
    }
    let now = db.now;
    for run_id in &touched {
        db.lock_run(run_id).await?.settle(now);
    }
    out.reqs = reqs;
    Ok(out)
}

/// The next page of claimable nodes of these requirements after `after`, oldest first.
async fn candidates(
    db: &Db<'_>,
    reqs: &[i64],
    after: (i64, i64),
    batch: i64,
) -> Result<Vec<Ready>> {
    db.query(
        "finding ready nodes",
        "SELECT n.id, n.run_id, n.idx, n.ready_at FROM unnest($1::bigint[]) AS q(req) \
         CROSS JOIN LATERAL ( \
           SELECT id, run_id, idx, ready_at FROM nodes \
           WHERE req_id = q.req AND status = 'ready' AND ready_at <= $2 \
             AND (ready_at, id) > ($3, $4) \
           ORDER BY ready_at, id LIMIT $5) AS n \
         ORDER BY n.ready_at, n.id LIMIT $5",
        &[&reqs, &db.now, &after.0, &after.1, &batch],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Ready {
            id: r.at(0)?,
            run_id: r.at(1)?,
            idx: r.u32_at(2)?,
            ready_at: r.at(3)?,
        })
    })
    .collect()
}

/// Opens an attempt of `node` for the agent, unless it is no longer ready, its run is
/// locked out of order, or a resource it names is held.
async fn take(
    db: &mut Db<'_>,
    agent_id: &str,
    node: &Ready,
    until: i64,
) -> Result<Option<Assignment>> {
    let Some(run) = db.try_lock_run(&node.run_id).await? else {
        return Ok(None);
    };
    let version_id = run.version_id.clone();
    let compiled = db.cache.version(db, &version_id).await?;
    let spec = compiled.node(node.idx)?;
    let resource_names: Vec<&str> = spec.resources.iter().map(|r| r.name.as_str()).collect();
    if !spec.resources.is_empty() && !resources_free(db, &resource_names).await? {
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
        let held = db
            .execute(
                "taking resources",
                "INSERT INTO resource_holds (resource, attempt_id) \
                 SELECT r, $2 FROM unnest($1::text[]) AS r ON CONFLICT DO NOTHING",
                &[&resource_names, &attempt_id],
            )
            .await?;
        if held != spec.resources.len() as u64 {
            // `resources_free` holds their advisory locks, so no other claim can have
            // taken one since; refuse rather than share a resource.
            return Err(StoreError::Conflict(format!(
                "a resource of node {} of run {} was taken meanwhile",
                spec.id, node.run_id
            )));
        }
    }
    db.lock_run(&node.run_id)
        .await?
        .counts
        .shift(NodeState::Ready, NodeState::Pending, 1);
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

/// Whether none of these resources is held, taking each one's advisory lock (until the
/// transaction ends) so no other claim can take it meanwhile.
///
/// Nothing here waits: a resource another claim is taking right now fails its try-lock
/// and counts as held, and a hold that is being released still shows until it commits.
/// The holds are read after the locks are taken, so a claim that took one and committed
/// just before is seen.
async fn resources_free(db: &Db<'_>, resources: &[&str]) -> Result<bool> {
    let locked: bool = db
        .query_one(
            "checking resources",
            "SELECT COALESCE(bool_and( \
               pg_try_advisory_xact_lock(hashtextextended('baton:resource:' || r, 0))), TRUE) \
             FROM unnest($1::text[]) AS r",
            &[&resources],
        )
        .await?
        .at(0)?;
    if !locked {
        return Ok(false);
    }
    let held = db
        .query_opt(
            "checking resources",
            "SELECT 1 FROM resource_holds WHERE resource = ANY($1) LIMIT 1",
            &[&resources],
        )
        .await?;
    Ok(held.is_none())
}

/// When the earliest backing-off node the agent could run becomes claimable.
async fn next_ready_at(db: &Db<'_>, reqs: &[i64]) -> Result<Option<i64>> {
    if reqs.is_empty() {
        return Ok(None);
    }
    db.query_one(
        "finding backing-off nodes",
        "SELECT MIN(x.at) FROM unnest($1::bigint[]) AS q(req) \
         CROSS JOIN LATERAL ( \
           SELECT MIN(ready_at) AS at FROM nodes \
           WHERE req_id = q.req AND status = 'ready' AND ready_at > $2) AS x",
        &[&reqs, &db.now],
    )
    .await?
    .at(0)
}
