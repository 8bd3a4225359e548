//! Values the store's methods return.

use baton_api::{Assignment, Role, RunDoc};
use baton_core::Outcome;

/// The kinds of bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Full API access (`admin.token`).
    Admin,
    /// Only agent registration (`agent.token`).
    Enroll,
    /// One agent's own token.
    Agent,
}

impl TokenKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Enroll => "enroll",
            TokenKind::Agent => "agent",
        }
    }
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person: the admin token file (an admin named `admin`) or a named token.
    User {
        /// The token's name.
        name: String,
        /// What it may do.
        role: Role,
    },
    /// The enrollment token.
    Enroll,
    /// A registered, not deregistered agent.
    Agent {
        /// Its id.
        agent_id: String,
    },
}

impl Principal {
    /// The admin token file's principal.
    pub fn admin() -> Principal {
        Principal::User {
            name: ADMIN_TOKEN_NAME.to_owned(),
            role: Role::Admin,
        }
    }
}

/// The name the admin token file acts under (reserved: no named token may take it).
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// A named token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its name, already checked.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// The token's first characters, shown in lists.
    pub prefix: String,
    /// Lifetime from now, in milliseconds; `None` for no expiry.
    pub expires_in_ms: Option<u64>,
    /// Who creates it (a token name).
    pub created_by: String,
}

/// A secret's value as the server sealed it (AEAD), with what the store keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Its name.
    pub name: String,
    /// The nonce it was sealed with.
    pub nonce: Vec<u8>,
    /// The sealed value (ciphertext and tag).
    pub sealed: Vec<u8>,
    /// Workflows that may use it; `None` for every workflow.
    pub workflows: Option<Vec<String>>,
}

/// A new run and whether it made nodes ready (so waiting agents should be woken).
#[derive(Debug, Clone)]
pub struct RunCreated {
    /// The run document.
    pub run: RunDoc,
}

/// What a claim handed out.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// New attempts for the agent.
    pub assignments: Vec<Assignment>,
    /// The agent's attempts whose run is being canceled.
    pub cancel: Vec<i64>,
    /// When the earliest node that is ready but backing off becomes claimable (epoch ms):
    /// a waiting claim should look again then.
    pub next_ready_at: Option<i64>,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatResult {
    /// Attempts whose run is being canceled.
    pub cancel: Vec<i64>,
    /// Attempts that are no longer the agent's: it must stop them and report nothing.
    pub stale: Vec<i64>,
}

/// What a report did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// The attempt's stored outcome.
    pub outcome: Outcome,
    /// True when this report was a repeat and changed nothing.
    pub duplicate: bool,
    /// True when nodes became claimable now, or a resource was released (nodes waiting
    /// for it may be claimable): wake waiting agents.
    pub woke: bool,
}

/// What a batch of reports did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReported {
    /// One per report, in order; `None` when the attempt is not the agent's current one
    /// (what [`Store::report`](crate::Store::report) refuses as `Stale`).
    pub reports: Vec<Option<Reported>>,
    /// Attempts handed out for the slots the reports freed.
    pub assignments: Vec<Assignment>,
    /// True when nodes the reports made claimable now are still ready after the claim, or
    /// a resource was released: other agents should look.
    pub woke: bool,
}

/// What a reaping pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reaped {
    /// Attempts ended as lost.
    pub lost: Vec<i64>,
    /// True when nodes became claimable now, or a resource was released.
    pub woke: bool,
    /// When the next lease expires, if any attempt is leased (epoch ms).
    pub next_expiry: Option<i64>,
}

/// Where an attempt's artifacts belong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactTarget {
    /// Run id.
    pub run_id: String,
    /// Node id.
    pub node: String,
    /// Attempt number.
    pub attempt: u32,
}

/// What a deadline pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expired {
    /// Runs stopped because their `timeout` passed.
    pub runs: Vec<String>,
    /// Nodes ended `error` (`no_agent`) because nobody claimed them within their queue
    /// timeout, as (run id, node id).
    pub nodes: Vec<(String, String)>,
    /// True when agents hold attempts of a stopped run: held claims must look again to
    /// learn of it.
    pub canceling: bool,
    /// True when a node ended here made a node below it claimable (a trigger rule such as
    /// `any_failure` or `all_done` was met), or named resources (it may have been first in
    /// line for one, keeping others from it): held claims must look again.
    pub woke: bool,
    /// When the next deadline falls due (epoch ms), if any.
    pub next_due: Option<i64>,
}

/// A change committed by any process sharing the database, as [`Store::events`]
/// announces it.
///
/// [`Store::events`]: crate::Store::events
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Nodes may have become claimable (now, or at a later time a claim will report), or
    /// agents hold attempts they must cancel: held claims should look again. Also sent
    /// after the backend lost and regained its connection, since events may have been
    /// missed meanwhile.
    Work,
    /// The run with this id changed (its `rev` moved).
    Run(String),
}
