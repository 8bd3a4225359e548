//! Outputs and inputs: what an attempt wrote to `$BATON_OUTPUT`, kept on the attempt as a
//! JSON object, and handed to the nodes that need its node when they are claimed.
//!
//! Outputs are written only by an accepted, new report (never by a repeat), so a repeated
//! report stays a no-op. `runs.has_outputs` is set with the first outputs of a run, and a
//! claim of a run without it never looks for inputs. A node's inputs come from the current
//! attempt (`nodes.attempt_id`) of each node it needs; for a node a re-run kept, that is
//! the attempt it keeps (see [`keep_attempts`]).

use std::collections::BTreeMap;

use baton_api::{AttemptRef, AttemptReport};
use baton_core::Outputs;
use rusqlite::params;

use super::cache::Compiled;
use super::db::{Db, SqlResult, from_json, to_json};
use super::report;
use crate::{Reported, Result};

/// [`report::report`], then the outputs of a report that ended the attempt now.
pub(crate) fn report(db: &Db<'_>, agent_id: &str, r: &AttemptReport) -> Result<Reported> {
    let at = AttemptRef {
        attempt_id: r.attempt_id,
        fence: r.fence,
    };
    let reported = report::report(db, agent_id, at, r.outcome, r.message.as_deref())?;
    if !reported.duplicate {
        store(db, r.attempt_id, &r.outputs)?;
    }
    Ok(reported)
}

/// Keeps an attempt's outputs and marks its run as having some; nothing for none.
pub(crate) fn store(db: &Db<'_>, attempt_id: i64, outputs: &Outputs) -> Result<()> {
    if outputs.is_empty() {
        return Ok(());
    }
    let json = to_json("encoding outputs", outputs)?;
    db.conn
        .prepare_cached("UPDATE attempts SET outputs = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![attempt_id, json]))
        .ctx("storing outputs")?;
    db.conn
        .prepare_cached(
            "UPDATE runs SET has_outputs = 1 \
             WHERE id = (SELECT run_id FROM attempts WHERE id = ?1) AND has_outputs = 0",
        )
        .and_then(|mut s| s.execute([attempt_id]))
        .ctx("storing outputs")?;
    Ok(())
}

/// The outputs of the nodes node `idx` of run `run_id` needs, by node id, from each one's
/// current attempt; needs without outputs are left out.
pub(crate) fn inputs(
    db: &Db<'_>,
    run_id: &str,
    compiled: &Compiled,
    idx: u32,
) -> Result<BTreeMap<String, Outputs>> {
    let needs = compiled.dag.needs(idx);
    let mut out = BTreeMap::new();
    if needs.is_empty() {
        return Ok(out);
    }
    let list = to_json("finding inputs", &needs)?;
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT n.idx, a.outputs FROM nodes n JOIN attempts a ON a.id = n.attempt_id \
             WHERE n.run_id = ?1 AND n.idx IN (SELECT value FROM json_each(?2)) \
               AND a.outputs IS NOT NULL",
        )
        .ctx("finding inputs")?;
    let rows = stmt
        .query_map(params![run_id, list], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
        })
        .ctx("finding inputs")?;
    for row in rows {
        let (need, json) = row.ctx("finding inputs")?;
        let spec = compiled.node(need)?;
        out.insert(spec.id.clone(), from_json("decoding outputs", &json)?);
    }
    Ok(out)
}

/// Points the nodes a re-run kept at the attempts they keep, so their outputs still reach
/// the nodes below them; the new run has outputs when the old one had.
pub(crate) fn keep_attempts(db: &Db<'_>, old_run: &str, new_run: &str) -> Result<()> {
    db.conn
        .prepare_cached(
            "UPDATE nodes SET attempt_id = \
               (SELECT o.attempt_id FROM nodes o WHERE o.run_id = ?1 AND o.idx = nodes.idx) \
             WHERE run_id = ?2 AND reused_from IS NOT NULL",
        )
        .and_then(|mut s| s.execute(params![old_run, new_run]))
        .ctx("keeping outputs")?;
    db.conn
        .prepare_cached(
            "UPDATE runs SET has_outputs = (SELECT has_outputs FROM runs WHERE id = ?1) \
             WHERE id = ?2",
        )
        .and_then(|mut s| s.execute(params![old_run, new_run]))
        .ctx("keeping outputs")?;
    Ok(())
}
