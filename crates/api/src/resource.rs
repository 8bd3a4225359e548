//! `GET /api/v1/resources`: resources being held or waited for.

use serde::{Deserialize, Serialize};

/// A resource (a named semaphore nodes take with `resources:`) that some live attempt holds
/// or some ready node waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDoc {
    /// The resource's name.
    pub name: String,
    /// Live attempts holding it, in the order they took it.
    pub holders: Vec<ResourceHolder>,
    /// How many ready nodes name it (`waiters` lists the first of them).
    pub waiting: u64,
    /// Ready nodes that name it, in the order they would get it (highest priority, then
    /// longest ready); at most 100.
    pub waiters: Vec<ResourceWaiter>,
}

/// An attempt holding a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceHolder {
    /// Run id.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Node id.
    pub node: String,
    /// Attempt number.
    pub attempt: u32,
    /// Name of the agent running the attempt.
    pub agent: String,
    /// When the attempt took the resource (was claimed), RFC 3339.
    pub since: String,
    /// The count the node declared for the resource (1: exclusive).
    pub count: u32,
}

/// A ready node that names a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceWaiter {
    /// Run id.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Node id.
    pub node: String,
    /// The run's priority.
    pub priority: i32,
    /// When the node became ready, RFC 3339.
    pub ready_since: String,
    /// The count the node declares for the resource (1: exclusive).
    pub count: u32,
}
