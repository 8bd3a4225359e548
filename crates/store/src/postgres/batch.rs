//! A batch of reports and the claim that refills the slots they free, in one transaction.
//!
//! The agent's row is touched first and the reported attempts' runs and rows are locked up
//! front, in id order, before anything changes: the lock order every writer follows.

use std::collections::HashMap;

use baton_api::AttemptReport;

use super::attempts::{self, Locked, touch_agent};
use super::claim::take_ready;
use super::db::Db;
use super::outputs;
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
    db.lock_runs_of(&ids).await?;
    let mut locked: HashMap<i64, Locked> = attempts::lock_many(db, &ids)
        .await?
        .into_iter()
        .map(|l| (l.attempt.id, l))
        .collect();
    for r in reports {
        if !r.outcome.state.is_terminal() {
            return Err(StoreError::Invalid(format!(
                "an attempt cannot end as {}",
                r.outcome.state
            )));
        }
        // A stale report is refused before it writes anything, so the others stand.
        let mine = locked
            .get_mut(&r.attempt_id)
            .filter(|l| l.attempt.agent_id == agent_id && l.attempt.fence == r.fence);
        let Some(mine) = mine else {
            out.reports.push(None);
            continue;
        };
        match outputs::report_locked(db, mine, r).await {
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
