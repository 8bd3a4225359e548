//! Re-runs (`baton runs retry`): a new run of a finished run's version that keeps the old
//! run's successes and runs the rest. The plan is the SQLite backend's, word for word; only
//! the reads differ.

use baton_core::NodeState;

use super::db::{Db, RowExt};
use super::run_doc;
use super::runs::{self, NodeStart};
use crate::{Result, RunCreated, StoreError};

/// Creates the re-run of run `id`: everything not successful runs again, and with `from`,
/// that node and everything downstream of it too.
pub(crate) async fn retry(db: &mut Db<'_>, id: &str, from: Option<&str>) -> Result<RunCreated> {
    // A finished run never changes again, so it needs no lock.
    let old = runs::get(db, id).await?;
    if !old.status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "run {id} is {}: only a finished run can be retried",
            old.status
        )));
    }
    let compiled = db.cache.version(db, &old.version_id).await?;
    let dag = &compiled.dag;
    let from_idx = match from {
        Some(node) => Some(
            dag.index(node)
                .ok_or_else(|| StoreError::NotFound(format!("node {node} in run {id}")))?,
        ),
        None => None,
    };

    let mut kept_from: Vec<Option<String>> = vec![None; dag.len()];
    let rows = db
        .query(
            "reading the run to retry",
            "SELECT idx, status, reused_from FROM nodes WHERE run_id = $1",
            &[&id],
        )
        .await?;
    for r in &rows {
        let idx = r.u32_at(0)?;
        let status: NodeState = r.state(1)?;
        let reused_from: Option<String> = r.at(2)?;
        if status == NodeState::Success
            && let Some(slot) = kept_from.get_mut(idx as usize)
        {
            *slot = Some(reused_from.unwrap_or_else(|| id.to_owned()));
        }
    }

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
    let (run, _) = runs::insert(
        db,
        &compiled,
        old.version_id.clone(),
        old.version,
        Some(old.id.clone()),
        &plan,
    )
    .await?;
    Ok(RunCreated {
        run: run_doc::load(db, &run.id).await?,
    })
}
