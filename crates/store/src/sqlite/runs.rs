//! Runs: the run row with its per-state node counters, and the use cases that create,
//! list and cancel runs.

use std::collections::BTreeMap;

use baton_api::{RunFilter, RunSummary, format_time};
use baton_core::{NodeState, Reason, RunState, When, plan_run, run_result};
use rusqlite::{OptionalExtension, Row, params};

use super::cache::Compiled;
use super::concurrency;
use super::db::{Db, SqlResult, opt_state, state};
use super::run_doc;
use crate::{Result, RunCreated, StoreError};

/// Nodes of a run in each state, indexed like [`NodeState::ALL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts([i64; 9]);

fn slot(s: NodeState) -> usize {
    match s {
        NodeState::Waiting => 0,
        NodeState::Ready => 1,
        NodeState::Pending => 2,
        NodeState::Running => 3,
        NodeState::Success => 4,
        NodeState::Failure => 5,
        NodeState::Error => 6,
        NodeState::Canceled => 7,
        NodeState::Skipped => 8,
    }
}

impl Counts {
    pub(crate) fn get(&self, s: NodeState) -> i64 {
        self.0[slot(s)]
    }

    /// Adds `n` nodes in state `s`.
    pub(crate) fn add(&mut self, s: NodeState, n: i64) {
        self.0[slot(s)] += n;
    }

    /// Moves `n` nodes from one state to another.
    pub(crate) fn shift(&mut self, from: NodeState, to: NodeState, n: i64) {
        self.0[slot(from)] -= n;
        self.0[slot(to)] += n;
    }

    fn summary(&self) -> BTreeMap<NodeState, usize> {
        NodeState::ALL
            .iter()
            .filter(|&&s| self.get(s) > 0)
            .map(|&s| (s, self.get(s).max(0) as usize))
            .collect()
    }
}

/// A run row, read at the start of a write and saved once at its end.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub(crate) id: String,
    pub(crate) workflow: String,
    pub(crate) version: i64,
    pub(crate) version_id: String,
    pub(crate) status: RunState,
    pub(crate) cancel_requested: bool,
    pub(crate) created_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) rev: i64,
    pub(crate) total: i64,
    pub(crate) counts: Counts,
    /// Why the run was stopped when not by a user (`timeout`).
    pub(crate) reason: Option<Reason>,
    /// The run this one re-runs.
    pub(crate) retry_of: Option<String>,
    /// Its priority: the workflow's, or the one it was created with.
    pub(crate) priority: i64,
    /// Whether an attempt of the run stored outputs: claims of runs without look for no
    /// inputs.
    pub(crate) has_outputs: bool,
    /// For people: why the run waits for a place, or why its workflow's concurrency limit
    /// canceled it (`runs.message`, written by `concurrency`, never by [`RunRow::save`]).
    pub(crate) message: Option<String>,
    /// Set by [`RunRow::settle`] when this call ended a run that held a place of its
    /// workflow's concurrency limit (`pending` or `running`): queued runs are admitted when
    /// it is saved (SQLite) or when the transaction ends (PostgreSQL).
    pub(crate) vacated: bool,
}

/// `SELECT <run columns> FROM runs <rest>` as one static string, so the hot path builds
/// no SQL at run time.
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

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    let mut counts = [0i64; 9];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = r.get(11 + i)?;
    }
    Ok(RunRow {
        id: r.get(0)?,
        workflow: r.get(1)?,
        version: r.get(2)?,
        version_id: r.get(3)?,
        status: state(r, 4)?,
        cancel_requested: r.get(5)?,
        created_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        rev: r.get(9)?,
        total: r.get(10)?,
        counts: Counts(counts),
        reason: opt_state(r, 20)?,
        retry_of: r.get(21)?,
        priority: r.get(22)?,
        has_outputs: r.get(23)?,
        message: r.get(24)?,
        vacated: false,
    })
}

impl RunRow {
    /// Loads a run; `None` when there is no such run.
    pub(crate) fn load(db: &Db<'_>, id: &str) -> Result<Option<RunRow>> {
        db.conn
            .prepare_cached(select_runs!("WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], run_row).optional())
            .ctx("loading a run")
    }

    /// Loads a run; `NotFound` when there is no such run.
    pub(crate) fn get(db: &Db<'_>, id: &str) -> Result<RunRow> {
        RunRow::load(db, id)?.ok_or_else(|| StoreError::NotFound(format!("run {id}")))
    }

    /// Finishes the run when every node is terminal, and counts the change.
    pub(crate) fn settle(&mut self, now: i64) {
        self.rev += 1;
        if self.status.is_terminal() {
            return;
        }
        let counts = self.counts;
        let total = usize::try_from(self.total).unwrap_or(0);
        let count = |s: NodeState| usize::try_from(counts.get(s)).unwrap_or(0);
        if let Some(result) = run_result(total, count, self.cancel_requested) {
            // A run stopped by its time limit could not finish: that is an error, not a
            // user's cancel.
            self.vacated |= matches!(self.status, RunState::Pending | RunState::Running);
            self.status = match (result, self.reason) {
                (RunState::Canceled, Some(Reason::Timeout)) => RunState::Error,
                _ => result,
            };
            self.finished_at = Some(now);
        }
    }

    /// Writes back everything a use case may have changed.
    pub(crate) fn save(&self, db: &Db<'_>) -> Result<()> {
        let c = &self.counts.0;
        db.conn
            .prepare_cached(
                "UPDATE runs SET status = ?2, cancel_requested = ?3, started_at = ?4, \
                 finished_at = ?5, rev = ?6, n_waiting = ?7, n_ready = ?8, n_pending = ?9, \
                 n_running = ?10, n_success = ?11, n_failure = ?12, n_error = ?13, \
                 n_canceled = ?14, n_skipped = ?15, reason = ?16 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    self.id,
                    self.status.as_str(),
                    self.cancel_requested,
                    self.started_at,
                    self.finished_at,
                    self.rev,
                    c[0],
                    c[1],
                    c[2],
                    c[3],
                    c[4],
                    c[5],
                    c[6],
                    c[7],
                    c[8],
                    self.reason.map(Reason::as_str),
                ])
            })
            .ctx("saving a run")?;
        if self.vacated {
            // In the same transaction, so a place is never left free while runs wait.
            concurrency::vacated(db, &self.workflow, &self.version_id)?;
        }
        Ok(())
    }

    pub(crate) fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            workflow: self.workflow.clone(),
            version: self.version,
            status: self.status,
            priority: self.priority,
            created_at: format_time(self.created_at),
            finished_at: self.finished_at.map(format_time),
            counts: self.counts.summary(),
        }
    }
}

/// Creates a run with every node: roots ready, the rest waiting on their needs.
pub(crate) fn create(
    db: &Db<'_>,
    workflow: &str,
    version: Option<i64>,
    priority: Option<i32>,
) -> Result<RunCreated> {
    let found: Option<(String, i64)> = match version {
        Some(v) => db
            .conn
            .prepare_cached(
                "SELECT id, version FROM workflow_versions WHERE name = ?1 AND version = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![workflow, v], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            }),
        None => db
            .conn
            .prepare_cached(
                "SELECT id, version FROM workflow_versions WHERE name = ?1 \
                 ORDER BY version DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([workflow], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            }),
    }
    .ctx("finding the workflow version")?;
    let Some((version_id, version)) = found else {
        return Err(StoreError::NotFound(match version {
            Some(v) => format!("workflow {workflow} version {v}"),
            None => format!("workflow {workflow}"),
        }));
    };
    let compiled = db.cache.version(db, &version_id)?;
    let plan = plan_nodes(&compiled, Vec::new());
    let priority = i64::from(priority.unwrap_or(compiled.workflow.priority));
    let (run, states) = insert(db, &compiled, version_id, version, None, priority, &plan)?;
    let doc = run_doc::fresh(db, &run, &compiled, &states)?;
    Ok(RunCreated { run: doc })
}

/// How one node of a new run starts.
#[derive(Debug, Clone)]
pub(crate) struct NodeStart {
    /// `ready`, `waiting`, `skipped`, or `success` for a node a re-run keeps.
    pub(crate) status: NodeState,
    /// Needs not yet ended (`nodes.remaining`).
    pub(crate) remaining: i64,
    /// Needs that ended without success (`nodes.needs_bad`).
    pub(crate) bad: i64,
    /// Of those, needs that ended `failure` or `error` (`nodes.needs_failed`).
    pub(crate) failed: i64,
    /// For a kept node, the run whose attempt succeeded.
    pub(crate) reused_from: Option<String>,
}

/// How the nodes of a new run of `compiled` start, by the plan shared with the reference
/// model ([`plan_run`]): `kept_from[i]` names the run whose success a re-run keeps for node
/// `i` (missing or `None`: the node runs). Shared by both backends.
pub(crate) fn plan_nodes(
    compiled: &Compiled,
    mut kept_from: Vec<Option<String>>,
) -> Vec<NodeStart> {
    let n = compiled.dag.len();
    kept_from.resize(n, None);
    let rules: Vec<When> = compiled.workflow.nodes.iter().map(|s| s.when).collect();
    let kept: Vec<bool> = kept_from.iter().map(Option::is_some).collect();
    plan_run(&compiled.dag, &rules, &kept)
        .into_iter()
        .zip(kept_from)
        .map(|(start, reused_from)| NodeStart {
            status: start.state,
            remaining: i64::from(start.upstream.remaining),
            bad: i64::from(start.upstream.bad),
            failed: i64::from(start.upstream.failed),
            reused_from,
        })
        .collect()
}

/// Writes a new run of a compiled version with its nodes started as `plan` says (one entry
/// per node, by index); returns the run row, saved, and each node's state.
pub(crate) fn insert(
    db: &Db<'_>,
    compiled: &Compiled,
    version_id: String,
    version: i64,
    retry_of: Option<String>,
    priority: i64,
    plan: &[NodeStart],
) -> Result<(RunRow, Vec<NodeState>)> {
    // Under a concurrency limit the run may have to wait for a place (its nodes all
    // waiting) or be canceled at once (its nodes canceled): decided before it is written.
    let entry = concurrency::enter(db, compiled)?;
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
    db.conn
        .prepare_cached(
            "INSERT INTO runs (id, workflow, version, version_id, status, created_at, total, \
             deadline, retry_of, priority) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .and_then(|mut s| {
            s.execute(params![
                run.id,
                run.workflow,
                run.version,
                run.version_id,
                run.status.as_str(),
                now,
                run.total,
                deadline,
                run.retry_of,
                run.priority,
            ])
        })
        .ctx("creating a run")?;
    let mut insert = db
        .conn
        .prepare_cached(
            "INSERT INTO nodes (run_id, idx, status, remaining, ready_at, req_id, \
             queue_timeout_ms, reused_from, prio_key, needs_bad, needs_failed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .ctx("creating a run")?;
    let mut states = Vec::with_capacity(plan.len());
    for (idx, (start, &req)) in plan.iter().zip(&compiled.reqs).enumerate() {
        let ready_at = (start.status == NodeState::Ready).then_some(now);
        let queue_timeout = compiled
            .workflow
            .nodes
            .get(idx)
            .and_then(|n| n.queue_timeout_ms)
            .or(db.cfg.queue_timeout_ms)
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        insert
            .execute(params![
                run.id,
                idx as i64,
                start.status.as_str(),
                start.remaining,
                ready_at,
                req,
                queue_timeout,
                start.reused_from,
                -run.priority,
                start.bad,
                start.failed,
            ])
            .ctx("creating a run")?;
        run.counts.0[slot(start.status)] += 1;
        states.push(start.status);
    }
    run.settle(now);
    run.save(db)?;
    if entry.is_some() {
        concurrency::note(db, &run)?;
    }
    Ok((run, states))
}

/// Default and largest page of [`list`].
pub(crate) const LIST_DEFAULT: u32 = 50;
pub(crate) const LIST_MAX: u32 = 1000;

/// Runs matching the filter, newest first.
pub(crate) fn list(db: &Db<'_>, filter: &RunFilter) -> Result<Vec<RunSummary>> {
    let limit = i64::from(filter.limit.unwrap_or(LIST_DEFAULT).clamp(1, LIST_MAX));
    let status = filter.status.map(RunState::as_str);
    // Each shape of filter gets its own statement so SQLite can use the matching index.
    let (sql, args): (&str, Vec<&dyn rusqlite::ToSql>) = match (&filter.workflow, &status) {
        (Some(w), Some(s)) => (
            select_runs!("WHERE workflow = ?1 AND status = ?2 ORDER BY id DESC LIMIT ?3"),
            vec![w, s, &limit],
        ),
        (Some(w), None) => (
            select_runs!("WHERE workflow = ?1 ORDER BY id DESC LIMIT ?2"),
            vec![w, &limit],
        ),
        (None, Some(s)) => (
            select_runs!("WHERE status = ?1 ORDER BY id DESC LIMIT ?2"),
            vec![s, &limit],
        ),
        (None, None) => (select_runs!("ORDER BY id DESC LIMIT ?1"), vec![&limit]),
    };
    let mut stmt = db.conn.prepare_cached(sql).ctx("listing runs")?;
    let rows = stmt
        .query_map(args.as_slice(), run_row)
        .ctx("listing runs")?;
    rows.map(|r| r.map(|r| r.summary()).ctx("listing runs"))
        .collect()
}

/// The run's change counter.
pub(crate) fn rev(db: &Db<'_>, id: &str) -> Result<i64> {
    db.conn
        .prepare_cached("SELECT rev FROM runs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .ctx("reading a run")?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))
}

/// Cancels a run: waiting and ready nodes end at once; live attempts are told to stop
/// (through claim and heartbeat answers) and end the run when they report.
pub(crate) fn cancel(db: &Db<'_>, id: &str) -> Result<baton_api::RunDoc> {
    let mut run = RunRow::get(db, id)?;
    if run.status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "run {id} already finished: {}",
            run.status
        )));
    }
    if !run.cancel_requested {
        stop(db, &mut run)?;
    }
    run_doc::load(db, id)
}

/// Stops a run that is not finished: waiting and ready nodes end `canceled` at once, live
/// attempts are told to stop (the run ends when they report or are reaped). Saves the run.
pub(crate) fn stop(db: &Db<'_>, run: &mut RunRow) -> Result<()> {
    if run.status == RunState::Created {
        // It no longer waits for a place.
        concurrency::unqueue(db, run)?;
    }
    run.cancel_requested = true;
    let mut stmt = db
        .conn
        .prepare_cached(
            "UPDATE nodes SET status = 'canceled', ready_at = NULL \
             WHERE run_id = ?1 AND status = ?2",
        )
        .ctx("canceling a run")?;
    for from in [NodeState::Waiting, NodeState::Ready] {
        let n = stmt
            .execute(params![run.id, from.as_str()])
            .ctx("canceling a run")?;
        run.counts.shift(from, NodeState::Canceled, n as i64);
    }
    run.settle(db.now);
    run.save(db)
}
