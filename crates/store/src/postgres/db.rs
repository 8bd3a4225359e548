//! What every call gets: the connection in its transaction, the caches, the settings, the
//! time, the run rows it has locked; and the mapping of driver errors to [`StoreError`].
//!
//! Lock order, which keeps writes free of deadlocks: an agent's row first (`touch_agent`),
//! then run rows in ascending id order, then attempt rows in ascending id order; node rows
//! are only ever changed under their run's lock. A run whose id is below one already held
//! is only tried (`SKIP LOCKED`), never waited for. A workflow's concurrency lock (an
//! advisory lock, see `concurrency`) comes after any run rows, workflows in name order;
//! while holding one, a transaction only tries run locks, never waits for them.

use std::collections::BTreeMap;
use std::str::FromStr;

use baton_core::UnknownState;
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};

use super::Config;
use super::cache::Cache;
use super::runs::{self, RunRow};
use crate::{Result, StoreError};

/// Statement parameters.
pub(crate) type Params<'p> = [&'p (dyn ToSql + Sync)];

/// A run row this transaction holds the lock of.
#[derive(Debug)]
struct Held {
    row: RunRow,
    /// `rev` when locked: every change of a run settles it, which bumps `rev`, so a run
    /// whose `rev` moved is written back with the commit.
    saved_rev: i64,
    /// `rev` last written to the database: `saved_rev`, or later after
    /// [`Db::flush_runs`].
    written_rev: i64,
}

/// One call's view of the database.
pub(crate) struct Db<'a> {
    client: &'a ClientWrapper,
    pub(crate) cache: &'a Cache,
    pub(crate) cfg: &'a Config,
    /// The database's clock (or the test clock), read once per transaction.
    pub(crate) now: i64,
    /// The newest requirement id, read with `now`.
    pub(crate) newest_requirement: i64,
    runs: BTreeMap<String, Held>,
    /// Runs this call created.
    created: Vec<String>,
    /// Nodes this call made claimable now (row ids).
    readied: Vec<i64>,
    /// Nodes this call handed out (row ids).
    taken: Vec<i64>,
    /// A resource hold was released: ready nodes waiting for it may be claimable now.
    freed: bool,
    /// Something other agents must look at happened (a retry was scheduled, a run was
    /// stopped with live attempts, a run was created).
    work: bool,
    /// Workflows whose `cancel_running` must stop runs once this call committed.
    preempt: Vec<String>,
}

impl<'a> Db<'a> {
    pub(crate) fn new(
        client: &'a ClientWrapper,
        cache: &'a Cache,
        cfg: &'a Config,
        now: i64,
        newest_requirement: i64,
    ) -> Self {
        Db {
            client,
            cache,
            cfg,
            now,
            newest_requirement,
            runs: BTreeMap::new(),
            created: Vec::new(),
            readied: Vec::new(),
            taken: Vec::new(),
            freed: false,
            work: false,
            preempt: Vec::new(),
        }
    }

    /// Rows of a statement (prepared once per connection).
    pub(crate) async fn query(
        &self,
        what: &'static str,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>> {
        let stmt = self.client.prepare_cached(sql).await.ctx(what)?;
        self.client.query(&stmt, params).await.ctx(what)
    }

    /// At most one row of a statement.
    pub(crate) async fn query_opt(
        &self,
        what: &'static str,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>> {
        let stmt = self.client.prepare_cached(sql).await.ctx(what)?;
        self.client.query_opt(&stmt, params).await.ctx(what)
    }

    /// Exactly one row of a statement.
    pub(crate) async fn query_one(
        &self,
        what: &'static str,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Row> {
        let stmt = self.client.prepare_cached(sql).await.ctx(what)?;
        self.client.query_one(&stmt, params).await.ctx(what)
    }

    /// Runs a statement; returns how many rows it changed.
    pub(crate) async fn execute(
        &self,
        what: &'static str,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<u64> {
        let stmt = self.client.prepare_cached(sql).await.ctx(what)?;
        self.client.execute(&stmt, params).await.ctx(what)
    }

    /// The run with this id, locked for the rest of the transaction; `NotFound` when
    /// there is no such run.
    ///
    /// Waits for the lock, so a run below one already held breaks the lock order: callers
    /// that may hold several runs lock them up front with [`lock_runs`](Self::lock_runs).
    pub(crate) async fn lock_run(&mut self, id: &str) -> Result<&mut RunRow> {
        if !self.runs.contains_key(id) {
            let row = runs::lock(self, id, false)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
            self.hold(row);
        }
        self.held_mut(id)
    }

    /// The run with this id, locked, if that keeps the lock order or the lock is free;
    /// `None` when another transaction holds it (or it is gone).
    pub(crate) async fn try_lock_run(&mut self, id: &str) -> Result<Option<&mut RunRow>> {
        if !self.runs.contains_key(id) {
            // Waiting is safe only for a run above every run held.
            let skip = self
                .runs
                .keys()
                .next_back()
                .is_some_and(|top| top.as_str() > id);
            match runs::lock(self, id, skip).await? {
                Some(row) => self.hold(row),
                None => return Ok(None),
            }
        }
        self.held_mut(id).map(Some)
    }

    /// Locks every run of `ids` not held yet, in ascending id order, waiting for each.
    /// Missing runs are ignored.
    pub(crate) async fn lock_runs(&mut self, ids: &[String]) -> Result<()> {
        let mut wanted: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !self.runs.contains_key(*id))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        if let (Some(top), Some(first)) = (self.runs.keys().next_back(), wanted.first())
            && top.as_str() > *first
        {
            return Err(StoreError::backend(
                "locking runs",
                Corrupt(format!("run {first} locked after run {top}")),
            ));
        }
        let wanted: Vec<String> = wanted.into_iter().map(str::to_owned).collect();
        for row in runs::lock_many(self, &wanted).await? {
            self.hold(row);
        }
        Ok(())
    }

    /// Locks the runs of these attempts, in ascending id order, waiting for each; runs
    /// already held are read again under their lock only if not held. Used first thing by
    /// calls that end attempts, so the order holds.
    pub(crate) async fn lock_runs_of(&mut self, attempts: &[i64]) -> Result<()> {
        if !self.runs.is_empty() {
            // Rare (a report inside a batch): find the runs, then lock in order.
            let ids: Vec<String> = self
                .query(
                    "finding the reported runs",
                    "SELECT DISTINCT run_id FROM attempts WHERE id = ANY($1)",
                    &[&attempts],
                )
                .await?
                .iter()
                .map(|r| r.at(0))
                .collect::<Result<_>>()?;
            return self.lock_runs(&ids).await;
        }
        for row in runs::lock_of_attempts(self, attempts).await? {
            self.hold(row);
        }
        Ok(())
    }

    fn hold(&mut self, row: RunRow) {
        self.runs.insert(
            row.id.clone(),
            Held {
                saved_rev: row.rev,
                written_rev: row.rev,
                row,
            },
        );
    }

    fn held_mut(&mut self, id: &str) -> Result<&mut RunRow> {
        self.runs
            .get_mut(id)
            .map(|h| &mut h.row)
            .ok_or_else(|| corrupt(format!("run {id} is not locked")))
    }

    /// A run this transaction holds, unchanged; `None` when it holds no such run.
    pub(crate) fn held(&self, id: &str) -> Option<&RunRow> {
        self.runs.get(id).map(|h| &h.row)
    }

    /// The statements that write back every run this transaction changed, in id order;
    /// sent with the `COMMIT` so they cost no round trip of their own.
    pub(crate) fn save_sql(&self) -> Result<String> {
        let mut sql = String::new();
        for held in self.runs.values().filter(|h| h.row.rev != h.written_rev) {
            runs::push_save_sql(&mut sql, &held.row)?;
        }
        Ok(sql)
    }

    /// Writes back the runs this transaction changed now rather than with the commit, so
    /// that its own statements count them as they are (a concurrency limit's census).
    pub(crate) async fn flush_runs(&mut self) -> Result<()> {
        let sql = self.save_sql()?;
        if sql.is_empty() {
            return Ok(());
        }
        self.client.batch_execute(&sql).await.ctx("saving runs")?;
        for held in self.runs.values_mut() {
            held.written_rev = held.row.rev;
        }
        Ok(())
    }

    /// Workflow and version of each run this call ended that held a place of its
    /// workflow's concurrency limit ([`RunRow::vacated`]).
    pub(crate) fn vacated(&self) -> Vec<(String, String)> {
        self.runs
            .values()
            .filter(|h| h.row.vacated)
            .map(|h| (h.row.workflow.clone(), h.row.version_id.clone()))
            .collect()
    }

    /// The run with this id, locked, only if its lock is free (or already held): a
    /// queued run is admitted under its workflow's advisory lock, which must never wait
    /// for a row. `None` when another transaction holds it (or it is gone).
    pub(crate) async fn lock_run_if_free(&mut self, id: &str) -> Result<Option<&mut RunRow>> {
        if !self.runs.contains_key(id) {
            match runs::lock(self, id, true).await? {
                Some(row) => self.hold(row),
                None => return Ok(None),
            }
        }
        self.held_mut(id).map(Some)
    }

    /// Notes that `cancel_running` of `workflow` must stop runs once this call committed.
    pub(crate) fn note_preempt(&mut self, workflow: &str) {
        if !self.preempt.iter().any(|w| w == workflow) {
            self.preempt.push(workflow.to_owned());
        }
    }

    /// The workflows noted by [`note_preempt`](Self::note_preempt).
    pub(crate) fn take_preempt(&mut self) -> Vec<String> {
        std::mem::take(&mut self.preempt)
    }

    /// Runs this transaction created or changed, for `baton_run` notifications.
    pub(crate) fn changed_runs(&self) -> impl Iterator<Item = &str> {
        self.runs
            .iter()
            .filter(|(_, h)| h.row.rev != h.saved_rev)
            .map(|(id, _)| id.as_str())
            .chain(self.created.iter().map(String::as_str))
    }

    /// Notes a run this transaction created.
    pub(crate) fn mark_created(&mut self, run_id: &str) {
        self.created.push(run_id.to_owned());
        self.work = true;
    }

    /// Notes that the node with this row id became claimable now.
    pub(crate) fn mark_readied(&mut self, node_id: i64) {
        self.readied.push(node_id);
    }

    /// Notes that the node with this row id was handed out.
    pub(crate) fn mark_taken(&mut self, node_id: i64) {
        self.taken.push(node_id);
    }

    /// Notes that agents must look again (a back-off scheduled, a run stopped, a run made).
    pub(crate) fn mark_work(&mut self) {
        self.work = true;
    }

    /// Notes that a resource hold was released.
    pub(crate) fn mark_freed(&mut self) {
        self.freed = true;
    }

    /// Whether this call released a resource hold.
    pub(crate) fn freed(&self) -> bool {
        self.freed
    }

    /// Whether nodes this call made claimable are still ready after its own claims, or a
    /// resource was released (which nodes wait for it is not known without reading them
    /// all, so every waiting agent looks again).
    pub(crate) fn woke(&self) -> bool {
        self.freed || self.readied.iter().any(|id| !self.taken.contains(id))
    }

    /// Whether other replicas' waiting agents must look again when this commits.
    pub(crate) fn wakes_agents(&self) -> bool {
        self.work || self.woke()
    }

    /// The connection, for statements the helpers above do not cover.
    pub(crate) fn client(&self) -> &ClientWrapper {
        self.client
    }
}

/// Driver results to store results, naming what was being done and never the SQL.
pub(crate) trait SqlResult<T> {
    fn ctx(self, what: &'static str) -> Result<T>;
}

impl<T> SqlResult<T> for std::result::Result<T, tokio_postgres::Error> {
    fn ctx(self, what: &'static str) -> Result<T> {
        self.map_err(|e| match e.code() {
            Some(&SqlState::UNIQUE_VIOLATION) => {
                StoreError::Conflict(format!("{what}: a conflicting write happened first"))
            }
            _ => StoreError::backend(what, e),
        })
    }
}

/// Whether a failed transaction may simply be run again: the database broke a deadlock
/// or a serialization conflict by aborting it.
pub(crate) fn retryable(e: &StoreError) -> bool {
    let StoreError::Backend { source, .. } = e else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        })
}

/// Typed reads of a row's columns; a failure means the row does not match the schema.
pub(crate) trait RowExt {
    /// Column `idx` as `T`.
    fn at<'r, T: FromSql<'r>>(&'r self, idx: usize) -> Result<T>;
    /// A state column (`NodeState`, `RunState`, …) stored as its name.
    fn state<T: FromStr<Err = UnknownState>>(&self, idx: usize) -> Result<T>;
    /// A nullable state column.
    fn opt_state<T: FromStr<Err = UnknownState>>(&self, idx: usize) -> Result<Option<T>>;
    /// A non-negative integer column as `u32`.
    fn u32_at(&self, idx: usize) -> Result<u32>;
}

impl RowExt for Row {
    fn at<'r, T: FromSql<'r>>(&'r self, idx: usize) -> Result<T> {
        self.try_get(idx)
            .map_err(|e| StoreError::backend("reading stored data", e))
    }

    fn state<T: FromStr<Err = UnknownState>>(&self, idx: usize) -> Result<T> {
        let text: &str = self.at(idx)?;
        text.parse()
            .map_err(|e| StoreError::backend("reading stored data", e))
    }

    fn opt_state<T: FromStr<Err = UnknownState>>(&self, idx: usize) -> Result<Option<T>> {
        let text: Option<&str> = self.at(idx)?;
        text.map(|t| {
            t.parse()
                .map_err(|e| StoreError::backend("reading stored data", e))
        })
        .transpose()
    }

    fn u32_at(&self, idx: usize) -> Result<u32> {
        let n: i64 = self.at(idx)?;
        u32::try_from(n).map_err(|_| corrupt(format!("column {idx} holds {n}, not a count")))
    }
}

/// Decodes JSON kept in a column; a failure means the row is corrupt.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::backend(what, e))
}

/// Encodes a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::backend(what, e))
}

/// Stored data that breaks an invariant the store itself keeps.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(pub(crate) String);

/// An error for a row that contradicts the schema's invariants.
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::backend("reading stored data", Corrupt(what.into()))
}
