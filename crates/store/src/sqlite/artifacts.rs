//! Artifact records: which files an attempt left, and where they belong.

use baton_api::{ArtifactDoc, AttemptRef};
use rusqlite::params;

use super::attempts::AttemptRow;
use super::db::{Db, SqlResult};
use super::late;
use super::runs::RunRow;
use crate::{ArtifactTarget, Result, StoreError};

/// Checks that the agent owns the attempt and may still send its files (files are
/// collected after the work ends, but not from a reaped or superseded attempt: `late`),
/// and says where they belong.
pub(crate) fn target(db: &Db<'_>, agent_id: &str, at: AttemptRef) -> Result<ArtifactTarget> {
    let attempt = AttemptRow::owned(db, agent_id, at)?;
    let (idx, current): (u32, bool) = db
        .conn
        .prepare_cached("SELECT idx, attempt_id IS ?2 FROM nodes WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![attempt.node_id, attempt.id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .ctx("finding an attempt's node")?;
    if !late::takes_output(attempt.status, attempt.reason, current) {
        return Err(StoreError::Stale(at.attempt_id));
    }
    let run = RunRow::get(db, &attempt.run_id)?;
    let compiled = db.cache.version(db, &run.version_id)?;
    Ok(ArtifactTarget {
        run_id: run.id,
        node: compiled.node(idx)?.id.clone(),
        attempt: attempt.number,
    })
}

/// Records a stored file, replacing an earlier record of the same path.
pub(crate) fn record(
    db: &Db<'_>,
    attempt_id: i64,
    path: &str,
    size: u64,
    sha256: &str,
) -> Result<()> {
    let Some(attempt) = AttemptRow::load(db, attempt_id)? else {
        return Err(StoreError::NotFound(format!("attempt {attempt_id}")));
    };
    let size = i64::try_from(size)
        .map_err(|_| StoreError::Invalid(format!("artifact {path} is too large")))?;
    db.conn
        .prepare_cached(
            "INSERT INTO artifacts (attempt_id, run_id, path, size, sha256, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (attempt_id, path) DO UPDATE SET \
               size = excluded.size, sha256 = excluded.sha256, created_at = excluded.created_at",
        )
        .and_then(|mut s| {
            s.execute(params![
                attempt_id,
                attempt.run_id,
                path,
                size,
                sha256,
                db.now
            ])
        })
        .ctx("recording an artifact")?;
    Ok(())
}

/// A run's artifacts by node, attempt and path.
pub(crate) fn list(db: &Db<'_>, run_id: &str) -> Result<Vec<ArtifactDoc>> {
    let run = RunRow::get(db, run_id)?;
    let compiled = db.cache.version(db, &run.version_id)?;
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT n.idx, a.number, f.path, f.size, f.sha256 \
             FROM artifacts f JOIN attempts a ON a.id = f.attempt_id \
             JOIN nodes n ON n.id = a.node_id \
             WHERE f.run_id = ?1 ORDER BY n.idx, a.number, f.path",
        )
        .ctx("listing artifacts")?;
    let rows = stmt
        .query_map([run_id], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .ctx("listing artifacts")?;
    let mut out = Vec::new();
    for row in rows {
        let (idx, attempt, path, size, sha256) = row.ctx("listing artifacts")?;
        out.push(ArtifactDoc {
            node: compiled.node(idx)?.id.clone(),
            attempt,
            path,
            size: size.max(0) as u64,
            sha256,
        });
    }
    Ok(out)
}
