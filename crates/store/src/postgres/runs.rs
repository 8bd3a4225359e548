//! Runs: locking and saving the run row with its per-state node counters, and the use
//! cases that create, list and cancel runs.
//!
//! The row and its settling rules are the SQLite backend's ([`RunRow`]), so both backends
//! finish runs by the same code.

use baton_api::{RunDoc, RunFilter, RunSummary};
use baton_core::{NodeState, RunState};
use tokio_postgres::Row;

use super::concurrency;
use super::db::{Db, RowExt, corrupt};
use super::run_doc;
use crate::sqlite::cache::Compiled;
use crate::sqlite::runs::{Counts, LIST_DEFAULT, LIST_MAX};

pub(crate) use crate::sqlite::runs::{NodeStart, plan_nodes};
use crate::{Result, RunCreated, StoreError};

pub(crate) use crate::sqlite::runs::RunRow;

/// The counter columns' states, in column order.
const COUNTED: [NodeState; 9] = [
    NodeState::Waiting,
    NodeState::Ready,
    NodeState::Pending,
    NodeState::Running,
    NodeState::Success,
    NodeState::Failure,
    NodeState::Error,
    NodeState::Canceled,
    NodeState::Skipped,
];

/// `SELECT <run columns> FROM runs <rest>` as one static string.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT id, workflow, version, version_id, status, cancel_requested, created_at, \
             started_at, finished_at, rev, total, n_waiting, n_ready, n_pending, n_running, \
             n_success, n_failure, n_error, n_canceled, n_skipped, reason, retry_of, priority, \
             has_outputs, message FROM runs ",
            $rest
        )
    };
}

fn run_row(r: &Row) -> Result<RunRow> {
    let mut counts = Counts::default();
    for (i, &s) in COUNTED.iter().enumerate() {
        counts.add(s, r.at(11 + i)?);
    }
    Ok(RunRow {
        id: r.at(0)?,
        workflow: r.at(1)?,
        version: r.at(2)?,
        version_id: r.at(3)?,
        status: r.state(4)?,
        cancel_requested: r.at(5)?,
        created_at: r.at(6)?,
        started_at: r.at(7)?,
        finished_at: r.at(8)?,
        rev: r.at(9)?,
        total: r.at(10)?,
        counts,
        reason: r.opt_state(20)?,
        retry_of: r.at(21)?,
        priority: r.at(22)?,
        has_outputs: r.at(23)?,
        message: r.at(24)?,
        vacated: false,
    })
}

/// Reads and locks a run; `None` when there is none, or, with `skip`, when another
/// transaction holds its lock.
pub(crate) async fn lock(db: &Db<'_>, id: &str, skip: bool) -> Result<Option<RunRow>> {
    let sql = if skip {
        select_runs!("WHERE id = $1 FOR UPDATE SKIP LOCKED")
    } else {
        select_runs!("WHERE id = $1 FOR UPDATE")
    };
    db.query_opt("locking a run", sql, &[&id])
        .await?
        .as_ref()
        .map(run_row)
        .transpose()
}

/// Reads and locks these runs, in ascending id order (rows are locked as the sorted scan
/// returns them, so two transactions never take them in opposite orders).
pub(crate) async fn lock_many(db: &Db<'_>, ids: &[String]) -> Result<Vec<RunRow>> {
    db.query(
        "locking runs",
        select_runs!("WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
        &[&ids],
    )
    .await?
    .iter()
    .map(run_row)
    .collect()
}

/// Reads and locks the runs of these attempts, in ascending id order.
pub(crate) async fn lock_of_attempts(db: &Db<'_>, attempts: &[i64]) -> Result<Vec<RunRow>> {
    db.query(
        "locking runs",
        select_runs!(
            "WHERE id IN (SELECT run_id FROM attempts WHERE id = ANY($1)) ORDER BY id FOR UPDATE"
        ),
        &[&attempts],
    )
    .await?
    .iter()
    .map(run_row)
    .collect()
}

/// Reads a run without locking it (reads and runs that are finished for good).
pub(crate) async fn load(db: &Db<'_>, id: &str) -> Result<Option<RunRow>> {
    db.query_opt("loading a run", select_runs!("WHERE id = $1"), &[&id])
        .await?
        .as_ref()
        .map(run_row)
        .transpose()
}

/// Reads a run without locking it; `NotFound` when there is no such run.
pub(crate) async fn get(db: &Db<'_>, id: &str) -> Result<RunRow> {
    load(db, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))
}

/// Appends the statement that writes back everything a use case may have changed.
///
/// Rendered as text so it can travel with the `COMMIT`: every value is a number, a
/// state's fixed name, or the run id, which is a UUID this store made (anything else is
/// refused).
pub(crate) fn push_save_sql(sql: &mut String, run: &RunRow) -> Result<()> {
    use std::fmt::Write as _;
    if !run
        .id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(corrupt(format!("run id {:?} is not a uuid", run.id)));
    }
    let opt = |v: Option<i64>| v.map_or_else(|| "NULL".to_owned(), |v| v.to_string());
    let c = COUNTED.map(|s| run.counts.get(s));
    // Writing to a String cannot fail.
    let _ = write!(
        sql,
        "UPDATE runs SET status = '{}', cancel_requested = {}, started_at = {}, \
         finished_at = {}, rev = {}, n_waiting = {}, n_ready = {}, n_pending = {}, \
         n_running = {}, n_success = {}, n_failure = {}, n_error = {}, n_canceled = {}, \
         n_skipped = {}, reason = {} WHERE id = '{}'; ",
        run.status.as_str(),
        run.cancel_requested,
        opt(run.started_at),
        opt(run.finished_at),
        run.rev,
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[7],
        c[8],
        run.reason
            .map_or_else(|| "NULL".to_owned(), |r| format!("'{}'", r.as_str())),
        run.id,
    );
    Ok(())
}

/// Creates a run with every node: roots ready, the rest waiting on their needs.
pub(crate) async fn create(
    db: &mut Db<'_>,
    workflow: &str,
    version: Option<i64>,
    priority: Option<i32>,
) -> Result<RunCreated> {
    let found = match version {
        Some(v) => {
            db.query_opt(
                "finding the workflow version",
                "SELECT id, version FROM workflow_versions WHERE name = $1 AND version = $2",
                &[&workflow, &v],
            )
            .await?
        }
        None => {
            db.query_opt(
                "finding the workflow version",
                "SELECT id, version FROM workflow_versions WHERE name = $1 \
                 ORDER BY version DESC LIMIT 1",
                &[&workflow],
            )
            .await?
        }
    };
    let Some(found) = found else {
        return Err(StoreError::NotFound(match version {
            Some(v) => format!("workflow {workflow} version {v}"),
            None => format!("workflow {workflow}"),
        }));
    };
    let (version_id, version): (String, i64) = (found.at(0)?, found.at(1)?);
    let compiled = db.cache.version(db, &version_id).await?;
    let plan = plan_nodes(&compiled, Vec::new());
    let priority = i64::from(priority.unwrap_or(compiled.workflow.priority));
    let (run, states) = insert(db, &compiled, version_id, version, None, priority, &plan).await?;
    let doc = run_doc::fresh(db, &run, &compiled, &states).await?;
    Ok(RunCreated { run: doc })
}

/// Writes a new run of a compiled version with its nodes started as `plan` says (one entry
/// per node, by index); returns the run row and each node's state.
pub(crate) async fn insert(
    db: &mut Db<'_>,
    compiled: &Compiled,
    version_id: String,
    version: i64,
    retry_of: Option<String>,
    priority: i64,
    plan: &[NodeStart],
) -> Result<(RunRow, Vec<NodeState>)> {
    // Under a concurrency limit the run may have to wait for a place (its nodes all
    // waiting) or be canceled at once (its nodes canceled): decided before it is written.
    let entry = concurrency::enter(db, compiled).await?;
    let held = entry.as_ref().and_then(|e| e.hold(plan));
    let plan = held.as_deref().unwrap_or(plan);
    let now = db.now;
    let deadline = compiled
        .workflow
        .timeout_ms
        .map(|ms| now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)));
    let mut run = RunRow {
        id: uuid::Uuid::now_v7().to_string(),
        workflow: compiled.name.clone(),
        version,
        version_id,
        status: RunState::Pending,
        cancel_requested: false,
        created_at: now,
        started_at: None,
        finished_at: None,
        rev: 0,
        total: plan.len() as i64,
        counts: Counts::default(),
        reason: None,
        retry_of,
        priority,
        has_outputs: false,
        message: None,
        vacated: false,
    };
    if let Some(e) = &entry {
        e.apply(&mut run);
    }
    let n = plan.len();
    let mut idxs = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut remaining = Vec::with_capacity(n);
    let mut bad = Vec::with_capacity(n);
    let mut failed = Vec::with_capacity(n);
    let mut ready_at = Vec::with_capacity(n);
    let mut queue_timeouts = Vec::with_capacity(n);
    let mut reused = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    for (idx, start) in plan.iter().enumerate() {
        idxs.push(idx as i64);
        statuses.push(start.status.as_str());
        remaining.push(start.remaining);
        bad.push(start.bad);
        failed.push(start.failed);
        ready_at.push((start.status == NodeState::Ready).then_some(now));
        queue_timeouts.push(
            compiled
                .workflow
                .nodes
                .get(idx)
                .and_then(|n| n.queue_timeout_ms)
                .or(db.cfg.queue_timeout_ms)
                .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        reused.push(start.reused_from.as_deref());
        run.counts.add(start.status, 1);
        states.push(start.status);
    }
    let reqs: &[i64] = compiled.reqs.get(..n).unwrap_or(&compiled.reqs);
    run.settle(now);
    let c = COUNTED.map(|s| run.counts.get(s));
    db.execute(
        "creating a run",
        "INSERT INTO runs (id, workflow, version, version_id, status, created_at, total, \
         deadline, retry_of, rev, n_waiting, n_ready, n_pending, n_running, n_success, \
         n_failure, n_error, n_canceled, n_skipped, finished_at, priority) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21)",
        &[
            &run.id,
            &run.workflow,
            &run.version,
            &run.version_id,
            &run.status.as_str(),
            &now,
            &run.total,
            &deadline,
            &run.retry_of,
            &run.rev,
            &c[0],
            &c[1],
            &c[2],
            &c[3],
            &c[4],
            &c[5],
            &c[6],
            &c[7],
            &c[8],
            &run.finished_at,
            &run.priority,
        ],
    )
    .await?;
    // One statement for every node: a 10,000-node run costs one round trip, not 10,000.
    db.execute(
        "creating a run",
        "INSERT INTO nodes (run_id, idx, status, remaining, ready_at, req_id, \
         queue_timeout_ms, reused_from, needs_bad, needs_failed, prio_key) \
         SELECT $1, *, $9 FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
           $6::bigint[], $7::bigint[], $8::text[], $10::bigint[], $11::bigint[])",
        &[
            &run.id,
            &idxs,
            &statuses,
            &remaining,
            &ready_at,
            &reqs,
            &queue_timeouts,
            &reused,
            &-run.priority,
            &bad,
            &failed,
        ],
    )
    .await?;
    if entry.is_some() {
        concurrency::note(db, &run).await?;
    }
    db.mark_created(&run.id);
    Ok((run, states))
}

/// Runs matching the filter, newest first.
pub(crate) async fn list(db: &Db<'_>, filter: &RunFilter) -> Result<Vec<RunSummary>> {
    let limit = i64::from(filter.limit.unwrap_or(LIST_DEFAULT).clamp(1, LIST_MAX));
    let status = filter.status.map(RunState::as_str);
    const WHAT: &str = "listing runs";
    let rows = match (&filter.workflow, &status) {
        (Some(w), Some(s)) => {
            db.query(
                WHAT,
                select_runs!("WHERE workflow = $1 AND status = $2 ORDER BY id DESC LIMIT $3"),
                &[w, s, &limit],
            )
            .await?
        }
        (Some(w), None) => {
            db.query(
                WHAT,
                select_runs!("WHERE workflow = $1 ORDER BY id DESC LIMIT $2"),
                &[w, &limit],
            )
            .await?
        }
        (None, Some(s)) => {
            db.query(
                WHAT,
                select_runs!("WHERE status = $1 ORDER BY id DESC LIMIT $2"),
                &[s, &limit],
            )
            .await?
        }
        (None, None) => {
            db.query(WHAT, select_runs!("ORDER BY id DESC LIMIT $1"), &[&limit])
                .await?
        }
    };
    rows.iter()
        .map(|r| run_row(r).map(|r| r.summary()))
        .collect()
}

/// The run's change counter.
pub(crate) async fn rev(db: &Db<'_>, id: &str) -> Result<i64> {
    db.query_opt(
        "reading a run",
        "SELECT rev FROM runs WHERE id = $1",
        &[&id],
    )
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?
    .at(0)
}

/// Cancels a run: waiting and ready nodes end at once; live attempts are told to stop
/// (through claim and heartbeat answers) and end the run when they report.
pub(crate) async fn cancel(db: &mut Db<'_>, id: &str) -> Result<RunDoc> {
    let run = db.lock_run(id).await?;
    if run.status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "run {id} already finished: {}",
            run.status
        )));
    }
    if !run.cancel_requested {
        stop(db, id).await?;
    }
    run_doc::load(db, id).await
}

/// Stops a run that is not finished and whose lock this transaction holds: waiting and
/// ready nodes end `canceled` at once, live attempts are told to stop (the run ends when
/// they report or are reaped).
pub(crate) async fn stop(db: &mut Db<'_>, id: &str) -> Result<()> {
    let now = db.now;
    if db.lock_run(id).await?.status == RunState::Created {
        // It no longer waits for a place.
        concurrency::unqueue(db, id).await?;
        db.lock_run(id).await?.message = None;
    }
    let mut moved = [0i64; 2];
    for (n, from) in moved.iter_mut().zip([NodeState::Waiting, NodeState::Ready]) {
        *n = db
            .execute(
                "canceling a run",
                "UPDATE nodes SET status = 'canceled', ready_at = NULL \
                 WHERE run_id = $1 AND status = $2",
                &[&id, &from.as_str()],
            )
            .await? as i64;
    }
    let run = db.lock_run(id).await?;
    run.cancel_requested = true;
    run.counts
        .shift(NodeState::Waiting, NodeState::Canceled, moved[0]);
    run.counts
        .shift(NodeState::Ready, NodeState::Canceled, moved[1]);
    run.settle(now);
    if run.counts.get(NodeState::Pending) + run.counts.get(NodeState::Running) > 0 {
        // Agents holding attempts of this run must hear of the cancel.
        db.mark_work();
    }
    Ok(())
}
