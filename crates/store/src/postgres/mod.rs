//! The PostgreSQL backend: several server replicas on one database.
//!
//! Every write method is one `READ COMMITTED` transaction on a pooled connection
//! (tokio-postgres with deadpool, fully async). Atomicity beside other connections comes
//! from row locks taken in one global order (see `db`): an agent's row, then run rows by
//! id (each run row carries its node counters, so whoever moves nodes of a run holds it),
//! then attempt rows by id; claims re-check each node under its run's lock and fence every
//! attempt; unique keys are the last line of defence. A transaction the database aborts
//! to break a deadlock is run again.
//!
//! Time is the database's: each transaction reads `clock_timestamp()` once, with its
//! `BEGIN`, and uses that value for every lease, deadline and back-off. Tests replace it
//! with their own clock ([`PgStore::with_clock`]).
//!
//! Transactions that make work claimable (or ask agents to cancel) send `NOTIFY
//! baton_work`, and every changed run `pg_notify('baton_run', id)`, both delivered at
//! commit; [`Store::events`] hands them out (module `events`).
//!
//! Connections use TLS as the URL's `sslmode` (and `sslrootcert`) say, with libpq's
//! meanings, except that `prefer` (the default) stays plain (module `tls`). Every
//! connection, pooled or `LISTEN`, goes through the same connector.

mod agents;
mod artifacts;
mod attempts;
mod audit;
mod batch;
mod cache;
mod claim;
mod concurrency;
mod db;
mod deadlines;
mod downstream;
mod events;
mod lead;
mod logs;
mod migrate;
mod outputs;
mod report;
mod rerun;
mod resources;
mod run_doc;
mod runs;
mod secrets;
mod tls;
#[cfg(test)]
mod tls_tests;
mod tokens;
mod workflows;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use baton_api::{
    AgentDoc, ArtifactDoc, AttemptRef, AttemptReport, CreateRun, LogPage, LogQuery, RegisterAgent,
    ResourceDoc, RunDoc, RunFilter, RunSummary, SecretDoc, Stream, TokenDoc, WorkflowDoc,
    WorkflowSummary, WorkflowVersion, WorkflowVersionDoc,
};
use baton_api::{AuditAction, AuditPage, AuditQuery};
use baton_core::Workflow;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::SimpleQueryMessage;

use crate::{
    ArtifactTarget, BatchReported, Claimed, Expired, HeartbeatResult, NewToken, Principal, Reaped,
    Reported, Result, RunCreated, SealedSecret, Store, StoreError, StoreEvent, TokenKind,
};
use cache::Cache;
use db::{Db, SqlResult, retryable};

/// How to connect to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections the store opens (default 16). Each replica has its own pool, plus
    /// one connection for `LISTEN`.
    pub pool_size: usize,
    /// A schema to keep Baton's tables in (created when missing) instead of the
    /// connection's default search path; lowercase letters, digits and `_`.
    pub schema: Option<String>,
    /// How long to wait to connect, and for a free pooled connection (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            schema: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Milliseconds since the Unix epoch.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Default per-attempt log cap (64 MiB).
const DEFAULT_LOG_CAP: u64 = 64 * 1024 * 1024;
/// Default lease used to tell online agents in run documents.
const DEFAULT_LEASE_MS: u64 = 15_000;
/// Default time a node may stay ready before it ends `error` (`no_agent`): one hour.
const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 3_600_000;
/// Times a transaction the database aborted (deadlock, serialization) is tried again.
const RETRIES: usize = 3;

/// Settings a store is built with.
#[derive(Clone)]
pub(crate) struct Config {
    /// Replaces the database's clock when set (tests).
    clock: Option<Clock>,
    /// Bytes of log kept per attempt.
    pub(crate) log_cap: u64,
    /// Agents seen within twice this count as online when explaining a ready node's wait.
    pub(crate) lease_ms: u64,
    /// Queue timeout of nodes whose workflow names none; `None` for no limit.
    pub(crate) queue_timeout_ms: Option<u64>,
}

/// The pool, caches and listener shared by clones.
struct Shared {
    pool: Pool,
    cache: Cache,
    /// Connection settings, for the listening connection.
    pg_config: tokio_postgres::Config,
    /// TLS for the listening connection, as for the pool's.
    tls: tls::PgTls,
    /// The database clock minus the local one, as last measured (ms).
    offset: AtomicI64,
    events: OnceLock<broadcast::Sender<StoreEvent>>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let listener = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = listener.take() {
            task.abort();
        }
    }
}

/// The PostgreSQL implementation of [`Store`]. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
    cfg: Arc<Config>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
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

/// Runs `$body` (which uses `$db`, the call's [`Db`]) in one transaction on a pooled
/// connection; a write the database aborted to break a deadlock is run again.
macro_rules! transaction {
    ($store:ident, $what:expr, $mode:expr, |$db:ident| $body:expr) => {{
        let mut tries = 0;
        loop {
            let mut conn = Open(Some($store.connection($what).await?));
            let (out, clean) = match $store.begin(conn.client()?, $what, $mode).await {
                Ok(mut db) => {
                    let $db = &mut db;
                    let out = $body.await;
                    $store.end(db, $what, $mode, out).await
                }
                Err(e) => (Err(e), false),
            };
            if clean {
                conn.close();
            }
            match out {
                Err(e) if $mode == Mode::Write && retryable(&e) && tries < RETRIES => {
                    tries += 1;
                    tracing::debug!(
                        what = $what,
                        tries,
                        "transaction aborted by the database; retrying"
                    );
                }
                out => break out,
            }
        }
    }};
}

/// [`transaction!`] for a write.
macro_rules! write_tx {
    ($store:ident, $what:expr, |$db:ident| $body:expr) => {
        transaction!($store, $what, Mode::Write, |$db| $body)
    };
}

/// [`transaction!`] for a read: one snapshot.
macro_rules! read_tx {
    ($store:ident, $what:expr, |$db:ident| $body:expr) => {
        transaction!($store, $what, Mode::Read, |$db| $body)
    };
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db?…`), brings its
    /// schema up to date (safely while other replicas do the same), and opens the pool.
    ///
    /// `sslmode=require`, `verify-ca` or `verify-full` in the URL encrypt every connection,
    /// checking the server's certificate against the CAs of `sslrootcert=FILE` (else the
    /// system's); `disable` and `prefer` (the default) stay plain.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore> {
        let (url, tls_params) = tls::split_url(url)?;
        let tls = tls_params.connector()?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("bad database url: {e}")))?;
        config.ssl_mode(tls_params.pg_mode());
        if let Some(schema) = &options.schema {
            if schema.is_empty()
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::Invalid(format!(
                    "bad schema name {schema:?}: use lowercase letters, digits and _"
                )));
            }
            let extra = format!("-c search_path={schema}");
            let opts = match config.get_options() {
                Some(o) if !o.is_empty() => format!("{o} {extra}"),
                _ => extra,
            };
            config.options(opts);
        }
        if config.get_application_name().is_none() {
            config.application_name("baton");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }

        let (mut client, conn) = config
            .connect(tls.clone())
            .await
            .ctx("connecting to the database")?;
        let driver = tokio::spawn(conn);
        let migrated = migrate::migrate(&mut client, options.schema.as_deref()).await;
        drop(client);
        // The connection ends once its client is gone.
        let _ = driver.await;
        migrated?;

        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::backend("opening the connection pool", e))?;
        Ok(PgStore {
            shared: Arc::new(Shared {
                pool,
                cache: Cache::default(),
                pg_config: config,
                tls,
                offset: AtomicI64::new(0),
                events: OnceLock::new(),
                listener: Mutex::new(None),
            }),
            cfg: Arc::new(Config {
                clock: None,
                log_cap: DEFAULT_LOG_CAP,
                lease_ms: DEFAULT_LEASE_MS,
                queue_timeout_ms: Some(DEFAULT_QUEUE_TIMEOUT_MS),
            }),
        })
    }

    /// Replaces the database's clock (milliseconds since the Unix epoch) for every lease,
    /// deadline and back-off. For tests, which drive time by hand: replicas sharing a
    /// database must all use the database's clock.
    pub fn with_clock(self, clock: Arc<dyn Fn() -> i64 + Send + Sync>) -> PgStore {
        self.with_config(|c| c.clock = Some(clock))
    }

    /// Caps the log kept per attempt (default 64 MiB); output past it is dropped after one
    /// marker line.
    pub fn with_log_cap(self, bytes: u64) -> PgStore {
        self.with_config(|c| c.log_cap = bytes)
    }

    /// Sets the server's lease (default 15 s): agents seen within twice this count as
    /// online when a run document explains why a ready node waits.
    pub fn with_lease_ms(self, lease_ms: u64) -> PgStore {
        self.with_config(|c| c.lease_ms = lease_ms)
    }

    /// Sets how long a node whose workflow names no `queue_timeout` may stay ready before
    /// it ends `error` (`no_agent`); `None` for no limit. Default one hour. It applies to
    /// runs created from then on.
    pub fn with_queue_timeout_ms(self, queue_timeout_ms: Option<u64>) -> PgStore {
        self.with_config(|c| c.queue_timeout_ms = queue_timeout_ms)
    }

    fn with_config(mut self, change: impl FnOnce(&mut Config)) -> PgStore {
        let mut cfg = (*self.cfg).clone();
        change(&mut cfg);
        self.cfg = Arc::new(cfg);
        self
    }

    async fn connection(&self, what: &'static str) -> Result<Object> {
        self.shared
            .pool
            .get()
            .await
            .map_err(|e| StoreError::backend(what, e))
    }

    /// Opens the transaction and reads the time and the newest requirement id, in one
    /// round trip: the call's [`Db`].
    async fn begin<'s>(
        &'s self,
        client: &'s deadpool_postgres::ClientWrapper,
        what: &'static str,
        mode: Mode,
    ) -> Result<Db<'s>> {
        let (now, newest_requirement) = match mode {
            Mode::Plain => (self.now_ms(), 0),
            Mode::Write | Mode::Read => self.clock(client, mode, what).await?,
        };
        Ok(Db::new(
            client,
            &self.shared.cache,
            &self.cfg,
            now,
            newest_requirement,
        ))
    }

    /// Ends the call's transaction: writes back the runs it changed, sends its
    /// notifications and commits; or rolls back when `out` (or that) failed. Returns the
    /// outcome, and whether the connection is clean to go back to the pool.
    async fn end<T>(
        &self,
        mut db: Db<'_>,
        what: &'static str,
        mode: Mode,
        out: Result<T>,
    ) -> (Result<T>, bool) {
        if mode == Mode::Plain {
            return (out, true);
        }
        // Every write that ended a run holding a place of a limited workflow hands the
        // place on before it commits, whichever use case it was.
        let out = match out {
            Ok(v) if mode == Mode::Write => concurrency::admit_vacated(&mut db).await.map(|()| v),
            out => out,
        };
        let end = match &out {
            Ok(_) => finish_sql(&db, mode),
            Err(_) => Ok(String::new()),
        };
        match (out, end) {
            (Ok(v), Ok(end)) => match db.client().batch_execute(&end).await {
                Ok(()) => (Ok(v), true),
                Err(e) => (Err(e).ctx(what), false),
            },
            (Err(e), _) | (Ok(_), Err(e)) => {
                let clean = db.client().batch_execute("ROLLBACK").await.is_ok();
                (Err(e), clean)
            }
        }
    }

    /// Opens a transaction, reading the time (the database's, unless a test clock is set)
    /// and the newest requirement id.
    async fn clock(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        mode: Mode,
        what: &'static str,
    ) -> Result<(i64, i64)> {
        let begin = match mode {
            Mode::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Mode::Write | Mode::Plain => "BEGIN",
        };
        let sql = format!(
            "{begin}; SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint, \
             COALESCE((SELECT MAX(id) FROM requirements), 0)"
        );
        let messages = client.simple_query(&sql).await.ctx(what)?;
        let row = messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| db::corrupt("the database did not tell the time"))?;
        let number = |i: usize| -> Result<i64> {
            row.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| db::corrupt("the database did not tell the time"))
        };
        let db_now = number(0)?;
        self.shared
            .offset
            .store(db_now - system_clock(), Ordering::Relaxed);
        let now = match &self.cfg.clock {
            Some(clock) => clock(),
            None => db_now,
        };
        Ok((now, number(1)?))
    }

    /// After a run of a `cancel_running` workflow was created (and committed): stops the
    /// runs in its way, each in a transaction of its own (see `concurrency`), and returns
    /// the new run's document as it is now (admitted at once when none had live attempts).
    /// A failure to stop them is left to the deadline pass's safety net: the run itself
    /// was created.
    async fn preempted(&self, mut created: RunCreated, workflows: &[String]) -> Result<RunCreated> {
        if workflows.is_empty() {
            return Ok(created);
        }
        for workflow in workflows {
            if let Err(err) = self.preempt(workflow).await {
                tracing::warn!(%workflow, error = %err, "stopping runs for a cancel_running run failed; the deadline pass retries");
            }
        }
        let id = created.run.id.clone();
        created.run = read_tx!(self, "reading a run", |db| run_doc::load(db, &id))?;
        Ok(created)
    }

    /// Stops the runs `cancel_running` of `workflow` must stop now, each in its own
    /// transaction (its row is that transaction's first lock).
    async fn preempt(&self, workflow: &str) -> Result<()> {
        let victims = read_tx!(self, "finding runs to stop", |db| concurrency::victims_of(
            db, workflow
        ))?;
        for (id, message) in &victims {
            write_tx!(self, "stopping a run for a newer one", |db| {
                concurrency::preempt_run(db, id, message)
            })?;
        }
        Ok(())
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<StoreEvent>> {
        let sender = self
            .shared
            .events
            .get_or_init(|| broadcast::channel(events::CAPACITY).0);
        let receiver = sender.subscribe();
        let mut listener = self
            .shared
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if listener.is_none() {
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            let config = self.shared.pg_config.clone();
            let tls = self.shared.tls.clone();
            *listener = Some(runtime.spawn(events::listen(config, tls, sender.clone())));
        }
        Some(receiver)
    }
}

/// How a call's statements are wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A `READ COMMITTED` transaction.
    Write,
    /// A read-only `REPEATABLE READ` transaction: one snapshot.
    Read,
    /// No transaction, for a single statement that needs no time.
    Plain,
}

/// The statements that end a transaction, sent together: the runs it changed written
/// back, notifications for them, then `COMMIT`.
fn finish_sql(db: &Db<'_>, mode: Mode) -> Result<String> {
    let mut sql = db.save_sql()?;
    if mode == Mode::Write {
        let runs: Vec<String> = db
            .changed_runs()
            // Run ids are UUIDs we made; anything else is not put into SQL text.
            .filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .map(|id| format!("pg_notify('{}', '{id}')", events::RUN_CHANNEL))
            .collect();
        if !runs.is_empty() {
            sql.push_str("SELECT ");
            sql.push_str(&runs.join(", "));
            sql.push_str("; ");
        }
        if db.wakes_agents() {
            sql.push_str("NOTIFY ");
            sql.push_str(events::WORK_CHANNEL);
            sql.push_str("; ");
        }
    }
    sql.push_str("COMMIT");
    Ok(sql)
}

/// A pooled connection inside a transaction. Dropped before [`close`](Open::close) (the
/// call's future was dropped mid-transaction, or ending it failed), the connection is
/// taken out of the pool and closed, which rolls the transaction back on the server.
struct Open(Option<Object>);

impl Open {
    fn client(&self) -> Result<&deadpool_postgres::ClientWrapper> {
        self.0
            .as_deref()
            .ok_or_else(|| db::corrupt("connection already returned"))
    }

    /// The transaction ended: the connection goes back to the pool.
    fn close(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn now_ms(&self) -> i64 {
        match &self.cfg.clock {
            Some(clock) => clock(),
            None => system_clock() + self.shared.offset.load(Ordering::Relaxed),
        }
    }

    fn events(&self) -> Option<broadcast::Receiver<StoreEvent>> {
        self.subscribe()
    }

    async fn put_server_token(&self, kind: TokenKind, hash: &str) -> Result<()> {
        write_tx!(self, "storing a server token", |db| {
            tokens::put_server_token(db, kind, hash)
        })
    }

    async fn authenticate(&self, hash: &str) -> Result<Option<Principal>> {
        // One statement: no transaction around it.
        transaction!(self, "checking a token", Mode::Plain, |db| {
            tokens::authenticate(db, hash)
        })
    }

    async fn create_token(&self, token: &NewToken) -> Result<TokenDoc> {
        write_tx!(self, "storing a token", |db| tokens::create(db, token))
    }

    async fn list_tokens(&self) -> Result<Vec<TokenDoc>> {
        read_tx!(self, "listing tokens", |db| tokens::list(db))
    }

    async fn revoke_token(&self, name: &str) -> Result<TokenDoc> {
        write_tx!(self, "revoking a token", |db| tokens::revoke(db, name))
    }

    async fn put_secret(&self, secret: &SealedSecret) -> Result<SecretDoc> {
        write_tx!(self, "storing a secret", |db| secrets::put(db, secret))
    }

    async fn list_secrets(&self) -> Result<Vec<SecretDoc>> {
        read_tx!(self, "listing secrets", |db| secrets::list(db))
    }

    async fn delete_secret(&self, name: &str) -> Result<()> {
        write_tx!(self, "removing a secret", |db| secrets::delete(db, name))
    }

    async fn sealed_secrets(&self, names: Option<&[String]>) -> Result<Vec<SealedSecret>> {
        read_tx!(self, "reading secrets", |db| secrets::sealed(db, names))
    }

    async fn reseal_secrets(
        &self,
        secrets: &[SealedSecret],
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        write_tx!(self, "resealing secrets", |db| {
            secrets::reseal(db, secrets, key, value)
        })
    }

    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        write_tx!(self, "storing a setting", |db| {
            secrets::setting_or_insert(db, key, value)
        })
    }

    async fn apply_workflow(&self, workflow: &Workflow, source: &str) -> Result<WorkflowVersion> {
        write_tx!(self, "applying a workflow", |db| workflows::apply(
            db, workflow, source
        ))
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowSummary>> {
        read_tx!(self, "listing workflows", |db| workflows::list(db))
    }

    async fn workflow(&self, name: &str) -> Result<WorkflowDoc> {
        read_tx!(self, "reading a workflow", |db| workflows::show(db, name))
    }

    async fn workflow_version(&self, name: &str, version: i64) -> Result<WorkflowVersionDoc> {
        read_tx!(self, "reading a workflow version", |db| workflows::version(
            db, name, version
        ))
    }

    async fn create_run(&self, req: &CreateRun) -> Result<RunCreated> {
        let (created, preempt) = write_tx!(self, "creating a run", |db| async {
            let created = runs::create(db, &req.workflow, req.version, req.priority).await?;
            Ok::<_, StoreError>((created, db.take_preempt()))
        })?;
        self.preempted(created, &preempt).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        read_tx!(self, "listing runs", |db| runs::list(db, filter))
    }

    async fn run(&self, id: &str) -> Result<RunDoc> {
        read_tx!(self, "reading a run", |db| run_doc::load(db, id))
    }

    async fn run_rev(&self, id: &str) -> Result<i64> {
        transaction!(self, "reading a run", Mode::Plain, |db| runs::rev(db, id))
    }

    async fn cancel_run(&self, id: &str) -> Result<RunDoc> {
        write_tx!(self, "canceling a run", |db| runs::cancel(db, id))
    }

    async fn retry_run(&self, id: &str, from: Option<&str>) -> Result<RunCreated> {
        let (created, preempt) = write_tx!(self, "retrying a run", |db| async {
            let created = rerun::retry(db, id, from).await?;
            Ok::<_, StoreError>((created, db.take_preempt()))
        })?;
        self.preempted(created, &preempt).await
    }

    async fn expire_deadlines(&self) -> Result<Expired> {
        // Most passes find nothing due: a read answers them without locking anything.
        // The same read finds queues the concurrency safety net must move.
        let (next_due, now, stalled) = read_tx!(self, "finding the next deadline", |db| async {
            Ok::<_, StoreError>((
                deadlines::next_due(db).await?,
                db.now,
                concurrency::stalled(db).await?,
            ))
        })?;
        let mut expired = match next_due {
            Some(at) if at <= now => {
                write_tx!(self, "enforcing deadlines", |db| deadlines::expire(db))?
            }
            _ => Expired {
                next_due,
                ..Expired::default()
            },
        };
        // The deadlines above are committed: a failing sweep must not lose what they
        // stopped (the reaper logs it and wakes agents); the next pass sweeps again.
        for workflow in &stalled {
            match write_tx!(self, "admitting queued runs", |db| concurrency::sweep(
                db, workflow
            )) {
                Ok(admitted) => expired.woke |= admitted > 0,
                Err(err) => {
                    tracing::warn!(%workflow, error = %err, "admitting queued runs failed; the next deadline pass retries");
                }
            }
            if let Err(err) = self.preempt(workflow).await {
                tracing::warn!(%workflow, error = %err, "stopping runs for a cancel_running run failed; the next deadline pass retries");
            }
        }
        Ok(expired)
    }

    async fn logs(&self, run_id: &str, query: &LogQuery) -> Result<LogPage> {
        read_tx!(self, "reading logs", |db| logs::page(db, run_id, query))
    }

    async fn register_agent(&self, agent: &RegisterAgent, token_hash: &str) -> Result<String> {
        write_tx!(self, "registering an agent", |db| agents::register(
            db, agent, token_hash
        ))
    }

    async fn deregister_agent(&self, agent_id: &str) -> Result<()> {
        write_tx!(self, "deregistering an agent", |db| agents::deregister(
            db, agent_id
        ))
    }

    async fn list_agents(&self, lease_ms: u64) -> Result<Vec<AgentDoc>> {
        read_tx!(self, "listing agents", |db| agents::list(db, lease_ms))
    }

    async fn resources(&self) -> Result<Vec<ResourceDoc>> {
        read_tx!(self, "listing resources", |db| resources::list(db))
    }

    async fn claim(&self, agent_id: &str, max: u32, lease_ms: u64) -> Result<Claimed> {
        write_tx!(self, "claiming work", |db| claim::claim(
            db, agent_id, max, lease_ms
        ))
    }

    async fn start_attempt(&self, agent_id: &str, attempt: AttemptRef) -> Result<()> {
        write_tx!(self, "starting an attempt", |db| attempts::start(
            db, agent_id, attempt
        ))
    }

    async fn heartbeat(
        &self,
        agent_id: &str,
        attempts: &[AttemptRef],
        lease_ms: u64,
    ) -> Result<HeartbeatResult> {
        write_tx!(self, "renewing leases", |db| attempts::heartbeat(
            db, agent_id, attempts, lease_ms
        ))
    }

    async fn report_attempt(&self, agent_id: &str, report: &AttemptReport) -> Result<Reported> {
        write_tx!(self, "recording a report", |db| outputs::report(
            db, agent_id, report
        ))
    }

    async fn report_batch(
        &self,
        agent_id: &str,
        reports: &[AttemptReport],
        want: u32,
        lease_ms: u64,
    ) -> Result<BatchReported> {
        write_tx!(self, "recording reports", |db| batch::report_batch(
            db, agent_id, reports, want, lease_ms
        ))
    }

    async fn append_log(
        &self,
        agent_id: &str,
        attempt: AttemptRef,
        seq: u32,
        stream: Stream,
        data: &str,
    ) -> Result<()> {
        write_tx!(self, "appending logs", |db| logs::append(
            db, agent_id, attempt, seq, stream, data
        ))
    }

    async fn reap_expired(&self) -> Result<Reaped> {
        write_tx!(self, "reaping expired leases", |db| report::reap(db))
    }

    async fn try_lead(&self, routine: &str, holder: &str, ttl_ms: u64) -> Result<bool> {
        write_tx!(self, "taking a lead", |db| lead::try_lead(
            db, routine, holder, ttl_ms
        ))
    }

    async fn resign_lead(&self, routine: &str, holder: &str) -> Result<()> {
        write_tx!(self, "giving up a lead", |db| lead::resign_lead(
            db, routine, holder
        ))
    }

    async fn artifact_target(&self, agent_id: &str, attempt: AttemptRef) -> Result<ArtifactTarget> {
        read_tx!(self, "checking an artifact upload", |db| artifacts::target(
            db, agent_id, attempt
        ))
    }

    async fn record_artifact(
        &self,
        attempt_id: i64,
        path: &str,
        size: u64,
        sha256: &str,
    ) -> Result<()> {
        write_tx!(self, "recording an artifact", |db| artifacts::record(
            db, attempt_id, path, size, sha256
        ))
    }

    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactDoc>> {
        read_tx!(self, "listing artifacts", |db| artifacts::list(db, run_id))
    }

    async fn record_audit(
        &self,
        actor: &str,
        action: AuditAction,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        // Checked before a connection is taken: a refused entry costs no database work.
        let entry = crate::audit::record(actor, action, target, detail)?;
        write_tx!(self, "recording an audit entry", |db| audit::record(
            db, &entry
        ))
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        let query = crate::audit::Query::new(query)?;
        read_tx!(self, "reading the audit trail", |db| audit::page(
            db, &query
        ))
    }
}
