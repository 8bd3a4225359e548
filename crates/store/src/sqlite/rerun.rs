//! Re-runs (`baton runs retry`): a new run of a finished run's version that keeps the old
//! run's successes and runs the rest.
//!
//! A kept node starts as `success` with no attempt of its own and names, in `reused_from`,
//! the run whose attempt succeeded (following earlier re-runs back to it). Its children
//! count it as met, exactly as if it had just succeeded.

use baton_core::{Dag, NodeState};
use rusqlite::params;

use super::db::{Db, SqlResult, state};
use super::run_doc;
use super::runs::{self, NodeStart, RunRow};
use crate::{Result, RunCreated, StoreError};

/// Creates the re-run of run `id`: everything not successful runs again, and with `from`,
/// that node and everything downstream of it too.
pub(crate) fn retry(db: &Db<'_>, id: &str, from: Option<&str>) -> Result<RunCreated> {
    let old = RunRow::get(db, id)?;
    if !old.status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "run {id} is {}: only a finished run can be retried",
            old.status
        )));
    }
    let compiled = db.cache.version(db, &old.version_id)?;
    let dag = &compiled.dag;
    let from_idx = match from {
        Some(node) => Some(
            dag.index(node)
                .ok_or_else(|| StoreError::NotFound(format!("node {node} in run {id}")))?,
        ),
        None => None,
    };

    let mut kept_from: Vec<Option<String>> = vec![None; dag.len()];
    {
        let mut stmt = db
            .conn
            .prepare_cached("SELECT idx, status, reused_from FROM nodes WHERE run_id = ?1")
            .ctx("reading the run to retry")?;
        let rows = stmt
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    state::<NodeState>(r, 1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .ctx("reading the run to retry")?;
        for row in rows {
            let (idx, status, reused_from) = row.ctx("reading the run to retry")?;
            if status == NodeState::Success
                && let Some(slot) = kept_from.get_mut(idx as usize)
            {
                *slot = Some(reused_from.unwrap_or_else(|| id.to_owned()));
            }
        }
    }

    let plan = plan(dag, id, kept_from, from_idx)?;
    let (run, _) = runs::insert(
        db,
        &compiled,
        old.version_id.clone(),
        old.version,
        Some(old.id.clone()),
        old.priority,
        &plan,
    )?;
    Ok(RunCreated {
        run: run_doc::load(db, &run.id)?,
    })
}

/// Which nodes a re-run of run `id` runs again and how each starts: every node not kept
/// (`kept_from[i]` names the run whose success is kept), `from`, and everything below them;
/// a node runs again only after the nodes it needs that run again. Shared by both backends.
pub(crate) fn plan(
    dag: &Dag,
    id: &str,
    mut kept_from: Vec<Option<String>>,
    from_idx: Option<u32>,
) -> Result<Vec<NodeStart>> {
    // What runs again: every node not kept, `from`, and everything below them (a node can
    // only be kept when all it needs is kept).
    let mut again = vec![false; dag.len()];
    let mut stack: Vec<u32> = (0..dag.len() as u32)
        .filter(|&i| kept_from[i as usize].is_none())
        .chain(from_idx)
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut again[i as usize], true) {
            continue;
        }
        stack.extend(dag.children(i).iter().filter(|&&c| !again[c as usize]));
    }
    if !again.contains(&true) {
        return Err(StoreError::Conflict(format!(
            "run {id} succeeded: nothing to retry; name a node to run again from"
        )));
    }

    let plan: Vec<NodeStart> = (0..dag.len() as u32)
        .map(|i| {
            if again[i as usize] {
                let remaining = dag.needs(i).iter().filter(|&&n| again[n as usize]).count() as i64;
                NodeStart {
                    status: if remaining == 0 {
                        NodeState::Ready
                    } else {
                        NodeState::Waiting
                    },
                    remaining,
                    reused_from: None,
                }
            } else {
                NodeStart {
                    status: NodeState::Success,
                    remaining: 0,
                    reused_from: kept_from[i as usize].take(),
                }
            }
        })
        .collect();
    Ok(plan)
}
