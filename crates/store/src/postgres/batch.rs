//! A batch of reports and the claim that refills the slots they free, in one transaction.
//!
//! The agent's row is touched first and the reported attempts' runs and rows are locked up
//! front, in id order, before anything changes: the lock order every writer follows.

use baton_api::{AttemptRef, AttemptReport};

use super::attempts::{self, touch_agent};
use super::claim::take_ready;
use super::db::Db;
use super::report::report;
use crate::{BatchReported, Result, StoreError};

/// Records each report, then hands the agent up to `want` ready nodes.
pub(crate) async fn report_batch(
    db: &mut Db<'_>,
    agent_id: &str,
    reports: &[AttemptReport],
    want: u32,
    lease_ms: u64,
) -> Result<BatchReported> {
    let mut out = BatchReported {
        reports: Vec::with_capacity(reports.len()),
        ..BatchReported::default()
    };
    if want > 0 {
        touch_agent(db, agent_id).await?;
    }
    let ids: Vec<i64> = reports.iter().map(|r| r.attempt_id).collect();
    let runs: Vec<String> = db
        .query(
            "finding the reported runs",
            "SELECT DISTINCT run_id FROM attempts WHERE id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| super::db::RowExt::at(r, 0))
        .collect::<Result<_>>()?;
    db.lock_runs(&runs).await?;
    attempts::lock_many(db, &ids).await?;
    for r in reports {
        let at = AttemptRef {
            attempt_id: r.attempt_id,
            fence: r.fence,
        };
        // A stale report is refused before it writes anything, so the others stand.
        match report(db, agent_id, at, r.outcome, r.message.as_deref()).await {
            Ok(reported) => out.reports.push(Some(reported)),
            Err(StoreError::Stale(_)) => out.reports.push(None),
            Err(e) => return Err(e),
        }
    }
    if want > 0 {
        out.assignments = take_ready(db, agent_id, want, lease_ms).await?.assignments;
    }
    out.woke = db.woke();
    Ok(out)
}
