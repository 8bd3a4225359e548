//! Secrets on the server: sealing what `baton secrets set` sends, handing values to the
//! agent that holds an attempt, and masking every known value in what agents send back.
//!
//! Values live in memory only while a request uses them, and in the masker (which must
//! know them to hide them). They never reach a log line, a run document or the database in
//! clear: the store keeps them sealed (see `secrets_key`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};

use baton_api::{Assignment, PutSecret, SecretDoc, SecretValue};
use baton_core::mask::Masker;
use baton_store::{SealedSecret, Store, StoreError};

use crate::ServerError;
use crate::error::ApiError;
use crate::secrets_key::{KEY_CHECK_SETTING, SecretsKey};

/// Largest secret value accepted, in bytes.
pub(crate) const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The key and a masker of every secret value this server has seen.
pub(crate) struct Secrets {
    key: SecretsKey,
    masking: RwLock<Masking>,
}

#[derive(Default)]
struct Masking {
    values: BTreeSet<String>,
    masker: Arc<Masker>,
}

impl Secrets {
    /// Checks `key` against the one the database's secrets were sealed with (the first
    /// server to start records it) and learns every stored value for masking. When they
    /// differ and `old` is that earlier key, every secret is sealed again under `key`, in
    /// one transaction: a key rotation.
    pub(crate) async fn start(
        store: &dyn Store,
        key: SecretsKey,
        old: Option<SecretsKey>,
    ) -> Result<Secrets, ServerError> {
        let check = store
            .setting_or_insert(KEY_CHECK_SETTING, &key.check_value())
            .await
            .map_err(ServerError::Store)?;
        if !key.matches_check(&check) {
            match old {
                Some(old) if old.matches_check(&check) => rotate(store, &old, &key).await?,
                Some(_) => {
                    return Err(ServerError::Config(
                        "neither the secrets key nor the old one (secrets.key.old or \
                         BATON_SECRETS_OLD_KEY) is the one this database's secrets were \
                         sealed with"
                            .into(),
                    ));
                }
                None => {
                    return Err(ServerError::Config(
                        "the secrets key is not the one this database's secrets were sealed \
                         with: give every server the same secrets.key (or BATON_SECRETS_KEY); \
                         to rotate, keep the old key as secrets.key.old (or \
                         BATON_SECRETS_OLD_KEY)"
                            .into(),
                    ));
                }
            }
        }
        let secrets = Secrets {
            key,
            masking: RwLock::default(),
        };
        secrets.refresh(store).await.map_err(ServerError::Store)?;
        Ok(secrets)
    }

    /// The masker of every secret value known here; empty (and free) when there are none.
    pub(crate) fn masker(&self) -> Arc<Masker> {
        self.masking
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .masker
            .clone()
    }

    /// Relearns the stored values (after a change here, or to catch up with other
    /// replicas).
    pub(crate) async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let sealed = store.sealed_secrets(None).await?;
        let values = sealed.iter().filter_map(|s| self.open(s)).collect();
        self.learn(values, true);
        Ok(())
    }

    /// Adds `values` to the masker (or makes it of exactly them, with `replace`).
    fn learn(&self, values: BTreeSet<String>, replace: bool) {
        let mut masking = self.masking.write().unwrap_or_else(PoisonError::into_inner);
        let values = if replace {
            values
        } else if values.is_subset(&masking.values) {
            return;
        } else {
            masking.values.union(&values).cloned().collect()
        };
        match Masker::new(&values) {
            Ok(masker) => {
                masking.masker = Arc::new(masker);
                masking.values = values;
            }
            // Only absurdly large pattern sets fail; keeping the old masker hides what it
            // knew, and agents still mask what they were given.
            Err(e) => tracing::error!(error = %e, "cannot build the secrets masker"),
        }
    }

    fn open(&self, s: &SealedSecret) -> Option<String> {
        let plain = self.key.open(&s.name, &s.nonce, &s.sealed);
        if plain.is_none() {
            tracing::error!(secret = %s.name, "a stored secret does not open with this key");
        }
        plain.and_then(|p| String::from_utf8(p).ok())
    }

    /// Seals and stores a secret, after checking its name, value and scope.
    pub(crate) async fn put(
        &self,
        store: &dyn Store,
        name: &str,
        body: PutSecret,
    ) -> Result<SecretDoc, ApiError> {
        baton_core::check_secret_name(name).map_err(ApiError::bad_request)?;
        if body.value.is_empty() {
            return Err(ApiError::bad_request("a secret's value must not be empty"));
        }
        if body.value.len() > MAX_SECRET_BYTES {
            return Err(ApiError::bad_request(format!(
                "a secret's value is at most {MAX_SECRET_BYTES} bytes; this one has {}",
                body.value.len()
            )));
        }
        if let Some(workflows) = &body.workflows {
            if workflows.is_empty() {
                return Err(ApiError::bad_request(
                    "workflows: name at least one workflow, or leave it out for every workflow",
                ));
            }
            for w in workflows {
                baton_core::check_workflow_name(w)
                    .map_err(|e| ApiError::bad_request(format!("workflows: {e}")))?;
            }
        }
        let (nonce, sealed) = self.key.seal(name, body.value.as_bytes());
        let doc = store
            .put_secret(&SealedSecret {
                name: name.to_owned(),
                nonce,
                sealed,
                workflows: body.workflows,
            })
            .await?;
        // The new value is masked from now on; the old one stays masked until a refresh,
        // as text already sent may still hold it.
        self.learn(BTreeSet::from([body.value]), false);
        Ok(doc)
    }

    /// Fills in the secret values of assignments that refer to secrets, or marks them
    /// refused (naming the secret) when one is missing or not for their workflow.
    pub(crate) async fn resolve(
        &self,
        store: &dyn Store,
        assignments: &mut [Assignment],
    ) -> Result<(), StoreError> {
        let names: BTreeSet<&String> = assignments
            .iter()
            .flat_map(|a| a.secret_refs.values())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = names.into_iter().cloned().collect();
        let found: BTreeMap<String, SealedSecret> = store
            .sealed_secrets(Some(&names))
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let mut seen = BTreeSet::new();
        for a in assignments.iter_mut().filter(|a| !a.secret_refs.is_empty()) {
            match self.values_for(a, &found) {
                Ok(values) => {
                    seen.extend(values.values().map(|v| v.0.clone()));
                    a.secrets = values;
                }
                Err(why) => a.refused = Some(why),
            }
        }
        self.learn(seen, false);
        Ok(())
    }

    fn values_for(
        &self,
        a: &Assignment,
        found: &BTreeMap<String, SealedSecret>,
    ) -> Result<BTreeMap<String, SecretValue>, String> {
        let mut values = BTreeMap::new();
        for (var, name) in &a.secret_refs {
            let s = found
                .get(name)
                .ok_or_else(|| format!("secret {name:?} (for env {var}) is not set"))?;
            if s.workflows
                .as_ref()
                .is_some_and(|w| !w.contains(&a.workflow))
            {
                return Err(format!(
                    "secret {name:?} (for env {var}) is not available to workflow {:?}",
                    a.workflow
                ));
            }
            let value = self
                .open(s)
                .ok_or_else(|| format!("secret {name:?} (for env {var}) cannot be opened"))?;
            values.insert(var.clone(), SecretValue(value));
        }
        Ok(values)
    }
}

/// Seals every stored secret again under `new` (they open under `old`), and records
/// `new`'s check value, all in one transaction.
async fn rotate(store: &dyn Store, old: &SecretsKey, new: &SecretsKey) -> Result<(), ServerError> {
    let sealed = store
        .sealed_secrets(None)
        .await
        .map_err(ServerError::Store)?;
    let mut resealed = Vec::with_capacity(sealed.len());
    for s in sealed {
        let plain = old.open(&s.name, &s.nonce, &s.sealed).ok_or_else(|| {
            ServerError::Config(format!(
                "secret {:?} does not open with the old secrets key; nothing was changed",
                s.name
            ))
        })?;
        let (nonce, sealed) = new.seal(&s.name, &plain);
        resealed.push(SealedSecret { nonce, sealed, ..s });
    }
    store
        .reseal_secrets(&resealed, KEY_CHECK_SETTING, &new.check_value())
        .await
        .map_err(ServerError::Store)?;
    tracing::warn!(
        secrets = resealed.len(),
        "secrets sealed again under the new secrets key; the old key may now be deleted"
    );
    Ok(())
}
