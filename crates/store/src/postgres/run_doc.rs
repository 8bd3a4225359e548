//! The run document: every node with its attempts, and why ready nodes wait.

use baton_api::{AttemptDoc, RunDoc, format_time};
use baton_core::NodeState;

use super::db::{Db, RowExt, from_json};
use super::runs::{self, RunRow};
use crate::Result;
use crate::sqlite::cache::Compiled;
use crate::sqlite::run_doc::{NodeNote, Offer, node_docs};

/// The document of run `id`; `NotFound` when absent.
pub(crate) async fn load(db: &Db<'_>, id: &str) -> Result<RunDoc> {
    let run = match db.held(id) {
        Some(held) => held.clone(),
        None => runs::get(db, id).await?,
    };
    let compiled = db.cache.version(db, &run.version_id).await?;
    let mut states = vec![NodeState::Waiting; compiled.dag.len()];
    let mut notes = vec![NodeNote::default(); compiled.dag.len()];
    let rows = db
        .query(
            "reading a run",
            "SELECT n.idx, n.status, n.reason, n.message, n.reused_from, a.outputs \
             FROM nodes n LEFT JOIN attempts a ON a.id = n.attempt_id WHERE n.run_id = $1",
            &[&id],
        )
        .await?;
    for r in &rows {
        let idx = r.u32_at(0)? as usize;
        if let Some(slot) = states.get_mut(idx) {
            *slot = r.state(1)?;
        }
        if let Some(slot) = notes.get_mut(idx) {
            *slot = NodeNote {
                reason: r.opt_state(2)?,
                message: r.at(3)?,
                reused_from: r.at(4)?,
                outputs: match r.at::<Option<&str>>(5)? {
                    Some(json) => from_json("decoding outputs", json)?,
                    None => Default::default(),
                },
            };
        }
    }
    let retried_by: Vec<String> = db
        .query(
            "reading a run",
            "SELECT id FROM runs WHERE retry_of = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.at(0))
        .collect::<Result<_>>()?;
    let mut attempts: Vec<Vec<AttemptDoc>> = vec![Vec::new(); states.len()];
    let rows = db
        .query(
            "reading a run",
            "SELECT n.idx, a.number, a.status, a.reason, a.exit_code, a.message, \
             a.claimed_at, a.started_at, a.finished_at, COALESCE(g.name, a.agent_id) \
             FROM nodes n JOIN attempts a ON a.node_id = n.id \
             LEFT JOIN agents g ON g.id = a.agent_id \
             WHERE n.run_id = $1 ORDER BY a.id",
            &[&id],
        )
        .await?;
    for r in &rows {
        let idx = r.u32_at(0)? as usize;
        let doc = AttemptDoc {
            number: r.u32_at(1)?,
            status: r.state(2)?,
            reason: r.opt_state(3)?,
            exit_code: r.at(4)?,
            message: r.at(5)?,
            claimed_at: format_time(r.at(6)?),
            started_at: r.at::<Option<i64>>(7)?.map(format_time),
            finished_at: r.at::<Option<i64>>(8)?.map(format_time),
            agent: r.at(9)?,
        };
        if let Some(list) = attempts.get_mut(idx) {
            list.push(doc);
        }
    }
    let mut doc = build(db, &run, &compiled, &states, attempts, notes).await?;
    doc.retried_by = retried_by;
    Ok(doc)
}

/// The document of a run just created: no attempts yet.
pub(crate) async fn fresh(
    db: &Db<'_>,
    run: &RunRow,
    compiled: &Compiled,
    states: &[NodeState],
) -> Result<RunDoc> {
    let notes = vec![NodeNote::default(); states.len()];
    build(
        db,
        run,
        compiled,
        states,
        vec![Vec::new(); states.len()],
        notes,
    )
    .await
}

async fn build(
    db: &Db<'_>,
    run: &RunRow,
    compiled: &Compiled,
    states: &[NodeState],
    attempts: Vec<Vec<AttemptDoc>>,
    notes: Vec<NodeNote>,
) -> Result<RunDoc> {
    // Only a ready node is explained, so agents are read only when one is ready.
    let online = if states.contains(&NodeState::Ready) {
        online_agents(db).await?
    } else {
        Vec::new()
    };
    let nodes = node_docs(compiled, states, attempts, notes, &online);
    Ok(RunDoc {
        id: run.id.clone(),
        workflow: run.workflow.clone(),
        version: run.version,
        status: run.status,
        created_at: format_time(run.created_at),
        started_at: run.started_at.map(format_time),
        finished_at: run.finished_at.map(format_time),
        cancel_requested: run.cancel_requested,
        reason: run.reason,
        retry_of: run.retry_of.clone(),
        priority: run.priority,
        message: run.message.clone(),
        retried_by: Vec::new(),
        rev: run.rev,
        nodes,
    })
}

/// Labels and functions of agents seen within twice the lease.
pub(crate) async fn online_agents(db: &Db<'_>) -> Result<Vec<Offer>> {
    let since = db
        .now
        .saturating_sub(i64::try_from(db.cfg.lease_ms.saturating_mul(2)).unwrap_or(i64::MAX));
    let rows = db
        .query(
            "reading agents",
            "SELECT labels, functions FROM agents \
             WHERE deregistered_at IS NULL AND last_seen_at >= $1",
            &[&since],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push((
            from_json("decoding agent labels", r.at(0)?)?,
            from_json("decoding agent functions", r.at(1)?)?,
        ));
    }
    Ok(out)
}
