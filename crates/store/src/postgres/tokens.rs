//! Bearer tokens, stored only as hashes.

use super::db::{Db, RowExt};
use crate::{Principal, Result, StoreError, TokenKind};

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

/// Who holds the token with this hash: nobody when it is unknown or revoked, or when
/// its agent has left.
pub(crate) async fn authenticate(db: &Db<'_>, hash: &str) -> Result<Option<Principal>> {
    let Some(r) = db
        .query_opt(
            "checking a token",
            "SELECT t.kind, t.agent_id, \
               t.revoked_at IS NOT NULL OR (t.agent_id IS NOT NULL AND \
                 (a.id IS NULL OR a.deregistered_at IS NOT NULL)) \
             FROM tokens t LEFT JOIN agents a ON a.id = t.agent_id \
             WHERE t.hash = $1",
            &[&hash],
        )
        .await?
    else {
        return Ok(None);
    };
    let (kind, agent_id, revoked): (&str, Option<String>, bool) = (r.at(0)?, r.at(1)?, r.at(2)?);
    if revoked {
        return Ok(None);
    }
    Ok(match (kind, agent_id) {
        ("admin", _) => Some(Principal::Admin),
        ("enroll", _) => Some(Principal::Enroll),
        ("agent", Some(agent_id)) => Some(Principal::Agent { agent_id }),
        _ => None,
    })
}
