//! Schema migrations, embedded in the binary and tracked with `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::db::SqlResult;
use crate::{Result, StoreError};

/// Every migration in order; the database's `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_deadlines_rerun.sql"),
    include_str!("../../migrations/sqlite/0003_scheduling.sql"),
    include_str!("../../migrations/sqlite/0004_security.sql"),
    include_str!("../../migrations/sqlite/0005_audit.sql"),
];

/// Applies the migrations the database has not seen, each in its own transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    loop {
        // `BEGIN IMMEDIATE` before reading the version, so two processes opening the
        // same new file cannot both apply a migration.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("migrating the database")?;
        let applied: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("reading the schema version")?;
        if applied > known {
            return Err(StoreError::Invalid(format!(
                "the database has schema version {applied}, newer than this baton knows ({known}); \
                 use a newer baton"
            )));
        }
        let Some(sql) = MIGRATIONS.get(applied as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql).ctx("migrating the database")?;
        tx.pragma_update(None, "user_version", applied + 1)
            .ctx("migrating the database")?;
        tx.commit().ctx("migrating the database")?;
        tracing::info!(version = applied + 1, "applied database migration");
    }
}
