//! Secrets, sealed by the server, and server-wide settings.

use rusqlite::{OptionalExtension, params};

use super::db::{Db, SqlResult};
use crate::security::{self, SECRET_COLUMNS};
use crate::{Result, SealedSecret};
use baton_api::SecretDoc;

/// Stores a sealed secret, replacing one with the same name (its creation date stays).
pub(crate) fn put(db: &Db<'_>, secret: &SealedSecret) -> Result<SecretDoc> {
    let scope = security::scope_to_sql(&secret.workflows)?;
    let (name, workflows, created, updated) = db
        .conn
        .prepare_cached(&format!(
            "INSERT INTO secrets (name, nonce, sealed, workflows, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
             ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, \
               sealed = excluded.sealed, workflows = excluded.workflows, \
               updated_at = excluded.updated_at \
             RETURNING {SECRET_COLUMNS}"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![secret.name, secret.nonce, secret.sealed, scope, db.now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
        })
        .ctx("storing a secret")?;
    security::secret_doc(name, workflows, created, updated)
}

/// Every secret's listing, by name.
pub(crate) fn list(db: &Db<'_>) -> Result<Vec<SecretDoc>> {
    let rows: Vec<(String, Option<String>, i64, i64)> = db
        .conn
        .prepare_cached(&format!(
            "SELECT {SECRET_COLUMNS} FROM secrets ORDER BY name"
        ))
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .ctx("listing secrets")?;
    rows.into_iter()
        .map(|(n, w, c, u)| security::secret_doc(n, w, c, u))
        .collect()
}

/// Removes a secret.
pub(crate) fn delete(db: &Db<'_>, name: &str) -> Result<()> {
    let gone = db
        .conn
        .prepare_cached("DELETE FROM secrets WHERE name = ?1")
        .and_then(|mut s| s.execute([name]))
        .ctx("removing a secret")?;
    if gone == 0 {
        return Err(security::no_secret(name));
    }
    Ok(())
}

/// The sealed secrets with these names, or every one.
pub(crate) fn sealed(db: &Db<'_>, names: Option<&[String]>) -> Result<Vec<SealedSecret>> {
    let mut stmt = db
        .conn
        .prepare_cached("SELECT name, nonce, sealed, workflows FROM secrets ORDER BY name")
        .ctx("reading secrets")?;
    // The scope is read as text first: its JSON is checked outside the row callback.
    let rows: Vec<(SealedSecret, Option<String>)> = stmt
        .query_map([], |r| {
            let secret = SealedSecret {
                name: r.get(0)?,
                nonce: r.get(1)?,
                sealed: r.get(2)?,
                workflows: None,
            };
            Ok((secret, r.get(3)?))
        })
        .and_then(Iterator::collect)
        .ctx("reading secrets")?;
    rows.into_iter()
        .filter(|(s, _)| names.is_none_or(|n| n.contains(&s.name)))
        .map(|(mut secret, scope)| {
            secret.workflows = security::scope_from_sql(&secret.name, scope)?;
            Ok(secret)
        })
        .collect()
}

/// The stored value of a setting, storing `value` first when there is none.
pub(crate) fn setting_or_insert(db: &Db<'_>, key: &str, value: &[u8]) -> Result<Vec<u8>> {
    db.conn
        .prepare_cached("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
        .and_then(|mut s| s.execute(params![key, value]))
        .ctx("storing a setting")?;
    db.conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .ctx("reading a setting")?
        .ok_or_else(|| security::no_setting(key))
}

/// Replaces the sealed values of `secrets` and the setting `key`.
pub(crate) fn reseal(db: &Db<'_>, secrets: &[SealedSecret], key: &str, value: &[u8]) -> Result<()> {
    let mut stmt = db
        .conn
        .prepare_cached("UPDATE secrets SET nonce = ?2, sealed = ?3 WHERE name = ?1")
        .ctx("resealing secrets")?;
    for s in secrets {
        stmt.execute(params![s.name, s.nonce, s.sealed])
            .ctx("resealing secrets")?;
    }
    db.conn
        .prepare_cached(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .and_then(|mut s| s.execute(params![key, value]))
        .ctx("storing a setting")?;
    Ok(())
}
