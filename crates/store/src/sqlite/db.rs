//! What every call gets: the open transaction, the caches, the settings, the time; and
//! the mapping of driver errors to [`StoreError`].

use std::cell::{Cell, RefCell};
use std::str::FromStr;

use baton_core::UnknownState;
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, Row};

use super::Config;
use super::cache::Cache;
use crate::{Result, StoreError};

/// One call's view of the database.
pub(crate) struct Db<'a> {
    /// The call's transaction.
    pub(crate) conn: &'a Connection,
    pub(crate) cache: &'a Cache,
    pub(crate) cfg: &'a Config,
    /// The store's clock, read once per call.
    pub(crate) now: i64,
    /// Nodes this call made claimable now (row ids), so a batch of reports can tell
    /// whether its own claim took them all or other agents must be woken.
    readied: RefCell<Vec<i64>>,
    /// A resource hold was released: ready nodes waiting for it may be claimable now.
    freed: Cell<bool>,
}

impl<'a> Db<'a> {
    pub(crate) fn new(conn: &'a Connection, cache: &'a Cache, cfg: &'a Config, now: i64) -> Self {
        Db {
            conn,
            cache,
            cfg,
            now,
            readied: RefCell::new(Vec::new()),
            freed: Cell::new(false),
        }
    }

    /// Notes that the node with this row id became claimable now.
    pub(crate) fn mark_readied(&self, node_id: i64) {
        self.readied.borrow_mut().push(node_id);
    }

    /// Notes that a resource hold was released.
    pub(crate) fn mark_freed(&self) {
        self.freed.set(true);
    }

    /// Whether agents waiting for work must look again: this call made a node claimable
    /// that is not among `taken` (the nodes its own claim took), or released a resource
    /// hold (which nodes wait for it is not known without reading them all).
    pub(crate) fn woke(&self, taken: &[i64]) -> bool {
        self.freed.get() || self.readied.borrow().iter().any(|id| !taken.contains(id))
    }
}

/// Driver results to store results, naming what was being done and never the SQL.
pub(crate) trait SqlResult<T> {
    fn ctx(self, what: &'static str) -> Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn ctx(self, what: &'static str) -> Result<T> {
        self.map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) if is_unique_violation(&e) => {
                StoreError::Conflict(format!("{what}: a conflicting write happened first"))
            }
            _ => StoreError::backend(what, e),
        })
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Reads a state column (`NodeState`, `RunState`, …) stored as its name.
pub(crate) fn state<T: FromStr<Err = UnknownState>>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Reads a nullable state column.
pub(crate) fn opt_state<T: FromStr<Err = UnknownState>>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| {
        t.parse()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
    })
    .transpose()
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

/// A fresh random fencing token or jitter source.
pub(crate) fn random_fence() -> i64 {
    rand::random::<i64>()
}

/// Stored data that breaks an invariant the store itself keeps.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(pub(crate) String);

/// An error for a row that contradicts the schema's invariants.
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::backend("reading stored data", Corrupt(what.into()))
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::super::{Synchronous, open_connection};

    #[test]
    fn cached_statements_are_not_recompiled_for_new_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn =
            open_connection(&dir.path().join("p.db"), Synchronous::Normal, false).expect("open");
        conn.execute_batch(
            "CREATE TABLE a (id TEXT PRIMARY KEY, gone INTEGER); \
             CREATE TABLE t (hash TEXT PRIMARY KEY, a_id TEXT); \
             CREATE INDEX t_live ON t (a_id) WHERE a_id IS NOT NULL;",
        )
        .expect("schema");
        // The shape of the token lookup, which SQLite recompiled on every call before.
        let sql = "SELECT t.a_id, a.gone FROM t LEFT JOIN a ON a.id = t.a_id \
                   WHERE t.hash = ?1 LIMIT ?2";
        for i in 0..5 {
            let mut stmt = conn.prepare_cached(sql).expect("prepare");
            let mut rows = stmt
                .query(rusqlite::params![format!("h{i}"), i + 1])
                .expect("query");
            while rows.next().expect("row").is_some() {}
        }
        let stmt = conn.prepare_cached(sql).expect("prepare");
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }
}
