//! Outputs and inputs, as `sqlite::outputs` keeps them, in PostgreSQL's dialect.
//!
//! The run's lock is held whenever outputs are stored (by the report that stores them), and
//! the locked run row is flagged too, so a claim later in the same transaction (a batch of
//! reports) sees them.

use std::collections::BTreeMap;

use baton_api::{AttemptRef, AttemptReport};
use baton_core::Outputs;

use super::attempts::Locked;
use super::db::{Db, RowExt, from_json, to_json};
use super::report;
use crate::sqlite::cache::Compiled;
use crate::{Reported, Result};

/// [`report::report`], then the outputs of a report that ended the attempt now.
pub(crate) async fn report(db: &mut Db<'_>, agent_id: &str, r: &AttemptReport) -> Result<Reported> {
    let at = AttemptRef {
        attempt_id: r.attempt_id,
        fence: r.fence,
    };
    let reported = report::report(db, agent_id, at, r.outcome, r.message.as_deref()).await?;
    if !reported.duplicate {
        store(db, r.attempt_id, &r.outputs).await?;
    }
    Ok(reported)
}

/// [`report::report_locked`], then the outputs of a report that ended the attempt now.
pub(crate) async fn report_locked(
    db: &mut Db<'_>,
    locked: &mut Locked,
    r: &AttemptReport,
) -> Result<Reported> {
    let reported = report::report_locked(db, locked, r.outcome, r.message.as_deref()).await?;
    if !reported.duplicate {
        store(db, r.attempt_id, &r.outputs).await?;
    }
    Ok(reported)
}

/// Keeps an attempt's outputs and marks its run, which must be locked, as having some.
async fn store(db: &mut Db<'_>, attempt_id: i64, outputs: &Outputs) -> Result<()> {
    if outputs.is_empty() {
        return Ok(());
    }
    let json = to_json("encoding outputs", outputs)?;
    let run_id: String = db
        .query_one(
            "storing outputs",
            "UPDATE attempts SET outputs = $2 WHERE id = $1 RETURNING run_id",
            &[&attempt_id, &json],
        )
        .await?
        .at(0)?;
    let run = db.lock_run(&run_id).await?;
    if !run.has_outputs {
        run.has_outputs = true;
        db.execute(
            "storing outputs",
            "UPDATE runs SET has_outputs = TRUE WHERE id = $1",
            &[&run_id],
        )
        .await?;
    }
    Ok(())
}

/// The outputs of the nodes node `idx` of run `run_id` needs, by node id, from each one's
/// current attempt; needs without outputs are left out.
pub(crate) async fn inputs(
    db: &Db<'_>,
    run_id: &str,
    compiled: &Compiled,
    idx: u32,
) -> Result<BTreeMap<String, Outputs>> {
    let needs: Vec<i64> = compiled
        .dag
        .needs(idx)
        .iter()
        .map(|&n| i64::from(n))
        .collect();
    let mut out = BTreeMap::new();
    if needs.is_empty() {
        return Ok(out);
    }
    let rows = db
        .query(
            "finding inputs",
            "SELECT n.idx, a.outputs FROM nodes n JOIN attempts a ON a.id = n.attempt_id \
             WHERE n.run_id = $1 AND n.idx = ANY($2) AND a.outputs IS NOT NULL",
            &[&run_id, &needs],
        )
        .await?;
    for r in &rows {
        let spec = compiled.node(r.u32_at(0)?)?;
        out.insert(spec.id.clone(), from_json("decoding outputs", r.at(1)?)?);
    }
    Ok(out)
}

/// Points the nodes a re-run kept at the attempts they keep, so their outputs still reach
/// the nodes below them; the new run has outputs when the old one had.
pub(crate) async fn keep_attempts(db: &Db<'_>, old_run: &str, new_run: &str) -> Result<()> {
    db.execute(
        "keeping outputs",
        "UPDATE nodes n SET attempt_id = o.attempt_id FROM nodes o \
         WHERE n.run_id = $2 AND n.reused_from IS NOT NULL \
           AND o.run_id = $1 AND o.idx = n.idx",
        &[&old_run, &new_run],
    )
    .await?;
    let had = db
        .query_one(
            "keeping outputs",
            "SELECT has_outputs FROM runs WHERE id = $1",
            &[&old_run],
        )
        .await?
        .at::<bool>(0)?;
    if had {
        db.execute(
            "keeping outputs",
            "UPDATE runs SET has_outputs = TRUE WHERE id = $1",
            &[&new_run],
        )
        .await?;
    }
    Ok(())
}
