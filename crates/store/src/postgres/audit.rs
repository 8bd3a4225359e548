//! The audit trail: append an entry, read a page newest first.
//!
//! Ids come from a sequence, so a transaction that took an id may commit after one that
//! took a larger id: a reader paging at that moment can miss the slower entry on the page
//! it already read. Entries are never lost, only seen on a later read.

use baton_api::AuditPage;

use super::db::{Db, Params, RowExt};
use crate::Result;
use crate::audit::{self, Query, Record};

/// Appends a checked entry at the store's time; returns its id.
pub(crate) async fn record(db: &Db<'_>, r: &Record) -> Result<i64> {
    db.query_one(
        "recording an audit entry",
        "INSERT INTO audit (at, actor, action, target, detail) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[&db.now, &r.actor, &r.action, &r.target, &r.detail],
    )
    .await?
    .at(0)
}

/// A page of entries, newest first.
pub(crate) async fn page(db: &Db<'_>, query: &Query) -> Result<AuditPage> {
    // One statement per combination of filters, so each is planned for its own index.
    let mut sql =
        String::from("SELECT id, at, actor, action, target, detail FROM audit WHERE id < $1");
    let rows = query.rows();
    let mut args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&query.before];
    if let Some(actor) = &query.actor {
        args.push(actor);
        sql.push_str(&format!(" AND actor = ${}", args.len()));
    }
    if let Some(action) = &query.action {
        args.push(action);
        sql.push_str(&format!(" AND action = ${}", args.len()));
    }
    args.push(&rows);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
    let params: &Params<'_> = &args;
    let found = db
        .query("reading the audit trail", &sql, params)
        .await?
        .iter()
        .map(|r| Ok((r.at(0)?, r.at(1)?, r.at(2)?, r.at(3)?, r.at(4)?, r.at(5)?)))
        .collect::<Result<Vec<audit::Row>>>()?;
    audit::page(query, found)
}
