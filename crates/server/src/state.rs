//! What every handler and routine shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton_store::{PgOptions, PgStore, SqliteOptions, SqliteStore, Store};
use tokio_util::sync::CancellationToken;

use crate::config::Database;
use crate::secrets::Secrets;
use crate::secrets_key::SecretsKey;
use crate::tokens::{ServerTokens, hash_token};
use crate::wake::Wake;
use crate::{ServerConfig, ServerError};

/// The state behind [`router`](crate::router): the store, the wake-ups, the settings.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    wake: Wake,
    artifacts_dir: PathBuf,
    lease_ms: u64,
    max_artifact_bytes: u64,
    admin_hash: String,
    enroll_hash: String,
    secrets: Secrets,
    shutdown: CancellationToken,
}

impl AppState {
    /// Prepares everything a server needs but the socket: checks the config, creates the
    /// data dir and the token files, opens the store and records the token hashes.
    pub async fn open(
        config: &ServerConfig,
        shutdown: CancellationToken,
    ) -> Result<(AppState, ServerTokens), ServerError> {
        config.validate()?;
        let tokens = ServerTokens::load_or_create(&config.data_dir)?;
        let store = open_store(config).await?;
        let state = AppState::new(store, config, &tokens, shutdown).await?;
        Ok((state, tokens))
    }

    /// Builds the state on a given store and records the token hashes in it.
    pub async fn new(
        store: Arc<dyn Store>,
        config: &ServerConfig,
        tokens: &ServerTokens,
        shutdown: CancellationToken,
    ) -> Result<AppState, ServerError> {
        let admin_hash = hash_token(tokens.admin());
        let enroll_hash = hash_token(tokens.enroll());
        store
            .put_server_token(baton_store::TokenKind::Admin, &admin_hash)
            .await
            .map_err(ServerError::Store)?;
        store
            .put_server_token(baton_store::TokenKind::Enroll, &enroll_hash)
            .await
            .map_err(ServerError::Store)?;
        // Private before the first upload, and even when an older server left it open.
        let artifacts_dir = config.data_dir.join("artifacts");
        crate::tokens::private_dir(&artifacts_dir).map_err(|source| ServerError::DataDir {
            path: artifacts_dir.clone(),
            source,
        })?;
        let key = SecretsKey::load_or_create(&config.data_dir, config.secrets_key.as_deref())?;
        let old = SecretsKey::load_old(&config.data_dir, config.secrets_old_key.as_deref())?;
        let secrets = Secrets::start(store.as_ref(), key, old).await?;
        Ok(AppState {
            inner: Arc::new(Shared {
                store,
                wake: Wake::default(),
                artifacts_dir,
                lease_ms: config.lease_ms,
                max_artifact_bytes: config.max_artifact_bytes,
                admin_hash,
                enroll_hash,
                secrets,
                shutdown,
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn wake(&self) -> &Wake {
        &self.inner.wake
    }

    pub(crate) fn artifacts_dir(&self) -> &Path {
        &self.inner.artifacts_dir
    }

    pub(crate) fn lease_ms(&self) -> u64 {
        self.inner.lease_ms
    }

    pub(crate) fn max_artifact_bytes(&self) -> u64 {
        self.inner.max_artifact_bytes
    }

    pub(crate) fn admin_hash(&self) -> &str {
        &self.inner.admin_hash
    }

    pub(crate) fn enroll_hash(&self) -> &str {
        &self.inner.enroll_hash
    }

    /// Records who did what in the audit trail, after the action committed. A failure to
    /// record is logged, not answered: the action itself stands.
    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: baton_api::AuditAction,
        target: &str,
        detail: serde_json::Value,
    ) {
        if let Err(e) = self
            .inner
            .store
            .record_audit(actor, action, target, &detail)
            .await
        {
            tracing::error!(
                actor, action = action.as_str(), target, error = %crate::error::error_chain(&e),
                "cannot record an audit entry"
            );
        }
    }

    pub(crate) fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }

    /// Cancelled when the server begins to shut down: held requests answer at once.
    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

/// Opens the database the config names. Stores judge which agents are online (for
/// `waiting_for`) by the server's lease, and end nodes nobody claims by its queue timeout.
async fn open_store(config: &ServerConfig) -> Result<Arc<dyn Store>, ServerError> {
    let lease_ms = config.lease_ms;
    let queue_timeout_ms = (config.queue_timeout_ms > 0).then_some(config.queue_timeout_ms);
    match config.database()? {
        Database::Sqlite(path) => {
            let options = SqliteOptions {
                path,
                synchronous: config.synchronous,
            };
            // Opening runs migrations on a blocking connection: keep it off the runtime
            // threads.
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&options))
                .await
                .map_err(|_| ServerError::Config("the database open task panicked".to_owned()))?
                .map_err(ServerError::Store)?
                .with_lease_ms(lease_ms)
                .with_queue_timeout_ms(queue_timeout_ms);
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            // Migrations run here too, under an advisory lock: replicas may start at once.
            let store = PgStore::connect(&url, PgOptions::default())
                .await
                .map_err(ServerError::Store)?
                .with_lease_ms(lease_ms)
                .with_queue_timeout_ms(queue_timeout_ms);
            Ok(Arc::new(store))
        }
    }
}
