//! Bearer tokens, stored only as hashes.

use rusqlite::{OptionalExtension, params};

use super::db::{Db, SqlResult};
use crate::security::{self, TOKEN_COLUMNS, TokenFound, TokenRow};
use crate::{NewToken, Principal, Result, StoreError, TokenKind};
use baton_api::TokenDoc;

/// Records the hash of a server token; storing the same hash again changes nothing.
pub(crate) fn put_server_token(db: &Db<'_>, kind: TokenKind, hash: &str) -> Result<()> {
    if kind == TokenKind::Agent {
        return Err(StoreError::Invalid(
            "agent tokens are made by registering an agent".into(),
        ));
    }
    db.conn
        .prepare_cached(
            "INSERT INTO tokens (hash, kind, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![hash, kind.as_str(), db.now]))
        .ctx("storing a server token")?;
    Ok(())
}

/// Who holds the token with this hash: nobody when it is unknown, revoked or expired, or
/// when its agent has left.
pub(crate) fn authenticate(db: &Db<'_>, hash: &str) -> Result<Option<Principal>> {
    let found = db
        .conn
        .prepare_cached(
            "SELECT t.kind, t.name, t.role, t.agent_id, \
               t.revoked_at IS NOT NULL OR (t.agent_id IS NOT NULL AND \
                 (a.id IS NULL OR a.deregistered_at IS NOT NULL)), \
               t.expires_at \
             FROM tokens t LEFT JOIN agents a ON a.id = t.agent_id \
             WHERE t.hash = ?1",
        )
        .and_then(|mut s| {
            s.query_row([hash], |r| {
                Ok(TokenFound {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    agent_id: r.get(3)?,
                    dead: r.get(4)?,
                    expires_at: r.get(5)?,
                })
            })
            .optional()
        })
        .ctx("checking a token")?;
    Ok(found.and_then(|f| security::principal(f, db.now)))
}

/// Stores a named token.
pub(crate) fn create(db: &Db<'_>, token: &NewToken) -> Result<TokenDoc> {
    let expires_at = security::expires_at(db.now, token.expires_in_ms);
    db.conn
        .prepare_cached(
            "INSERT INTO tokens (hash, kind, name, role, prefix, created_by, created_at, \
               expires_at) VALUES (?1, 'user', ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                token.hash,
                token.name,
                token.role.as_str(),
                token.prefix,
                token.created_by,
                db.now,
                expires_at
            ])
        })
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(format!(
                "a token named {:?} exists; revoke it first or pick another name",
                token.name
            )),
            _ => StoreError::backend("storing a token", e),
        })?;
    security::new_token_doc(token, db.now)
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        name: r.get(0)?,
        role: r.get(1)?,
        prefix: r.get(2)?,
        created_by: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

/// Every named token, newest first.
pub(crate) fn list(db: &Db<'_>) -> Result<Vec<TokenDoc>> {
    let rows = db
        .conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE kind = 'user' \
             ORDER BY created_at DESC, name"
        ))
        .and_then(|mut s| s.query_map([], read_row)?.collect::<Result<Vec<_>, _>>())
        .ctx("listing tokens")?;
    rows.into_iter()
        .map(|r| security::token_doc(r, db.now))
        .collect()
}

/// Revokes the named token that is not revoked yet.
pub(crate) fn revoke(db: &Db<'_>, name: &str) -> Result<TokenDoc> {
    let row = db
        .conn
        .prepare_cached(&format!(
            "UPDATE tokens SET revoked_at = ?2 \
             WHERE kind = 'user' AND name = ?1 AND revoked_at IS NULL \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .and_then(|mut s| s.query_row(params![name, db.now], read_row).optional())
        .ctx("revoking a token")?
        .ok_or_else(|| security::no_token(name))?;
    security::token_doc(row, db.now)
}
