//! Bearer tokens, stored only as hashes.

use rusqlite::{OptionalExtension, params};

use super::db::{Db, SqlResult};
use crate::{Principal, Result, StoreError, TokenKind};

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

/// Who holds the token with this hash: nobody when it is unknown or revoked, or when
/// its agent has left.
pub(crate) fn authenticate(db: &Db<'_>, hash: &str) -> Result<Option<Principal>> {
    let row: Option<(String, Option<String>, bool)> = db
        .conn
        .prepare_cached(
            "SELECT t.kind, t.agent_id, \
               t.revoked_at IS NOT NULL OR (t.agent_id IS NOT NULL AND \
                 (a.id IS NULL OR a.deregistered_at IS NOT NULL)) \
             FROM tokens t LEFT JOIN agents a ON a.id = t.agent_id \
             WHERE t.hash = ?1",
        )
        .and_then(|mut s| {
            s.query_row([hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .ctx("checking a token")?;
    let Some((kind, agent_id, revoked)) = row else {
        return Ok(None);
    };
    if revoked {
        return Ok(None);
    }
    Ok(match (kind.as_str(), agent_id) {
        ("admin", _) => Some(Principal::Admin),
        ("enroll", _) => Some(Principal::Enroll),
        ("agent", Some(agent_id)) => Some(Principal::Agent { agent_id }),
        _ => None,
    })
}
