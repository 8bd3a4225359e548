//! Bearer tokens, stored only as hashes.

use tokio_postgres::Row;

use super::db::{Db, RowExt};
use crate::security::{self, TOKEN_COLUMNS, TokenFound, TokenRow};
use crate::{NewToken, Principal, Result, StoreError, TokenKind};
use baton_api::TokenDoc;

/// Records the hash of a server token; storing the same hash again changes nothing.
pub(crate) async fn put_server_token(db: &Db<'_>, kind: TokenKind, hash: &str) -> Result<()> {
    if kind == TokenKind::Agent {
        return Err(StoreError::Invalid(
            "agent tokens are made by registering an agent".into(),
        ));
    }
    db.execute(
        "storing a server token",
        "INSERT INTO tokens (hash, kind, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (hash) DO NOTHING",
        &[&hash, &kind.as_str(), &db.now],
    )
    .await?;
    Ok(())
}

/// Who holds the token with this hash: nobody when it is unknown, revoked or expired, or
/// when its agent has left.
pub(crate) async fn authenticate(db: &Db<'_>, hash: &str) -> Result<Option<Principal>> {
    let Some(r) = db
        .query_opt(
            "checking a token",
            "SELECT t.kind, t.name, t.role, t.agent_id, \
               t.revoked_at IS NOT NULL OR (t.agent_id IS NOT NULL AND \
                 (a.id IS NULL OR a.deregistered_at IS NOT NULL)), \
               t.expires_at \
             FROM tokens t LEFT JOIN agents a ON a.id = t.agent_id \
             WHERE t.hash = $1",
            &[&hash],
        )
        .await?
    else {
        return Ok(None);
    };
    let found = TokenFound {
        kind: r.at(0)?,
        name: r.at(1)?,
        role: r.at(2)?,
        agent_id: r.at(3)?,
        dead: r.at(4)?,
        expires_at: r.at(5)?,
    };
    Ok(security::principal(found, db.now))
}

/// Stores a named token.
pub(crate) async fn create(db: &Db<'_>, token: &NewToken) -> Result<TokenDoc> {
    let expires_at = security::expires_at(db.now, token.expires_in_ms);
    let inserted = db
        .execute(
            "storing a token",
            "INSERT INTO tokens (hash, kind, name, role, prefix, created_by, created_at, \
               expires_at) VALUES ($1, 'user', $2, $3, $4, $5, $6, $7) \
             ON CONFLICT DO NOTHING",
            &[
                &token.hash,
                &token.name,
                &token.role.as_str(),
                &token.prefix,
                &token.created_by,
                &db.now,
                &expires_at,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "a token named {:?} exists; revoke it first or pick another name",
            token.name
        )));
    }
    security::new_token_doc(token, db.now)
}

fn read_row(r: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        name: r.at(0)?,
        role: r.at(1)?,
        prefix: r.at(2)?,
        created_by: r.at(3)?,
        created_at: r.at(4)?,
        expires_at: r.at(5)?,
        revoked_at: r.at(6)?,
    })
}

/// Every named token, newest first.
pub(crate) async fn list(db: &Db<'_>) -> Result<Vec<TokenDoc>> {
    let rows = db
        .query(
            "listing tokens",
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE kind = 'user' \
                 ORDER BY created_at DESC, name"
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| security::token_doc(read_row(r)?, db.now))
        .collect()
}

/// Revokes the named token that is not revoked yet.
pub(crate) async fn revoke(db: &Db<'_>, name: &str) -> Result<TokenDoc> {
    let row = db
        .query_opt(
            "revoking a token",
            &format!(
                "UPDATE tokens SET revoked_at = $2 \
                 WHERE kind = 'user' AND name = $1 AND revoked_at IS NULL \
                 RETURNING {TOKEN_COLUMNS}"
            ),
            &[&name, &db.now],
        )
        .await?
        .ok_or_else(|| security::no_token(name))?;
    security::token_doc(read_row(&row)?, db.now)
}
