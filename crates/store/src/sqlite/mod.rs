//! The SQLite backend: one file, one writer, a few readers.
//!
//! Every write method runs as one `BEGIN IMMEDIATE` transaction on the single writer
//! connection, inside `spawn_blocking` so the async runtime never waits on disk. SQLite
//! serialises writers anyway; holding one connection behind a mutex makes that explicit
//! and keeps its prepared-statement cache warm. Read-only methods use a small pool of
//! reader connections, which WAL lets run beside the writer on their own snapshot.
//!
//! Compiled workflow versions (definition, [`baton_core::Dag`], requirement ids) are
//! cached in memory: versions never change, so the hot path never parses JSON.

mod agents;
mod artifacts;
pub(crate) mod attempts;
mod audit;
mod batch;
pub(crate) mod cache;
mod checkpoint;
mod claim;
pub(crate) mod concurrency;
mod db;
pub(crate) mod deadlines;
pub(crate) mod downstream;
mod files;
pub(crate) mod late;
mod logs;
mod migrate;
mod outputs;
mod report;
pub(crate) mod rerun;
pub(crate) mod resources;
pub(crate) mod run_doc;
pub(crate) mod runs;
mod secrets;
mod tokens;
pub(crate) mod workflows;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use baton_api::{
    AgentDoc, ArtifactDoc, AttemptRef, AttemptReport, CreateRun, LogPage, LogQuery, RegisterAgent,
    ResourceDoc, RunDoc, RunFilter, RunSummary, SecretDoc, Stream, TokenDoc, WorkflowDoc,
    WorkflowSummary, WorkflowVersion, WorkflowVersionDoc,
};
use baton_api::{AuditAction, AuditPage, AuditQuery};
use baton_core::Workflow;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{
    ArtifactTarget, BatchReported, Claimed, Expired, HeartbeatResult, NewToken, Principal, Reaped,
    Reported, Result, RunCreated, SealedSecret, Store, StoreError, TokenKind,
};
use cache::Cache;
use checkpoint::Checkpointer;
use db::{Db, SqlResult};

/// How hard SQLite works to make a commit durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: in WAL mode a commit survives a crash of the process (kill -9),
    /// but the last commits may be lost if the machine loses power.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced before it is acknowledged.
    Full,
}

/// Where and how to open the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file; it and its directory are created when missing.
    pub path: PathBuf,
    /// Durability of commits.
    pub synchronous: Synchronous,
}

impl SqliteOptions {
    /// Options for the file at `path` with default durability.
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            synchronous: Synchronous::default(),
        }
    }
}

/// Milliseconds since the Unix epoch.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Reader connections beside the writer.
const READERS: usize = 4;
/// How long a connection waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection; the store uses fewer than this.
const STATEMENT_CACHE: usize = 128;
/// Default per-attempt log cap (64 MiB).
const DEFAULT_LOG_CAP: u64 = 64 * 1024 * 1024;
/// Default lease used to tell online agents in run documents.
const DEFAULT_LEASE_MS: u64 = 15_000;
/// Default time a node may stay ready before it ends `error` (`no_agent`): one hour.
const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 3_600_000;

/// Settings a store is built with; copied into every call.
#[derive(Clone)]
pub(crate) struct Config {
    clock: Clock,
    /// Bytes of log kept per attempt.
    pub(crate) log_cap: u64,
    /// Agents seen within twice this count as online when explaining a ready node's wait.
    pub(crate) lease_ms: u64,
    /// Queue timeout of nodes whose workflow names none; `None` for no limit.
    pub(crate) queue_timeout_ms: Option<u64>,
}

/// Connections and caches shared by every call.
struct Shared {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    cache: Cache,
    /// Stops its thread when dropped.
    _checkpointer: Checkpointer,
}

/// The SQLite implementation of [`Store`]. Cheap to clone: clones share connections.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    cfg: Arc<Config>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("log_cap", &self.cfg.log_cap)
            .field("lease_ms", &self.cfg.lease_ms)
            .finish_non_exhaustive()
    }
}

fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl SqliteStore {
    /// Opens (creating when missing) the database file and brings its schema up to date.
    pub fn open(options: &SqliteOptions) -> Result<SqliteStore> {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Private when made here; an existing dir is left as its owner set it.
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(dir)
            .map_err(|e| StoreError::backend("creating the database directory", e))?;
        }
        files::make_private(&options.path)
            .map_err(|e| StoreError::backend("making the database file private", e))?;
        let mut writer = open_connection(&options.path, options.synchronous, false)?;
        migrate::migrate(&mut writer)?;
        let checkpointer = Checkpointer::attach(&mut writer, &options.path, options.synchronous)?;
        // Readers open after the writer so the file is already in WAL mode.
        let readers = (0..READERS)
            .map(|_| open_connection(&options.path, options.synchronous, true).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                cache: Cache::default(),
                _checkpointer: checkpointer,
            }),
            cfg: Arc::new(Config {
                clock: Arc::new(system_clock),
                log_cap: DEFAULT_LOG_CAP,
                lease_ms: DEFAULT_LEASE_MS,
                queue_timeout_ms: Some(DEFAULT_QUEUE_TIMEOUT_MS),
            }),
        })
    }

    /// Replaces the store's clock (milliseconds since the Unix epoch); tests drive leases
    /// and back-offs with it instead of sleeping.
    pub fn with_clock(self, clock: Arc<dyn Fn() -> i64 + Send + Sync>) -> SqliteStore {
        self.with_config(|c| c.clock = clock)
    }

    /// Caps the log kept per attempt (default 64 MiB); output past it is dropped after one
    /// marker line.
    pub fn with_log_cap(self, bytes: u64) -> SqliteStore {
        self.with_config(|c| c.log_cap = bytes)
    }

    /// Sets the server's lease (default 15 s): agents seen within twice this count as
    /// online when a run document explains why a ready node waits.
    pub fn with_lease_ms(self, lease_ms: u64) -> SqliteStore {
        self.with_config(|c| c.lease_ms = lease_ms)
    }

    /// Sets how long a node whose workflow names no `queue_timeout` may stay ready before
    /// it ends `error` (`no_agent`); `None` for no limit. Default one hour. It applies to
    /// runs created from then on.
    pub fn with_queue_timeout_ms(self, queue_timeout_ms: Option<u64>) -> SqliteStore {
        self.with_config(|c| c.queue_timeout_ms = queue_timeout_ms)
    }

    fn with_config(mut self, change: impl FnOnce(&mut Config)) -> SqliteStore {
        let mut cfg = (*self.cfg).clone();
        change(&mut cfg);
        self.cfg = Arc::new(cfg);
        self
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer; any error rolls back.
    async fn write<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        let cfg = self.cfg.clone();
        run_blocking(move || transact(&shared, &cfg, what, f)).await
    }

    /// [`write`](Self::write) for a change of registrations: once it committed (or
    /// failed), the cached agent tokens are dropped. That happens inside the blocking
    /// task, so a request dropped while waiting cannot skip it.
    async fn write_registration<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        let cfg = self.cfg.clone();
        run_blocking(move || {
            let out = transact(&shared, &cfg, what, f);
            shared.cache.forget_tokens();
            out
        })
        .await
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on a reader connection.
    async fn read<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        let cfg = self.cfg.clone();
        run_blocking(move || {
            let mut conn = shared.reader();
            let tx = conn.transaction().ctx(what)?;
            let now = (cfg.clock)();
            let out = f(&Db::new(&tx, &shared.cache, &cfg, now))?;
            tx.commit().ctx(what)?;
            Ok(out)
        })
        .await
    }
}

/// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer; any error rolls back.
fn transact<T>(
    shared: &Shared,
    cfg: &Config,
    what: &'static str,
    f: impl FnOnce(&Db<'_>) -> Result<T>,
) -> Result<T> {
    let mut conn = lock(&shared.writer);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(what)?;
    // Read under the lock so times follow the order writes are applied in.
    let now = (cfg.clock)();
    let out = f(&Db::new(&tx, &shared.cache, cfg, now))?;
    tx.commit().ctx(what)?;
    Ok(out)
}

impl Shared {
    /// A free reader if there is one, else waits for one in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.readers[start % n])
    }
}

/// Locks a connection. A panic while it was held rolled its transaction back (the
/// transaction's drop runs while unwinding), so the connection is fine to reuse.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn run_blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::backend("database task failed", e))?
}

fn open_connection(path: &Path, sync: Synchronous, reader: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).ctx("opening the database")?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting the busy timeout")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Without the query planner stability guarantee, SQLite recompiles a cached statement
    // whenever a new value is bound to a parameter that could change its plan (a LEFT JOIN,
    // a partial index, a `LIMIT ?`): a fifth of the server's time went to re-parsing SQL.
    // Our statements are written for one plan, so pin it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .ctx("pinning query plans")?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .ctx("enabling WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!(
            "the database at {} cannot use write-ahead logging (journal mode {mode})",
            path.display()
        )));
    }
    let sync = match sync {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .ctx("setting synchronous")?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .ctx("enabling foreign keys")?;
    if reader {
        conn.pragma_update(None, "query_only", "ON")
            .ctx("making a reader read-only")?;
    }
    Ok(conn)
}

#[async_trait]
impl Store for SqliteStore {
    fn now_ms(&self) -> i64 {
        (self.cfg.clock)()
    }

    async fn put_server_token(&self, kind: TokenKind, hash: &str) -> Result<()> {
        let hash = hash.to_owned();
        self.write("storing a server token", move |db| {
            tokens::put_server_token(db, kind, &hash)
        })
        .await
    }

    async fn authenticate(&self, hash: &str) -> Result<Option<Principal>> {
        let cache = &self.shared.cache;
        if let Some(agent_id) = cache.agent_token(hash) {
            return Ok(Some(Principal::Agent { agent_id }));
        }
        let generation = cache.token_generation();
        let key = hash.to_owned();
        let found = self
            .read("checking a token", move |db| tokens::authenticate(db, &key))
            .await?;
        if let Some(Principal::Agent { agent_id }) = &found {
            cache.remember_agent_token(generation, hash.to_owned(), agent_id.clone());
        }
        Ok(found)
    }

    async fn create_token(&self, token: &NewToken) -> Result<TokenDoc> {
        let token = token.clone();
        self.write("storing a token", move |db| tokens::create(db, &token))
            .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenDoc>> {
        self.read("listing tokens", tokens::list).await
    }

    async fn revoke_token(&self, name: &str) -> Result<TokenDoc> {
        let name = name.to_owned();
        self.write("revoking a token", move |db| tokens::revoke(db, &name))
            .await
    }

    async fn put_secret(&self, secret: &SealedSecret) -> Result<SecretDoc> {
        let secret = secret.clone();
        self.write("storing a secret", move |db| secrets::put(db, &secret))
            .await
    }

    async fn list_secrets(&self) -> Result<Vec<SecretDoc>> {
        self.read("listing secrets", secrets::list).await
    }

    async fn delete_secret(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write("removing a secret", move |db| secrets::delete(db, &name))
            .await
    }

    async fn sealed_secrets(&self, names: Option<&[String]>) -> Result<Vec<SealedSecret>> {
        let names = names.map(<[String]>::to_vec);
        self.read("reading secrets", move |db| {
            secrets::sealed(db, names.as_deref())
        })
        .await
    }

    async fn reseal_secrets(
        &self,
        secrets: &[SealedSecret],
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        let (secrets, key, value) = (secrets.to_vec(), key.to_owned(), value.to_vec());
        self.write("resealing secrets", move |db| {
            secrets::reseal(db, &secrets, &key, &value)
        })
        .await
    }

    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.write("storing a setting", move |db| {
            secrets::setting_or_insert(db, &key, &value)
        })
        .await
    }

    async fn apply_workflow(&self, workflow: &Workflow, source: &str) -> Result<WorkflowVersion> {
        let workflow = workflow.clone();
        let source = source.to_owned();
        self.write("applying a workflow", move |db| {
            workflows::apply(db, &workflow, &source)
        })
        .await
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowSummary>> {
        self.read("listing workflows", workflows::list).await
    }

    async fn workflow(&self, name: &str) -> Result<WorkflowDoc> {
        let name = name.to_owned();
        self.read("reading a workflow", move |db| workflows::show(db, &name))
            .await
    }

    async fn workflow_version(&self, name: &str, version: i64) -> Result<WorkflowVersionDoc> {
        let name = name.to_owned();
        self.read("reading a workflow version", move |db| {
            workflows::version(db, &name, version)
        })
        .await
    }

    async fn create_run(&self, req: &CreateRun) -> Result<RunCreated> {
        let req = req.clone();
        self.write("creating a run", move |db| {
            runs::create(db, &req.workflow, req.version, req.priority)
        })
        .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let filter = filter.clone();
        self.read("listing runs", move |db| runs::list(db, &filter))
            .await
    }

    async fn run(&self, id: &str) -> Result<RunDoc> {
        let id = id.to_owned();
        self.read("reading a run", move |db| run_doc::load(db, &id))
            .await
    }

    async fn run_rev(&self, id: &str) -> Result<i64> {
        let id = id.to_owned();
        self.read("reading a run", move |db| runs::rev(db, &id))
            .await
    }

    async fn cancel_run(&self, id: &str) -> Result<RunDoc> {
        let id = id.to_owned();
        self.write("canceling a run", move |db| runs::cancel(db, &id))
            .await
    }

    async fn retry_run(&self, id: &str, from: Option<&str>) -> Result<RunCreated> {
        let id = id.to_owned();
        let from = from.map(str::to_owned);
        self.write("retrying a run", move |db| {
            rerun::retry(db, &id, from.as_deref())
        })
        .await
    }

    async fn expire_deadlines(&self) -> Result<Expired> {
        // Most passes find nothing due: a read answers them without taking the writer.
        // The same read finds queues the concurrency safety net must move.
        let (next_due, stalled) = self
            .read("finding the next deadline", |db| {
                Ok((deadlines::next_due(db)?, concurrency::stalled(db)?))
            })
            .await?;
        let mut expired = match next_due {
            Some(at) if at <= self.now_ms() => {
                self.write("enforcing deadlines", |db| {
                    let mut expired = deadlines::expire(db)?;
                    // Nodes ended by a queue timeout, or a stopped run's place given to a
                    // queued run, may have made nodes claimable.
                    expired.woke |= db.woke(&[]);
                    Ok(expired)
                })
                .await?
            }
            _ => Expired {
                next_due,
                ..Expired::default()
            },
        };
        if !stalled.is_empty() {
            expired.woke |= self
                .write("admitting queued runs", move |db| {
                    concurrency::sweep(db, &stalled)
                })
                .await?;
        }
        Ok(expired)
    }

    async fn logs(&self, run_id: &str, query: &LogQuery) -> Result<LogPage> {
        let run_id = run_id.to_owned();
        let query = query.clone();
        self.read("reading logs", move |db| logs::page(db, &run_id, &query))
            .await
    }

    async fn register_agent(&self, agent: &RegisterAgent, token_hash: &str) -> Result<String> {
        let agent = agent.clone();
        let token_hash = token_hash.to_owned();
        self.write_registration("registering an agent", move |db| {
            agents::register(db, &agent, &token_hash)
        })
        .await
    }

    async fn deregister_agent(&self, agent_id: &str) -> Result<()> {
        let agent_id = agent_id.to_owned();
        self.write_registration("deregistering an agent", move |db| {
            agents::deregister(db, &agent_id)
        })
        .await
    }

    async fn list_agents(&self, lease_ms: u64) -> Result<Vec<AgentDoc>> {
        self.read("listing agents", move |db| agents::list(db, lease_ms))
            .await
    }

    async fn resources(&self) -> Result<Vec<ResourceDoc>> {
        self.read("listing resources", resources::list).await
    }

    async fn claim(&self, agent_id: &str, max: u32, lease_ms: u64) -> Result<Claimed> {
        let agent_id = agent_id.to_owned();
        self.write("claiming work", move |db| {
            claim::claim(db, &agent_id, max, lease_ms)
        })
        .await
    }

    async fn start_attempt(&self, agent_id: &str, attempt: AttemptRef) -> Result<()> {
        let agent_id = agent_id.to_owned();
        self.write("starting an attempt", move |db| {
            attempts::start(db, &agent_id, attempt)
        })
        .await
    }

    async fn heartbeat(
        &self,
        agent_id: &str,
        attempts: &[AttemptRef],
        lease_ms: u64,
    ) -> Result<HeartbeatResult> {
        let agent_id = agent_id.to_owned();
        let attempts = attempts.to_vec();
        self.write("renewing leases", move |db| {
            attempts::heartbeat(db, &agent_id, &attempts, lease_ms)
        })
        .await
    }

    async fn report_attempt(&self, agent_id: &str, report: &AttemptReport) -> Result<Reported> {
        let agent_id = agent_id.to_owned();
        let report = report.clone();
        self.write("recording a report", move |db| {
            outputs::report(db, &agent_id, &report)
        })
        .await
    }

    async fn report_batch(
        &self,
        agent_id: &str,
        reports: &[AttemptReport],
        want: u32,
        lease_ms: u64,
    ) -> Result<BatchReported> {
        let agent_id = agent_id.to_owned();
        let reports = reports.to_vec();
        self.write("recording reports", move |db| {
            batch::report_batch(db, &agent_id, &reports, want, lease_ms)
        })
        .await
    }

    async fn append_log(
        &self,
        agent_id: &str,
        attempt: AttemptRef,
        seq: u32,
        stream: Stream,
        data: &str,
    ) -> Result<()> {
        let agent_id = agent_id.to_owned();
        let data = data.to_owned();
        self.write("appending logs", move |db| {
            logs::append(db, &agent_id, attempt, seq, stream, &data)
        })
        .await
    }

    async fn reap_expired(&self) -> Result<Reaped> {
        self.write("reaping expired leases", report::reap).await
    }

    async fn artifact_target(&self, agent_id: &str, attempt: AttemptRef) -> Result<ArtifactTarget> {
        let agent_id = agent_id.to_owned();
        self.read("checking an artifact upload", move |db| {
            artifacts::target(db, &agent_id, attempt)
        })
        .await
    }

    async fn record_artifact(
        &self,
        attempt_id: i64,
        path: &str,
        size: u64,
        sha256: &str,
    ) -> Result<()> {
        let path = path.to_owned();
        let sha256 = sha256.to_owned();
        self.write("recording an artifact", move |db| {
            artifacts::record(db, attempt_id, &path, size, &sha256)
        })
        .await
    }

    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactDoc>> {
        let run_id = run_id.to_owned();
        self.read("listing artifacts", move |db| artifacts::list(db, &run_id))
            .await
    }

    async fn record_audit(
        &self,
        actor: &str,
        action: AuditAction,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        // Checked before the writer is taken: a refused entry costs no database work.
        let entry = crate::audit::record(actor, action, target, detail)?;
        self.write("recording an audit entry", move |db| {
            audit::record(db, &entry)
        })
        .await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        // Checked before a connection is taken: a bad query costs no database work.
        let query = crate::audit::Query::new(query)?;
        self.read("reading the audit trail", move |db| audit::page(db, &query))
            .await
    }
}
