//! In-memory caches of things that never change once written: compiled workflow
//! versions, requirement rows, and which requirements each agent meets; and of valid
//! agent tokens, dropped whenever an agent is registered or deregistered.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use baton_core::{Dag, NodeSpec, Requirement, Workflow};
use rusqlite::OptionalExtension;

use super::db::{Db, SqlResult, corrupt, from_json};
use crate::version_cache::VersionCache;
use crate::{Result, StoreError};

/// A workflow version ready to schedule: definition, graph, and each node's requirement.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) name: String,
    pub(crate) workflow: Workflow,
    pub(crate) dag: Dag,
    /// Requirement id of each node, by index.
    pub(crate) reqs: Vec<i64>,
}

impl Compiled {
    /// The node at `idx`; `idx` comes from a row of this version's run.
    pub(crate) fn node(&self, idx: u32) -> Result<&NodeSpec> {
        self.workflow
            .nodes
            .get(idx as usize)
            .ok_or_else(|| corrupt(format!("node index {idx} beyond workflow {}", self.name)))
    }
}

/// Which requirements one agent meets, extended as new requirements appear.
#[derive(Debug)]
struct AgentMatch {
    labels: BTreeMap<String, String>,
    functions: Vec<String>,
    matched: Vec<i64>,
    /// Requirement ids up to this one have been checked.
    upto: i64,
}

/// The caches. Entries are only ever loaded from committed rows, so a rolled-back
/// transaction can never leave one behind.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    versions: Mutex<VersionCache>,
    requirements: Mutex<Vec<(i64, Requirement)>>,
    agents: Mutex<HashMap<String, AgentMatch>>,
    tokens: Mutex<Tokens>,
}

/// Agent tokens found valid: token hash to agent id.
///
/// Every agent request authenticates, and an indexed read costs a blocking-pool hop and a
/// read transaction; a hit here costs a map lookup. Registering and deregistering agents
/// (the only ways an agent token stops working) clear it after their commit and bump the
/// generation, so a lookup that read the database before that commit cannot put the old
/// answer back.
#[derive(Debug, Default)]
struct Tokens {
    generation: u64,
    agents: HashMap<String, String>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The caches hold no invariant a panic could break halfway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a node asks of an agent.
pub(crate) fn requirement_of(node: &NodeSpec) -> Requirement {
    Requirement {
        function: node.action.function().to_owned(),
        selector: node.selector.clone(),
    }
}

/// The canonical text of a requirement (selector maps are ordered, so equal requirements
/// give equal keys).
pub(crate) fn requirement_key(req: &Requirement) -> Result<String> {
    serde_json::to_string(req).map_err(|e| StoreError::backend("encoding a requirement", e))
}

impl Cache {
    /// The compiled version with this id, loaded and compiled on first use.
    pub(crate) fn version(&self, db: &Db<'_>, id: &str) -> Result<Arc<Compiled>> {
        if let Some(c) = guard(&self.versions).get(id) {
            return Ok(c.clone());
        }
        let (name, definition): (String, String) = db
            .conn
            .prepare_cached("SELECT name, definition FROM workflow_versions WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .ctx("loading a workflow version")?
            .ok_or_else(|| corrupt(format!("workflow version {id} is missing")))?;
        let workflow: Workflow = from_json("decoding a stored workflow", &definition)?;
        let dag = Dag::compile(&workflow);
        let mut ids: HashMap<String, i64> = HashMap::new();
        let mut reqs = Vec::with_capacity(workflow.nodes.len());
        let mut stmt = db
            .conn
            .prepare_cached("SELECT id FROM requirements WHERE key = ?1")
            .ctx("loading requirements")?;
        for node in &workflow.nodes {
            let key = requirement_key(&requirement_of(node))?;
            let id = match ids.get(&key) {
                Some(&id) => id,
                None => {
                    let id: i64 = stmt
                        .query_row([&key], |r| r.get(0))
                        .optional()
                        .ctx("loading requirements")?
                        .ok_or_else(|| {
                            corrupt(format!("requirement of node {} missing", node.id))
                        })?;
                    ids.insert(key, id);
                    id
                }
            };
            reqs.push(id);
        }
        let compiled = Arc::new(Compiled {
            name,
            workflow,
            dag,
            reqs,
        });
        guard(&self.versions).insert(id, compiled.clone());
        Ok(compiled)
    }

    /// Requirement ids the agent meets, given its stored labels and functions.
    ///
    /// Loads only requirement rows newer than the newest cached one, and checks the agent
    /// only against requirements it has not been checked against.
    pub(crate) fn matching(&self, db: &Db<'_>, agent_id: &str) -> Result<Vec<i64>> {
        let mut reqs = guard(&self.requirements);
        let newest = reqs.last().map_or(0, |r| r.0);
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT id, function, selector FROM requirements WHERE id > ?1 ORDER BY id",
            )
            .ctx("loading requirements")?;
        let rows = stmt
            .query_map([newest], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get::<_, String>(2)?))
            })
            .ctx("loading requirements")?;
        for row in rows {
            let (id, function, selector) = row.ctx("loading requirements")?;
            let selector = from_json("decoding a requirement", &selector)?;
            reqs.push((id, Requirement { function, selector }));
        }

        let mut agents = guard(&self.agents);
        if !agents.contains_key(agent_id) {
            let (labels, functions): (String, String) = db
                .conn
                .prepare_cached("SELECT labels, functions FROM agents WHERE id = ?1")
                .and_then(|mut s| s.query_row([agent_id], |r| Ok((r.get(0)?, r.get(1)?))))
                .ctx("loading an agent")?;
            agents.insert(
                agent_id.to_owned(),
                AgentMatch {
                    labels: from_json("decoding agent labels", &labels)?,
                    functions: from_json("decoding agent functions", &functions)?,
                    matched: Vec::new(),
                    upto: 0,
                },
            );
        }
        let Some(agent) = agents.get_mut(agent_id) else {
            return Ok(Vec::new());
        };
        let start = reqs.partition_point(|r| r.0 <= agent.upto);
        for (id, req) in &reqs[start..] {
            if req.is_met_by(&agent.labels, &agent.functions) {
                agent.matched.push(*id);
            }
        }
        agent.upto = reqs.last().map_or(agent.upto, |r| r.0);
        Ok(agent.matched.clone())
    }

    /// The agent whose token has this hash, if a lookup found it valid since the last
    /// registration change.
    pub(crate) fn agent_token(&self, hash: &str) -> Option<String> {
        guard(&self.tokens).agents.get(hash).cloned()
    }

    /// The token generation; read it before looking a token up in the database.
    pub(crate) fn token_generation(&self) -> u64 {
        guard(&self.tokens).generation
    }

    /// Remembers a valid agent token, unless registrations changed since `generation`
    /// was read (the lookup may then have seen a token that is revoked by now).
    pub(crate) fn remember_agent_token(&self, generation: u64, hash: String, agent_id: String) {
        let mut tokens = guard(&self.tokens);
        if tokens.generation == generation {
            tokens.agents.insert(hash, agent_id);
        }
    }

    /// Forgets every remembered token; called after a registration change committed.
    pub(crate) fn forget_tokens(&self) {
        let mut tokens = guard(&self.tokens);
        tokens.generation += 1;
        tokens.agents.clear();
    }

    /// Forgets an agent that left.
    pub(crate) fn forget_agent(&self, agent_id: &str) {
        guard(&self.agents).remove(agent_id);
    }
}
