//! The audit trail: append an entry, read a page newest first.

use baton_api::AuditPage;
use rusqlite::params;
use rusqlite::types::ToSql;

use super::db::{Db, SqlResult};
use crate::Result;
use crate::audit::{self, Query, Record};

/// Appends a checked entry at the store's time; returns its id.
pub(crate) fn record(db: &Db<'_>, r: &Record) -> Result<i64> {
    db.conn
        .prepare_cached(
            "INSERT INTO audit (at, actor, action, target, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![db.now, r.actor, r.action, r.target, r.detail],
                |row| row.get(0),
            )
        })
        .ctx("recording an audit entry")
}

/// A page of entries, newest first.
pub(crate) fn page(db: &Db<'_>, query: &Query) -> Result<AuditPage> {
    // One statement per combination of filters, so each keeps the plan that walks its own
    // index backwards (plans are pinned per statement).
    let mut sql =
        String::from("SELECT id, at, actor, action, target, detail FROM audit WHERE id < ?1");
    let mut args: Vec<&dyn ToSql> = vec![&query.before];
    if let Some(actor) = &query.actor {
        args.push(actor);
        sql.push_str(&format!(" AND actor = ?{}", args.len()));
    }
    if let Some(action) = &query.action {
        args.push(action);
        sql.push_str(&format!(" AND action = ?{}", args.len()));
    }
    let rows = query.rows();
    args.push(&rows);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
    let mut stmt = db
        .conn
        .prepare_cached(&sql)
        .ctx("reading the audit trail")?;
    let found = stmt
        .query_map(args.as_slice(), |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .ctx("reading the audit trail")?
        .collect::<rusqlite::Result<Vec<audit::Row>>>()
        .ctx("reading the audit trail")?;
    audit::page(query, found)
}
