//! Workflow versions: apply, list, show.
//!
//! Applying takes a transaction-scoped advisory lock, so two replicas applying at once
//! number versions one after the other (as SQLite's single writer does) and requirement
//! rows become visible in id order, which the claim cache relies on.

use std::collections::HashSet;

use baton_api::{WorkflowDoc, WorkflowSummary, WorkflowVersion, WorkflowVersionDoc, format_time};
use baton_core::Workflow;
use tokio_postgres::Row;

use super::db::{Db, RowExt, from_json, to_json};
use crate::sqlite::cache::{requirement_key, requirement_of};
use crate::sqlite::workflows::{check, sha256_hex};
use crate::{Result, StoreError};

fn version_row(name: &str, r: &Row) -> Result<WorkflowVersion> {
    Ok(WorkflowVersion {
        name: name.to_owned(),
        version: r.at(0)?,
        created_at: format_time(r.at(1)?),
        nodes: r.at::<i64>(2)?.max(0) as usize,
        created: false,
    })
}

/// Stores a new version, or returns the latest when its definition is the same.
pub(crate) async fn apply(db: &Db<'_>, wf: &Workflow, source: &str) -> Result<WorkflowVersion> {
    check(wf)?;
    let definition = to_json("encoding a workflow", wf)?;
    let digest = sha256_hex(&definition);
    db.execute(
        "applying a workflow",
        "SELECT pg_advisory_xact_lock(hashtextextended('baton:apply', 0))",
        &[],
    )
    .await?;
    let latest = db
        .query_opt(
            "applying a workflow",
            "SELECT version, created_at, node_count, digest FROM workflow_versions \
             WHERE name = $1 ORDER BY version DESC LIMIT 1",
            &[&wf.name],
        )
        .await?;
    let next = match latest {
        Some(r) => {
            let v = version_row(&wf.name, &r)?;
            if r.at::<&str>(3)? == digest {
                return Ok(v);
            }
            v.version + 1
        }
        None => 1,
    };

    let mut seen = HashSet::new();
    let (mut keys, mut functions, mut selectors) = (Vec::new(), Vec::new(), Vec::new());
    for node in &wf.nodes {
        let req = requirement_of(node);
        let key = requirement_key(&req)?;
        if seen.insert(key.clone()) {
            keys.push(key);
            selectors.push(to_json("encoding a selector", &req.selector)?);
            functions.push(req.function);
        }
    }
    // One statement for every new requirement, under the lock taken above.
    db.execute(
        "applying a workflow",
        "INSERT INTO requirements (key, function, selector) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
         ON CONFLICT (key) DO NOTHING",
        &[&keys, &functions, &selectors],
    )
    .await?;

    db.execute(
        "applying a workflow",
        "INSERT INTO workflow_versions \
         (id, name, version, definition, source, digest, node_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &uuid::Uuid::now_v7().to_string(),
            &wf.name,
            &next,
            &definition,
            &source,
            &digest,
            &(wf.nodes.len() as i64),
            &db.now,
        ],
    )
    .await?;
    Ok(WorkflowVersion {
        name: wf.name.clone(),
        version: next,
        created_at: format_time(db.now),
        nodes: wf.nodes.len(),
        created: true,
    })
}

/// Every workflow with its latest version and its number of runs.
pub(crate) async fn list(db: &Db<'_>) -> Result<Vec<WorkflowSummary>> {
    db.query(
        "listing workflows",
        "SELECT v.name, v.version, v.created_at, \
           (SELECT COUNT(*) FROM runs r WHERE r.workflow = v.name) \
         FROM workflow_versions v \
         WHERE v.version = (SELECT MAX(w.version) FROM workflow_versions w WHERE w.name = v.name) \
         ORDER BY v.name",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(WorkflowSummary {
            name: r.at(0)?,
            latest_version: r.at(1)?,
            updated_at: format_time(r.at(2)?),
            runs: r.at(3)?,
        })
    })
    .collect()
}

/// One workflow's versions, newest first.
pub(crate) async fn show(db: &Db<'_>, name: &str) -> Result<WorkflowDoc> {
    let versions = db
        .query(
            "reading a workflow",
            "SELECT version, created_at, node_count FROM workflow_versions \
             WHERE name = $1 ORDER BY version DESC",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| version_row(name, r))
        .collect::<Result<Vec<_>>>()?;
    if versions.is_empty() {
        return Err(StoreError::NotFound(format!("workflow {name}")));
    }
    Ok(WorkflowDoc {
        name: name.to_owned(),
        versions,
    })
}

/// One version with its definition and source.
pub(crate) async fn version(db: &Db<'_>, name: &str, version: i64) -> Result<WorkflowVersionDoc> {
    let Some(r) = db
        .query_opt(
            "reading a workflow version",
            "SELECT version, created_at, node_count, definition, source FROM workflow_versions \
             WHERE name = $1 AND version = $2",
            &[&name, &version],
        )
        .await?
    else {
        return Err(StoreError::NotFound(format!(
            "workflow {name} version {version}"
        )));
    };
    Ok(WorkflowVersionDoc {
        version: version_row(name, &r)?,
        definition: from_json("decoding a stored workflow", r.at(3)?)?,
        source: r.at(4)?,
    })
}
