//! A batch of reports and the claim that refills the slots they free, in one transaction.
//!
//! This is the agent's hot path: a node's end and the start of whatever it made ready cost
//! one request and one commit. The claim only takes what is ready now; whether other agents
//! must be woken is decided by what it left behind.

use baton_api::AttemptReport;

use super::attempts::touch_agent;
use super::claim::take_ready;
use super::db::Db;
use super::outputs;
use crate::{BatchReported, Result, StoreError};

/// Records each report, then hands the agent up to `want` ready nodes.
pub(crate) fn report_batch(
    db: &Db<'_>,
    agent_id: &str,
    reports: &[AttemptReport],
    want: u32,
    lease_ms: u64,
) -> Result<BatchReported> {
    let mut out = BatchReported {
        reports: Vec::with_capacity(reports.len()),
        ..BatchReported::default()
    };
    for r in reports {
        // A stale report is refused before it writes anything, so the others stand.
        match outputs::report(db, agent_id, r) {
            Ok(reported) => out.reports.push(Some(reported)),
            Err(StoreError::Stale(_)) => out.reports.push(None),
            Err(e) => return Err(e),
        }
    }
    let mut taken = Vec::new();
    if want > 0 {
        touch_agent(db, agent_id)?;
        let claimed = take_ready(db, agent_id, want, lease_ms)?;
        out.assignments = claimed.assignments;
        taken = claimed.node_ids;
    }
    out.woke = db.woke(&taken);
    Ok(out)
}
