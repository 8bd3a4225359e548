//! States of runs, nodes and attempts, and how an attempt ended.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A state name that is not one of the known ones (from a database row or a request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct UnknownState(pub String);

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase name used in files, the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState(s.to_owned())),
                }
            }
        }
    };
}

string_enum! {
    /// The state of a node within a run.
    NodeState {
        /// Upstream nodes are not done yet.
        Waiting => "waiting",
        /// May be claimed by an agent (possibly after a retry back-off).
        Ready => "ready",
        /// Claimed by an agent, not yet started.
        Pending => "pending",
        /// An attempt is running on an agent.
        Running => "running",
        /// The work ran and succeeded.
        Success => "success",
        /// The work ran and failed (non-zero exit).
        Failure => "failure",
        /// The work could not run or finish (setup error, agent lost, timeout).
        Error => "error",
        /// Canceled by a user or a shutdown.
        Canceled => "canceled",
        /// Not run because its upstream did not succeed.
        Skipped => "skipped",
    }
}

string_enum! {
    /// The state of a run.
    RunState {
        /// Accepted, nothing scheduled yet.
        Created => "created",
        /// Scheduled; no attempt has started yet.
        Pending => "pending",
        /// At least one attempt has started.
        Running => "running",
        /// Every node succeeded.
        Success => "success",
        /// Some node failed.
        Failure => "failure",
        /// Some node errored and none failed.
        Error => "error",
        /// Canceled by a user.
        Canceled => "canceled",
    }
}

string_enum! {
    /// The state of one attempt of a node.
    AttemptState {
        /// Claimed by an agent, not yet started.
        Pending => "pending",
        /// Started on its agent.
        Running => "running",
        /// Exited 0.
        Success => "success",
        /// Exited non-zero.
        Failure => "failure",
        /// Could not run or finish; see its [`Reason`].
        Error => "error",
        /// Canceled by a user or an agent shutdown.
        Canceled => "canceled",
    }
}

string_enum! {
    /// Why an attempt ended the way it did (beyond its exit code).
    Reason {
        /// The process exited; the exit code tells the rest.
        Exit => "exit",
        /// The agent stopped renewing the attempt's lease.
        Lost => "lost",
        /// The node's `timeout` elapsed.
        Timeout => "timeout",
        /// The agent could not start the work (bad function, spawn failure, work dir).
        Setup => "setup",
        /// A user canceled the run.
        Canceled => "canceled",
        /// The agent shut down before the attempt finished.
        Shutdown => "shutdown",
        /// No agent offered what the node needs in time.
        NoAgent => "no_agent",
        /// The attempt's outputs were refused (too large or malformed).
        Output => "output",
        /// The workflow's concurrency limit canceled the run.
        Concurrency => "concurrency",
    }
}

impl NodeState {
    /// Terminal states never change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            NodeState::Success
                | NodeState::Failure
                | NodeState::Error
                | NodeState::Canceled
                | NodeState::Skipped
        )
    }
}

impl RunState {
    /// Terminal states never change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Success | RunState::Failure | RunState::Error | RunState::Canceled
        )
    }
}

impl AttemptState {
    /// Terminal states never change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, AttemptState::Pending | AttemptState::Running)
    }
}

/// How an attempt ended, as reported by its agent or decided by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Outcome {
    /// The attempt's final state; never `pending` or `running`.
    pub state: AttemptState,
    /// Why it ended that way.
    pub reason: Reason,
    /// The process exit code, when a process ran and exited.
    pub exit_code: Option<i32>,
}

impl Outcome {
    /// A process that exited with `code`.
    pub fn exited(code: i32) -> Outcome {
        Outcome {
            state: if code == 0 {
                AttemptState::Success
            } else {
                AttemptState::Failure
            },
            reason: Reason::Exit,
            exit_code: Some(code),
        }
    }

    /// An attempt that errored for `reason`.
    pub fn error(reason: Reason) -> Outcome {
        Outcome {
            state: AttemptState::Error,
            reason,
            exit_code: None,
        }
    }

    /// An attempt canceled for `reason` (a user's cancel or an agent shutdown).
    pub fn canceled(reason: Reason) -> Outcome {
        Outcome {
            state: AttemptState::Canceled,
            reason,
            exit_code: None,
        }
    }
}
