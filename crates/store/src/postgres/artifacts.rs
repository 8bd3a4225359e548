//! Artifact records: which files an attempt left, and where they belong.

use baton_api::{ArtifactDoc, AttemptRef};

use super::attempts::{self, owned};
use super::db::{Db, RowExt};
use super::runs;
use crate::sqlite::late;
use crate::{ArtifactTarget, Result, StoreError};

/// Checks that the agent owns the attempt and may still send its files (`late`), and says
/// where they belong.
pub(crate) async fn target(db: &Db<'_>, agent_id: &str, at: AttemptRef) -> Result<ArtifactTarget> {
    let attempt = owned(attempts::load(db, at.attempt_id).await?, agent_id, at)?;
    let r = db
        .query_one(
            "finding an attempt's node",
            "SELECT idx, attempt_id IS NOT DISTINCT FROM $2 FROM nodes WHERE id = $1",
            &[&attempt.node_id, &attempt.id],
        )
        .await?;
    let (idx, current): (u32, bool) = (r.u32_at(0)?, r.at(1)?);
    if !late::takes_output(attempt.status, attempt.reason, current) {
        return Err(StoreError::Stale(at.attempt_id));
    }
    let run = runs::get(db, &attempt.run_id).await?;
    let compiled = db.cache.version(db, &run.version_id).await?;
    Ok(ArtifactTarget {
        run_id: run.id,
        node: compiled.node(idx)?.id.clone(),
        attempt: attempt.number,
    })
}

/// Records a stored file, replacing an earlier record of the same path.
pub(crate) async fn record(
    db: &Db<'_>,
    attempt_id: i64,
    path: &str,
    size: u64,
    sha256: &str,
) -> Result<()> {
    let Some(attempt) = attempts::load(db, attempt_id).await? else {
        return Err(StoreError::NotFound(format!("attempt {attempt_id}")));
    };
    let size = i64::try_from(size)
        .map_err(|_| StoreError::Invalid(format!("artifact {path} is too large")))?;
    db.execute(
        "recording an artifact",
        "INSERT INTO artifacts (attempt_id, run_id, path, size, sha256, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (attempt_id, path) DO UPDATE SET \
           size = excluded.size, sha256 = excluded.sha256, created_at = excluded.created_at",
        &[&attempt_id, &attempt.run_id, &path, &size, &sha256, &db.now],
    )
    .await?;
    Ok(())
}

/// A run's artifacts by node, attempt and path.
pub(crate) async fn list(db: &Db<'_>, run_id: &str) -> Result<Vec<ArtifactDoc>> {
    let run = runs::get(db, run_id).await?;
    let compiled = db.cache.version(db, &run.version_id).await?;
    let rows = db
        .query(
            "listing artifacts",
            "SELECT n.idx, a.number, f.path, f.size, f.sha256 \
             FROM artifacts f JOIN attempts a ON a.id = f.attempt_id \
             JOIN nodes n ON n.id = a.node_id \
             WHERE f.run_id = $1 ORDER BY n.idx, a.number, f.path",
            &[&run_id],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(ArtifactDoc {
            node: compiled.node(r.u32_at(0)?)?.id.clone(),
            attempt: r.u32_at(1)?,
            path: r.at(2)?,
            size: r.at::<i64>(3)?.max(0) as u64,
            sha256: r.at(4)?,
        });
    }
    Ok(out)
}
