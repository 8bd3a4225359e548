//! Tokens and secrets as both backends read them: which principal a token row stands for,
//! and the documents built from rows. The backends only run the SQL.

use baton_api::{Role, SecretDoc, TokenDoc, format_time};

use crate::{NewToken, Principal, Result, StoreError};

/// Columns of a named token, in the order [`TokenRow`] reads them.
pub(crate) const TOKEN_COLUMNS: &str =
    "name, role, prefix, created_by, created_at, expires_at, revoked_at";

/// Columns of a secret's listing, in the order [`secret_doc`] takes them.
pub(crate) const SECRET_COLUMNS: &str = "name, workflows, created_at, updated_at";

/// A named token's row.
pub(crate) struct TokenRow {
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) prefix: String,
    pub(crate) created_by: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
}

/// What a token row found by its hash stands for at `now`.
pub(crate) struct TokenFound {
    pub(crate) kind: String,
    pub(crate) name: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) agent_id: Option<String>,
    /// Revoked, or its agent has left.
    pub(crate) dead: bool,
    pub(crate) expires_at: Option<i64>,
}

/// Who holds a token: nobody when it is revoked, expired, or its agent has left.
pub(crate) fn principal(found: TokenFound, now: i64) -> Option<Principal> {
    if found.dead || found.expires_at.is_some_and(|at| at <= now) {
        return None;
    }
    match (found.kind.as_str(), found.agent_id) {
        ("admin", _) => Some(Principal::admin()),
        ("enroll", _) => Some(Principal::Enroll),
        ("agent", Some(agent_id)) => Some(Principal::Agent { agent_id }),
        ("user", _) => Some(Principal::User {
            name: found.name?,
            role: Role::parse(found.role.as_deref()?)?,
        }),
        _ => None,
    }
}

/// The listing of a named token at `now`.
pub(crate) fn token_doc(row: TokenRow, now: i64) -> Result<TokenDoc> {
    let role = Role::parse(&row.role)
        .ok_or_else(|| corrupt(format!("token {:?}: role {:?}", row.name, row.role)))?;
    let status = if row.revoked_at.is_some() {
        "revoked"
    } else if row.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    };
    Ok(TokenDoc {
        name: row.name,
        role,
        prefix: row.prefix,
        created_by: row.created_by,
        created_at: format_time(row.created_at),
        expires_at: row.expires_at.map(format_time),
        revoked_at: row.revoked_at.map(format_time),
        status: status.to_owned(),
    })
}

/// The listing of a token just stored at `now`, as [`list`](crate::Store::list_tokens)
/// would show it.
pub(crate) fn new_token_doc(token: &NewToken, now: i64) -> Result<TokenDoc> {
    token_doc(
        TokenRow {
            name: token.name.clone(),
            role: token.role.as_str().to_owned(),
            prefix: token.prefix.clone(),
            created_by: token.created_by.clone(),
            created_at: now,
            expires_at: expires_at(now, token.expires_in_ms),
            revoked_at: None,
        },
        now,
    )
}

/// When a token made at `now` with this lifetime expires.
pub(crate) fn expires_at(now: i64, expires_in_ms: Option<u64>) -> Option<i64> {
    expires_in_ms.map(|ms| now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// A secret's scope as stored: a JSON list, or nothing for every workflow.
pub(crate) fn scope_to_sql(workflows: &Option<Vec<String>>) -> Result<Option<String>> {
    workflows
        .as_ref()
        .map(|w| serde_json::to_string(w).map_err(|e| corrupt(format!("secret scope: {e}"))))
        .transpose()
}

/// A secret's scope as read back.
pub(crate) fn scope_from_sql(name: &str, text: Option<String>) -> Result<Option<Vec<String>>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| corrupt(format!("secret {name:?}: scope: {e}")))
    })
    .transpose()
}

/// A secret's listing from its row.
pub(crate) fn secret_doc(
    name: String,
    workflows: Option<String>,
    created_at: i64,
    updated_at: i64,
) -> Result<SecretDoc> {
    let workflows = scope_from_sql(&name, workflows)?;
    Ok(SecretDoc {
        name,
        workflows,
        created_at: format_time(created_at),
        updated_at: format_time(updated_at),
    })
}

/// An error for a row that contradicts what the store itself wrote.
fn corrupt(what: String) -> StoreError {
    StoreError::backend(
        "reading stored data",
        std::io::Error::new(std::io::ErrorKind::InvalidData, what),
    )
}

/// The error for a token name nobody holds.
pub(crate) fn no_token(name: &str) -> StoreError {
    StoreError::NotFound(format!("no active token named {name:?}"))
}

/// The error for a secret nobody stored.
pub(crate) fn no_secret(name: &str) -> StoreError {
    StoreError::NotFound(format!("no secret named {name:?}"))
}

/// The error for a setting that vanished under its writer.
pub(crate) fn no_setting(key: &str) -> StoreError {
    StoreError::NotFound(format!("setting {key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kind: &str) -> TokenFound {
        TokenFound {
            kind: kind.into(),
            name: Some("ci".into()),
            role: Some("viewer".into()),
            agent_id: Some("a1".into()),
            dead: false,
            expires_at: None,
        }
    }

    #[test]
    fn token_rows_map_to_principals_until_revoked_or_expired() {
        assert_eq!(principal(found("admin"), 0), Some(Principal::admin()));
        assert_eq!(principal(found("enroll"), 0), Some(Principal::Enroll));
        assert_eq!(
            principal(found("agent"), 0),
            Some(Principal::Agent {
                agent_id: "a1".into()
            })
        );
        assert_eq!(
            principal(found("user"), 0),
            Some(Principal::User {
                name: "ci".into(),
                role: Role::Viewer
            })
        );
        let dead = TokenFound {
            dead: true,
            ..found("user")
        };
        assert_eq!(principal(dead, 0), None);
        let expiring = || TokenFound {
            expires_at: Some(100),
            ..found("user")
        };
        assert!(principal(expiring(), 99).is_some());
        assert_eq!(principal(expiring(), 100), None);
        let bad_role = TokenFound {
            role: Some("root".into()),
            ..found("user")
        };
        assert_eq!(principal(bad_role, 0), None);
        assert_eq!(principal(found("other"), 0), None);
    }

    #[test]
    fn token_status_follows_revocation_then_expiry() {
        let row = |expires_at, revoked_at| TokenRow {
            name: "ci".into(),
            role: "operator".into(),
            prefix: "baton_user_ab".into(),
            created_by: "admin".into(),
            created_at: 0,
            expires_at,
            revoked_at,
        };
        assert_eq!(token_doc(row(None, None), 5).unwrap().status, "active");
        assert_eq!(token_doc(row(Some(5), None), 5).unwrap().status, "expired");
        assert_eq!(
            token_doc(row(Some(5), Some(1)), 9).unwrap().status,
            "revoked"
        );
        assert_eq!(expires_at(10, Some(5)), Some(15));
        assert_eq!(expires_at(10, Some(u64::MAX)), Some(i64::MAX));
    }
}
