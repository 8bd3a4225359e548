//! In-memory caches of things that never change once written: compiled workflow
//! versions, requirement rows, and which requirements each agent meets.
//!
//! Unlike the SQLite backend, agent tokens are not cached: another replica may revoke one
//! at any time, and only the database knows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use baton_core::{Dag, Requirement, Workflow};

use super::db::{Db, RowExt, corrupt, from_json};
use crate::Result;
use crate::sqlite::cache::{Compiled, requirement_key, requirement_of};
use crate::version_cache::VersionCache;

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
    /// Requirement rows by ascending id. Rows are added under an advisory lock, one
    /// transaction at a time, so a snapshot that sees id `n` sees every id below it.
    requirements: Mutex<Vec<(i64, Requirement)>>,
    agents: Mutex<HashMap<String, AgentMatch>>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The caches hold no invariant a panic could break halfway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    /// The compiled version with this id, loaded and compiled on first use.
    pub(crate) async fn version(&self, db: &Db<'_>, id: &str) -> Result<Arc<Compiled>> {
        if let Some(c) = guard(&self.versions).get(id) {
            return Ok(c.clone());
        }
        let row = db
            .query_opt(
                "loading a workflow version",
                "SELECT name, definition FROM workflow_versions WHERE id = $1",
                &[&id],
            )
            .await?
            .ok_or_else(|| corrupt(format!("workflow version {id} is missing")))?;
        let name: String = row.at(0)?;
        let workflow: Workflow = from_json("decoding a stored workflow", row.at(1)?)?;
        let dag = Dag::compile(&workflow);
        let keys = workflow
            .nodes
            .iter()
            .map(|n| requirement_key(&requirement_of(n)))
            .collect::<Result<Vec<_>>>()?;
        let ids: HashMap<String, i64> = db
            .query(
                "loading requirements",
                "SELECT key, id FROM requirements WHERE key = ANY($1)",
                &[&keys],
            )
            .await?
            .iter()
            .map(|r| Ok((r.at(0)?, r.at(1)?)))
            .collect::<Result<_>>()?;
        let reqs = keys
            .iter()
            .zip(&workflow.nodes)
            .map(|(k, node)| {
                ids.get(k)
                    .copied()
                    .ok_or_else(|| corrupt(format!("requirement of node {} missing", node.id)))
            })
            .collect::<Result<Vec<_>>>()?;
        let compiled = Arc::new(Compiled {
            name,
            workflow,
            dag,
            reqs,
        });
        guard(&self.versions).insert(id, compiled.clone());
        Ok(compiled)
    }

    /// The newest requirement id cached.
    fn newest_requirement(&self) -> i64 {
        guard(&self.requirements).last().map_or(0, |r| r.0)
    }

    /// Requirement ids the agent meets, given its stored labels and functions.
    ///
    /// `newest` is the newest requirement id the transaction sees (read with its start):
    /// only when it is past the cache are requirement rows loaded.
    pub(crate) async fn matching(
        &self,
        db: &Db<'_>,
        agent_id: &str,
        newest: i64,
    ) -> Result<Vec<i64>> {
        let cached = self.newest_requirement();
        if newest > cached {
            let rows = db
                .query(
                    "loading requirements",
                    "SELECT id, function, selector FROM requirements WHERE id > $1 ORDER BY id",
                    &[&cached],
                )
                .await?;
            let mut fresh = Vec::with_capacity(rows.len());
            for r in &rows {
                let selector = from_json("decoding a requirement", r.at(2)?)?;
                fresh.push((
                    r.at::<i64>(0)?,
                    Requirement {
                        function: r.at(1)?,
                        selector,
                    },
                ));
            }
            let mut reqs = guard(&self.requirements);
            let have = reqs.last().map_or(0, |r| r.0);
            // Another call may have loaded some of them meanwhile.
            reqs.extend(fresh.into_iter().filter(|r| r.0 > have));
        }

        let known = guard(&self.agents).contains_key(agent_id);
        if !known {
            let row = db
                .query_one(
                    "loading an agent",
                    "SELECT labels, functions FROM agents WHERE id = $1",
                    &[&agent_id],
                )
                .await?;
            let entry = AgentMatch {
                labels: from_json("decoding agent labels", row.at(0)?)?,
                functions: from_json("decoding agent functions", row.at(1)?)?,
                matched: Vec::new(),
                upto: 0,
            };
            guard(&self.agents)
                .entry(agent_id.to_owned())
                .or_insert(entry);
        }
        let reqs = guard(&self.requirements);
        let mut agents = guard(&self.agents);
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

    /// Forgets an agent that left.
    pub(crate) fn forget_agent(&self, agent_id: &str) {
        guard(&self.agents).remove(agent_id);
    }
}
