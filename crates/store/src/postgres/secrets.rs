//! Secrets, sealed by the server, and server-wide settings.

use super::db::{Db, RowExt};
use crate::security::{self, SECRET_COLUMNS};
use crate::{Result, SealedSecret};
use baton_api::SecretDoc;

/// Stores a sealed secret, replacing one with the same name (its creation date stays).
pub(crate) async fn put(db: &Db<'_>, secret: &SealedSecret) -> Result<SecretDoc> {
    let scope = security::scope_to_sql(&secret.workflows)?;
    let r = db
        .query_one(
            "storing a secret",
            &format!(
                "INSERT INTO secrets (name, nonce, sealed, workflows, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, \
                   sealed = excluded.sealed, workflows = excluded.workflows, \
                   updated_at = excluded.updated_at \
                 RETURNING {SECRET_COLUMNS}"
            ),
            &[&secret.name, &secret.nonce, &secret.sealed, &scope, &db.now],
        )
        .await?;
    security::secret_doc(r.at(0)?, r.at(1)?, r.at(2)?, r.at(3)?)
}

/// Every secret's listing, by name.
pub(crate) async fn list(db: &Db<'_>) -> Result<Vec<SecretDoc>> {
    let rows = db
        .query(
            "listing secrets",
            &format!("SELECT {SECRET_COLUMNS} FROM secrets ORDER BY name"),
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| security::secret_doc(r.at(0)?, r.at(1)?, r.at(2)?, r.at(3)?))
        .collect()
}

/// Removes a secret.
pub(crate) async fn delete(db: &Db<'_>, name: &str) -> Result<()> {
    let gone = db
        .execute(
            "removing a secret",
            "DELETE FROM secrets WHERE name = $1",
            &[&name],
        )
        .await?;
    if gone == 0 {
        return Err(security::no_secret(name));
    }
    Ok(())
}

/// The sealed secrets with these names, or every one.
pub(crate) async fn sealed(db: &Db<'_>, names: Option<&[String]>) -> Result<Vec<SealedSecret>> {
    let names: Option<Vec<String>> = names.map(<[String]>::to_vec);
    let rows = db
        .query(
            "reading secrets",
            "SELECT name, nonce, sealed, workflows FROM secrets \
             WHERE $1::text[] IS NULL OR name = ANY($1) ORDER BY name",
            &[&names],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let name: String = r.at(0)?;
            let workflows = security::scope_from_sql(&name, r.at(3)?)?;
            Ok(SealedSecret {
                nonce: r.at(1)?,
                sealed: r.at(2)?,
                workflows,
                name,
            })
        })
        .collect()
}

/// The stored value of a setting, storing `value` first when there is none.
pub(crate) async fn setting_or_insert(db: &Db<'_>, key: &str, value: &[u8]) -> Result<Vec<u8>> {
    db.execute(
        "storing a setting",
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&key, &value],
    )
    .await?;
    let row = db
        .query_opt(
            "reading a setting",
            "SELECT value FROM settings WHERE key = $1",
            &[&key],
        )
        .await?
        .ok_or_else(|| security::no_setting(key))?;
    row.at(0)
}

/// Replaces the sealed values of `secrets` and the setting `key`.
pub(crate) async fn reseal(
    db: &Db<'_>,
    secrets: &[SealedSecret],
    key: &str,
    value: &[u8],
) -> Result<()> {
    for s in secrets {
        db.execute(
            "resealing secrets",
            "UPDATE secrets SET nonce = $2, sealed = $3 WHERE name = $1",
            &[&s.name, &s.nonce, &s.sealed],
        )
        .await?;
    }
    db.execute(
        "storing a setting",
        "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}
