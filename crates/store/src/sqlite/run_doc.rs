//! The run document: every node with its attempts, and why ready nodes wait.

use std::collections::{BTreeMap, HashMap};

use baton_api::{AttemptDoc, NodeDoc, RunDoc, format_time};
use baton_core::{NodeState, Outputs, Reason, Requirement, missing_requirements};

use super::cache::{Compiled, requirement_of};
use super::db::{Db, SqlResult, from_json, opt_state, state};
use super::runs::RunRow;
use crate::Result;

/// The document of run `id`; `NotFound` when absent.
pub(crate) fn load(db: &Db<'_>, id: &str) -> Result<RunDoc> {
    let run = RunRow::get(db, id)?;
    let compiled = db.cache.version(db, &run.version_id)?;
    let mut states = vec![NodeState::Waiting; compiled.dag.len()];
    let mut notes = vec![NodeNote::default(); compiled.dag.len()];
    {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT n.idx, n.status, n.reason, n.message, n.reused_from, a.outputs \
                 FROM nodes n LEFT JOIN attempts a ON a.id = n.attempt_id WHERE n.run_id = ?1",
            )
            .ctx("reading a run")?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    state::<NodeState>(r, 1)?,
                    NodeNote {
                        reason: opt_state(r, 2)?,
                        message: r.get(3)?,
                        reused_from: r.get(4)?,
                        outputs: Default::default(),
                    },
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .ctx("reading a run")?;
        for row in rows {
            let (idx, s, mut note, outputs) = row.ctx("reading a run")?;
            if let Some(json) = outputs {
                note.outputs = from_json("decoding outputs", &json)?;
            }
            if let Some(slot) = states.get_mut(idx as usize) {
                *slot = s;
            }
            if let Some(slot) = notes.get_mut(idx as usize) {
                *slot = note;
            }
        }
    }
    let retried_by: Vec<String> = {
        let mut stmt = db
            .conn
            .prepare_cached("SELECT id FROM runs WHERE retry_of = ?1 ORDER BY id")
            .ctx("reading a run")?;
        let rows = stmt.query_map([id], |r| r.get(0)).ctx("reading a run")?;
        rows.collect::<rusqlite::Result<_>>().ctx("reading a run")?
    };
    let mut attempts: Vec<Vec<AttemptDoc>> = vec![Vec::new(); states.len()];
    {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT n.idx, a.number, a.status, a.reason, a.exit_code, a.message, \
                 a.claimed_at, a.started_at, a.finished_at, COALESCE(g.name, a.agent_id) \
                 FROM nodes n JOIN attempts a ON a.node_id = n.id \
                 LEFT JOIN agents g ON g.id = a.agent_id \
                 WHERE n.run_id = ?1 ORDER BY a.id",
            )
            .ctx("reading a run")?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    AttemptDoc {
                        number: r.get(1)?,
                        status: state(r, 2)?,
                        reason: opt_state(r, 3)?,
                        exit_code: r.get(4)?,
                        message: r.get(5)?,
                        claimed_at: format_time(r.get(6)?),
                        started_at: r.get::<_, Option<i64>>(7)?.map(format_time),
                        finished_at: r.get::<_, Option<i64>>(8)?.map(format_time),
                        agent: r.get(9)?,
                    },
                ))
            })
            .ctx("reading a run")?;
        for row in rows {
            let (idx, doc) = row.ctx("reading a run")?;
            if let Some(list) = attempts.get_mut(idx as usize) {
                list.push(doc);
            }
        }
    }
    let mut doc = build(db, &run, &compiled, &states, attempts, notes)?;
    doc.retried_by = retried_by;
    Ok(doc)
}

/// What a node row says beyond its state.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeNote {
    pub(crate) reason: Option<Reason>,
    pub(crate) message: Option<String>,
    pub(crate) reused_from: Option<String>,
    /// The outputs of its current attempt.
    pub(crate) outputs: Outputs,
}

/// The document of a run just created: no attempts yet.
pub(crate) fn fresh(
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
}

/// An online agent's labels and functions.
pub(crate) type Offer = (BTreeMap<String, String>, Vec<String>);

fn build(
    db: &Db<'_>,
    run: &RunRow,
    compiled: &Compiled,
    states: &[NodeState],
    attempts: Vec<Vec<AttemptDoc>>,
    notes: Vec<NodeNote>,
) -> Result<RunDoc> {
    // Only a ready node is explained, so agents are read only when one is ready.
    let online = if states.contains(&NodeState::Ready) {
        online_agents(db)?
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

/// Every node's document, in one pass over the version's nodes; shared by both backends.
///
/// A ready node says what no online agent offers; nodes with the same requirement share
/// one explanation.
pub(crate) fn node_docs(
    compiled: &Compiled,
    states: &[NodeState],
    attempts: Vec<Vec<AttemptDoc>>,
    notes: Vec<NodeNote>,
    online: &[Offer],
) -> BTreeMap<String, NodeDoc> {
    let mut explained: HashMap<i64, Option<String>> = HashMap::new();
    let mut nodes = BTreeMap::new();
    let rows = compiled.workflow.nodes.iter().enumerate().zip(attempts);
    for (((idx, spec), node_attempts), note) in rows.zip(notes) {
        let status = states.get(idx).copied().unwrap_or(NodeState::Waiting);
        let waiting_for = if status == NodeState::Ready {
            let req_id = compiled.reqs.get(idx).copied().unwrap_or_default();
            explained
                .entry(req_id)
                .or_insert_with(|| explain(&requirement_of(spec), online))
                .clone()
        } else {
            None
        };
        nodes.insert(
            spec.id.clone(),
            NodeDoc {
                status,
                needs: spec.needs.clone(),
                waiting_for,
                reason: note.reason,
                message: note.message,
                reused_from: note.reused_from,
                outputs: note.outputs,
                attempts: node_attempts,
            },
        );
    }
    nodes
}

pub(crate) fn explain(req: &Requirement, agents: &[Offer]) -> Option<String> {
    missing_requirements(req, agents.iter().map(|(l, f)| (l, f.as_slice())))
}

/// Labels and functions of agents seen within twice the lease.
pub(crate) fn online_agents(db: &Db<'_>) -> Result<Vec<Offer>> {
    let since = db
        .now
        .saturating_sub(i64::try_from(db.cfg.lease_ms.saturating_mul(2)).unwrap_or(i64::MAX));
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT labels, functions FROM agents \
             WHERE deregistered_at IS NULL AND last_seen_at >= ?1",
        )
        .ctx("reading agents")?;
    let rows = stmt
        .query_map([since], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .ctx("reading agents")?;
    let mut out = Vec::new();
    for row in rows {
        let (labels, functions) = row.ctx("reading agents")?;
        out.push((
            from_json("decoding agent labels", &labels)?,
            from_json("decoding agent functions", &functions)?,
        ));
    }
    Ok(out)
}
