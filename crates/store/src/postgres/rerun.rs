//! Re-runs (`baton runs retry`): a new run of a finished run's version that keeps the old
//! run's successes and runs the rest. The plan comes from `sqlite::rerun::plan`, shared; only
//! the reads differ.

use baton_core::NodeState;

use super::db::{Db, RowExt};
use super::outputs;
use super::run_doc;
use super::runs;
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

    let plan = crate::sqlite::rerun::plan(&compiled, id, kept_from, from_idx)?;
    let (run, _) = runs::insert(
        db,
        &compiled,
        old.version_id.clone(),
        old.version,
        Some(old.id.clone()),
        old.priority,
        &plan,
    )
    .await?;
    outputs::keep_attempts(db, &old.id, &run.id).await?;
    Ok(RunCreated {
        run: run_doc::load(db, &run.id).await?,
    })
}
