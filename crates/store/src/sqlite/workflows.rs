//! Workflow versions: apply, list, show.

use std::collections::HashSet;
use std::fmt::Write as _;

use baton_api::{WorkflowDoc, WorkflowSummary, WorkflowVersion, WorkflowVersionDoc, format_time};
use baton_core::{Dag, MAX_NODES, Workflow};
use rusqlite::{OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use super::cache::{requirement_key, requirement_of};
use super::db::{Db, SqlResult, from_json, to_json};
use crate::{Result, StoreError};

/// Refuses what would break scheduling even though the parser should never let it
/// through: duplicate ids, unknown needs, cycles, too many nodes.
pub(crate) fn check(wf: &Workflow) -> Result<Dag> {
    if wf.name.is_empty() {
        return Err(StoreError::Invalid("a workflow needs a name".into()));
    }
    if wf.nodes.len() > MAX_NODES {
        return Err(StoreError::Invalid(format!(
            "workflow {} has {} nodes, more than {MAX_NODES}",
            wf.name,
            wf.nodes.len()
        )));
    }
    let dag = Dag::compile(wf);
    for (i, node) in wf.nodes.iter().enumerate() {
        if dag.index(&node.id) != Some(i as u32) {
            return Err(StoreError::Invalid(format!(
                "workflow {} has two nodes called {:?}",
                wf.name, node.id
            )));
        }
        if let Some(need) = node.needs.iter().find(|n| dag.index(n).is_none()) {
            return Err(StoreError::Invalid(format!(
                "node {:?} of workflow {} needs unknown node {need:?}",
                node.id, wf.name
            )));
        }
    }
    if let Some(cycle) = dag.find_cycle() {
        let path: Vec<&str> = cycle.iter().map(|&i| dag.id(i)).collect();
        return Err(StoreError::Invalid(format!(
            "workflow {} has a cycle: {}",
            wf.name,
            path.join(" -> ")
        )));
    }
    Ok(dag)
}

pub(crate) fn sha256_hex(text: &str) -> String {
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(text.as_bytes()) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn version_row(name: &str, r: &Row<'_>) -> rusqlite::Result<WorkflowVersion> {
    Ok(WorkflowVersion {
        name: name.to_owned(),
        version: r.get(0)?,
        created_at: format_time(r.get(1)?),
        nodes: r.get::<_, i64>(2)?.max(0) as usize,
        created: false,
    })
}

/// Stores a new version, or returns the latest when its definition is the same.
pub(crate) fn apply(db: &Db<'_>, wf: &Workflow, source: &str) -> Result<WorkflowVersion> {
    check(wf)?;
    let definition = to_json("encoding a workflow", wf)?;
    let digest = sha256_hex(&definition);
    let latest: Option<(WorkflowVersion, String)> = db
        .conn
        .prepare_cached(
            "SELECT version, created_at, node_count, digest FROM workflow_versions \
             WHERE name = ?1 ORDER BY version DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([&wf.name], |r| Ok((version_row(&wf.name, r)?, r.get(3)?)))
                .optional()
        })
        .ctx("applying a workflow")?;
    let next = match latest {
        Some((v, d)) if d == digest => return Ok(v),
        Some((v, _)) => v.version + 1,
        None => 1,
    };

    let mut insert_req = db
        .conn
        .prepare_cached(
            "INSERT INTO requirements (key, function, selector) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .ctx("applying a workflow")?;
    let mut seen = HashSet::new();
    for node in &wf.nodes {
        let req = requirement_of(node);
        let key = requirement_key(&req)?;
        if seen.insert(key.clone()) {
            let selector = to_json("encoding a selector", &req.selector)?;
            insert_req
                .execute(params![key, req.function, selector])
                .ctx("applying a workflow")?;
        }
    }

    db.conn
        .prepare_cached(
            "INSERT INTO workflow_versions \
             (id, name, version, definition, source, digest, node_count, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                uuid::Uuid::now_v7().to_string(),
                wf.name,
                next,
                definition,
                source,
                digest,
                wf.nodes.len() as i64,
                db.now
            ])
        })
        .ctx("applying a workflow")?;
    Ok(WorkflowVersion {
        name: wf.name.clone(),
        version: next,
        created_at: format_time(db.now),
        nodes: wf.nodes.len(),
        created: true,
    })
}

/// Every workflow with its latest version and its number of runs.
pub(crate) fn list(db: &Db<'_>) -> Result<Vec<WorkflowSummary>> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT v.name, v.version, v.created_at, \
               (SELECT COUNT(*) FROM runs r WHERE r.workflow = v.name) \
             FROM workflow_versions v \
             WHERE v.version = (SELECT MAX(w.version) FROM workflow_versions w WHERE w.name = v.name) \
             ORDER BY v.name",
        )
        .ctx("listing workflows")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(WorkflowSummary {
                name: r.get(0)?,
                latest_version: r.get(1)?,
                updated_at: format_time(r.get(2)?),
                runs: r.get(3)?,
            })
        })
        .ctx("listing workflows")?;
    rows.map(|r| r.ctx("listing workflows")).collect()
}

/// One workflow's versions, newest first.
pub(crate) fn show(db: &Db<'_>, name: &str) -> Result<WorkflowDoc> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT version, created_at, node_count FROM workflow_versions \
             WHERE name = ?1 ORDER BY version DESC",
        )
        .ctx("reading a workflow")?;
    let versions = stmt
        .query_map([name], |r| version_row(name, r))
        .ctx("reading a workflow")?
        .map(|r| r.ctx("reading a workflow"))
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
pub(crate) fn version(db: &Db<'_>, name: &str, version: i64) -> Result<WorkflowVersionDoc> {
    let row: Option<(WorkflowVersion, String, String)> = db
        .conn
        .prepare_cached(
            "SELECT version, created_at, node_count, definition, source FROM workflow_versions \
             WHERE name = ?1 AND version = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![name, version], |r| {
                Ok((version_row(name, r)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .ctx("reading a workflow version")?;
    let Some((version, definition, source)) = row else {
        return Err(StoreError::NotFound(format!(
            "workflow {name} version {version}"
        )));
    };
    Ok(WorkflowVersionDoc {
        version,
        definition: from_json("decoding a stored workflow", &definition)?,
        source,
    })
}
