//! Baton's persistence: the [`Store`] trait and its backends, SQLite (one server, the
//! default) and PostgreSQL (several server replicas on one database).
//!
//! The trait has one method per use case (apply a workflow, create a run, claim,
//! heartbeat, report, append logs, reap leases…), each atomic in its backend:
//! SQLite serialises writers with `BEGIN IMMEDIATE`; PostgreSQL takes row locks in one
//! global order. Every scheduling decision is
//! made by `baton-core`; the store only applies it to rows, touching the rows around
//! the node that changed (never the whole graph). Leases are timed on the store's
//! own clock, never an agent's.
//!
//! [`testing`] holds the conformance suite every backend must pass.

mod audit;
mod error;
mod postgres;
mod security;
mod sqlite;
mod types;
mod version_cache;

pub mod testing;

pub use error::StoreError;
pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use types::*;

use async_trait::async_trait;
use baton_api::{
    AgentDoc, ArtifactDoc, AttemptRef, AttemptReport, CreateRun, LogPage, LogQuery, RegisterAgent,
    ResourceDoc, RunDoc, RunFilter, RunSummary, SecretDoc, Stream, TokenDoc, WorkflowDoc,
    WorkflowSummary, WorkflowVersion, WorkflowVersionDoc,
};
use baton_api::{AuditAction, AuditPage, AuditQuery};
use baton_core::{Outcome, Workflow};

/// Result of store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the server persists, one method per use case.
///
/// Implementations are shared as `Arc<dyn Store>` by every request handler and routine.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch on the store's clock, the only clock leases use.
    fn now_ms(&self) -> i64;

    /// Changes committed to the database by any process sharing it (every server
    /// replica, this one included), as they commit; `None` when no other process can
    /// change it (SQLite: one server owns the file). Each call is a new subscriber.
    ///
    /// A receiver that lags (`RecvError::Lagged`) missed events: treat that as
    /// [`StoreEvent::Work`] plus "every run may have changed".
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>> {
        None
    }

    // --- tokens -------------------------------------------------------------------------

    /// Records the hash of a server token (admin or enrollment); idempotent.
    async fn put_server_token(&self, kind: TokenKind, hash: &str) -> Result<()>;

    /// Who holds the token with this hash, if anyone.
    async fn authenticate(&self, hash: &str) -> Result<Option<Principal>>;

    /// Stores a named token. `Conflict` when a token that is not revoked has the name.
    async fn create_token(&self, token: &NewToken) -> Result<TokenDoc>;

    /// Every named token, newest first, revoked and expired ones included.
    async fn list_tokens(&self) -> Result<Vec<TokenDoc>>;

    /// Revokes the named token that is not revoked yet: its next request is refused.
    /// `NotFound` when there is none.
    async fn revoke_token(&self, name: &str) -> Result<TokenDoc>;

    // --- secrets ------------------------------------------------------------------------

    /// Stores a sealed secret, replacing the value (and scope) of one with the same name.
    async fn put_secret(&self, secret: &SealedSecret) -> Result<SecretDoc>;

    /// Every secret's name, scope and dates, by name; never a value.
    async fn list_secrets(&self) -> Result<Vec<SecretDoc>>;

    /// Removes a secret; `NotFound` when there is none.
    async fn delete_secret(&self, name: &str) -> Result<()>;

    /// The sealed secrets with these names (`None`: every secret), by name; absent names
    /// are left out.
    async fn sealed_secrets(&self, names: Option<&[String]>) -> Result<Vec<SealedSecret>>;

    /// Replaces, in one transaction, the sealed value of each of `secrets` (by name; their
    /// scopes stay) and the setting `key` with `value`: a secrets key rotation, all or
    /// nothing.
    async fn reseal_secrets(&self, secrets: &[SealedSecret], key: &str, value: &[u8])
    -> Result<()>;

    /// The value stored under a server-wide setting `key`, storing `value` first when there
    /// is none (the first server to start decides; the others read what it stored).
    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;

    // --- workflows ----------------------------------------------------------------------

    /// Stores a validated workflow as a new version, or returns the latest version when its
    /// definition is identical (`created: false`).
    async fn apply_workflow(&self, workflow: &Workflow, source: &str) -> Result<WorkflowVersion>;

    /// Every workflow with its latest version.
    async fn list_workflows(&self) -> Result<Vec<WorkflowSummary>>;

    /// One workflow's versions, newest first; `NotFound` if no such workflow.
    async fn workflow(&self, name: &str) -> Result<WorkflowDoc>;

    /// One version with its definition and source; `NotFound` if absent.
    async fn workflow_version(&self, name: &str, version: i64) -> Result<WorkflowVersionDoc>;

    // --- runs ---------------------------------------------------------------------------

    /// Creates a run of a version (the latest when `None`) with its root nodes ready.
    async fn create_run(&self, req: &CreateRun) -> Result<RunCreated>;

    /// Runs matching the filter, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>>;

    /// The run document; `NotFound` if absent.
    async fn run(&self, id: &str) -> Result<RunDoc>;

    /// The run's change counter, cheap to poll; `NotFound` if absent.
    async fn run_rev(&self, id: &str) -> Result<i64>;

    /// Cancels a run: waiting and ready nodes end `canceled` at once; agents are told to stop
    /// running attempts. `Conflict` when the run is already finished.
    async fn cancel_run(&self, id: &str) -> Result<RunDoc>;

    /// Re-runs a finished run: a new run of the same version, linked to it (`retry_of`),
    /// whose kept nodes start as `success` without running. Kept are the old run's
    /// successful nodes, except, with `from`, that node and everything downstream of it.
    /// `NotFound` for an unknown run or node; `Conflict` while the run is not finished or
    /// when nothing would run again.
    async fn retry_run(&self, id: &str, from: Option<&str>) -> Result<RunCreated>;

    /// Enforces deadlines on the store's clock: stops runs whose `timeout` passed (as a
    /// cancel does, but they end `error` with reason `timeout`), and ends `error`
    /// (`no_agent`) ready nodes nobody claimed within their queue timeout.
    async fn expire_deadlines(&self) -> Result<Expired>;

    /// A page of a run's logs; `NotFound` if the run is absent.
    async fn logs(&self, run_id: &str, query: &LogQuery) -> Result<LogPage>;

    // --- agents -------------------------------------------------------------------------

    /// Registers an agent whose token has hash `token_hash`; returns its id.
    async fn register_agent(&self, agent: &RegisterAgent, token_hash: &str) -> Result<String>;

    /// Marks an agent gone and revokes its token. Attempts it still holds are left to their
    /// leases.
    async fn deregister_agent(&self, agent_id: &str) -> Result<()>;

    /// Every agent not deregistered, plus those that left in the last hour.
    async fn list_agents(&self, lease_ms: u64) -> Result<Vec<AgentDoc>>;

    /// Every resource a live attempt holds or a claimable ready node names, by name, with
    /// its holders (oldest first) and waiters (in the order claims would hand them out).
    async fn resources(&self) -> Result<Vec<ResourceDoc>>;

    /// Hands the agent up to `max` ready nodes it can run, each as a new attempt leased for
    /// `lease_ms`, highest run priority first and in ready order within a priority; a node
    /// naming resources only while each has room for it (its attempt then holds them until
    /// it ends). Also names the agent's attempts whose run is being canceled.
    async fn claim(&self, agent_id: &str, max: u32, lease_ms: u64) -> Result<Claimed>;

    /// Marks a claimed attempt as started. `Stale` when it is not the agent's current attempt.
    async fn start_attempt(&self, agent_id: &str, attempt: AttemptRef) -> Result<()>;

    /// Renews the leases of the agent's attempts and records that the agent is alive.
    async fn heartbeat(
        &self,
        agent_id: &str,
        attempts: &[AttemptRef],
        lease_ms: u64,
    ) -> Result<HeartbeatResult>;

    /// Records how an attempt ended (a compare-and-set on attempt and fence) and moves the
    /// node, its downstream and its run on. Repeating the same report returns the stored
    /// outcome; any other write about a finished or foreign attempt is `Stale`.
    ///
    /// A report with no outputs: see [`report_attempt`](Store::report_attempt).
    async fn report(
        &self,
        agent_id: &str,
        attempt: AttemptRef,
        outcome: Outcome,
        message: Option<&str>,
    ) -> Result<Reported> {
        let report = AttemptReport {
            attempt_id: attempt.attempt_id,
            fence: attempt.fence,
            outcome,
            message: message.map(str::to_owned),
            outputs: Default::default(),
        };
        self.report_attempt(agent_id, &report).await
    }

    /// [`report`](Store::report), keeping the attempt's outputs (already checked by the
    /// caller against [`baton_core::check_outputs`]) when the report ends it; a repeated
    /// report keeps the outputs stored first. Nodes that need the attempt's node get them
    /// as inputs when claimed.
    async fn report_attempt(&self, agent_id: &str, report: &AttemptReport) -> Result<Reported>;

    /// Records how several attempts of the agent ended, as [`report`](Store::report) does
    /// for each, then hands the agent up to `want` ready nodes as [`claim`](Store::claim)
    /// does (without waiting, and naming no cancels), all in one transaction.
    ///
    /// A report that is `Stale` yields `None` and does not fail the others; any other error
    /// fails the whole call. `woke` is true only for nodes the reports made claimable that
    /// the claim left ready.
    async fn report_batch(
        &self,
        agent_id: &str,
        reports: &[AttemptReport],
        want: u32,
        lease_ms: u64,
    ) -> Result<BatchReported>;

    /// Appends a chunk of output to an attempt's log; a repeated `seq` is ignored.
    async fn append_log(
        &self,
        agent_id: &str,
        attempt: AttemptRef,
        seq: u32,
        stream: Stream,
        data: &str,
    ) -> Result<()>;

    /// Ends every attempt whose lease expired as `error` (`lost`), retrying by policy.
    async fn reap_expired(&self) -> Result<Reaped>;

    // --- routines -----------------------------------------------------------------------

    /// Takes or renews the lead of a routine (such as `"reaper"`) for `holder`, for `ttl_ms`
    /// on the store's clock; true when `holder` leads it now. With several servers on one
    /// database only the leader runs the routine, and when the leader stops renewing (it
    /// died), another server takes over once the term ran out. This default, for a store
    /// that serves one server (SQLite), always says true.
    async fn try_lead(&self, _routine: &str, _holder: &str, _ttl_ms: u64) -> Result<bool> {
        Ok(true)
    }

    /// Gives up the lead of a routine if `holder` has it, so that another server takes over
    /// at once (on a clean shutdown). This default does nothing.
    async fn resign_lead(&self, _routine: &str, _holder: &str) -> Result<()> {
        Ok(())
    }

    // --- artifacts ----------------------------------------------------------------------

    /// Checks that the agent may upload artifacts for this attempt and says where they belong.
    async fn artifact_target(&self, agent_id: &str, attempt: AttemptRef) -> Result<ArtifactTarget>;

    /// Records a stored artifact file of an attempt (replacing one with the same path).
    async fn record_artifact(
        &self,
        attempt_id: i64,
        path: &str,
        size: u64,
        sha256: &str,
    ) -> Result<()>;

    /// A run's artifacts; `NotFound` if the run is absent.
    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactDoc>>;

    // --- audit --------------------------------------------------------------------------

    /// Records that `actor` (a token's name) did `action` to `target`, at the store's
    /// clock; returns the entry's id. `detail` is a JSON object (maybe empty) of at most
    /// 16 KiB; actor and target longer than 256 bytes are cut. `Invalid` for an empty
    /// actor or a detail that is not an object or too large.
    async fn record_audit(
        &self,
        actor: &str,
        action: AuditAction,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<i64>;

    /// A page of the audit trail, newest first, filtered by actor and action; older pages
    /// through `before`. `Invalid` for a bad query (limit out of range, unknown action).
    async fn list_audit(&self, query: &AuditQuery) -> Result<AuditPage>;
}
