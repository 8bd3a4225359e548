//! Schema migrations, embedded in the binary and tracked in `baton_migrations`.
//!
//! All pending migrations run in one transaction behind a transaction-scoped advisory
//! lock keyed by the schema, so replicas starting at once apply each exactly once: the
//! others wait, then find nothing left to do. PostgreSQL's DDL is transactional, so a
//! failed migration leaves the schema as it was.

use tokio_postgres::Client;

use super::db::SqlResult;
use crate::{Result, StoreError};

/// Every migration in order; version `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_deadlines_rerun.sql"),
    include_str!("../../migrations/postgres/0003_leads.sql"),
    include_str!("../../migrations/postgres/0004_scheduling.sql"),
    include_str!("../../migrations/postgres/0005_security.sql"),
    include_str!("../../migrations/postgres/0006_audit.sql"),
];

/// Creates `schema` when named, then applies the migrations the database has not seen.
pub(crate) async fn migrate(client: &mut Client, schema: Option<&str>) -> Result<()> {
    const WHAT: &str = "migrating the database";
    let tx = client.transaction().await.ctx(WHAT)?;
    // The key names the schema, so stores in different schemas of one database (tests)
    // do not wait for each other.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended( \
           'baton:migrate:' || COALESCE($1::text, current_schema(), ''), 0))",
        &[&schema],
    )
    .await
    .ctx(WHAT)?;
    if let Some(schema) = schema {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .await
        .ctx(WHAT)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS baton_migrations ( \
           version BIGINT PRIMARY KEY, \
           applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .ctx(WHAT)?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM baton_migrations",
            &[],
        )
        .await
        .ctx("reading the schema version")?
        .try_get(0)
        .ctx("reading the schema version")?;
    let known = MIGRATIONS.len() as i64;
    if applied > known {
        return Err(StoreError::Invalid(format!(
            "the database has schema version {applied}, newer than this baton knows ({known}); \
             use a newer baton"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = i as i64 + 1;
        tx.batch_execute(sql).await.ctx(WHAT)?;
        tx.execute(
            "INSERT INTO baton_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .ctx(WHAT)?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await.ctx(WHAT)
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
