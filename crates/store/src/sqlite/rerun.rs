//! Re-runs (`baton runs retry`): a new run of a finished run's version that keeps the old
//! run's successes and runs the rest.
//!
//! A kept node starts as `success` with no attempt of its own and names, in `reused_from`,
//! the run whose attempt succeeded (following earlier re-runs back to it). Its children
//! count it as met, exactly as if it had just succeeded.

use baton_core::NodeState;
use rusqlite::params;

use super::cache::Compiled;
use super::db::{Db, SqlResult, state};
use super::outputs;
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

    let plan = plan(&compiled, id, kept_from, from_idx)?;
    let (run, _) = runs::insert(
        db,
        &compiled,
        old.version_id.clone(),
        old.version,
        Some(old.id.clone()),
        old.priority,
        &plan,
    )?;
    outputs::keep_attempts(db, &old.id, &run.id)?;
    Ok(RunCreated {
        run: run_doc::load(db, &run.id)?,
    })
}

/// Which nodes a re-run of run `id` runs again and how each starts: every node not kept
/// (`kept_from[i]` names the run whose success is kept), `from`, and everything below them;
/// the rest are kept as successes, and each node that runs again is gated on them by its
/// trigger rule ([`runs::plan_nodes`]). Shared by both backends.
pub(crate) fn plan(
    compiled: &Compiled,
    id: &str,
    mut kept_from: Vec<Option<String>>,
    from_idx: Option<u32>,
) -> Result<Vec<NodeStart>> {
    let dag = &compiled.dag;
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
    for (slot, &runs_again) in kept_from.iter_mut().zip(&again) {
        if runs_again {
            *slot = None;
        }
    }
    Ok(runs::plan_nodes(compiled, kept_from))
}
