//! Agents: register, deregister, list.

use std::collections::HashMap;

use baton_api::{AgentDoc, RegisterAgent, format_time};

use super::db::{Db, RowExt, from_json, to_json};
use crate::{Result, StoreError, TokenKind};

/// Agents that left are still listed for this long.
const GONE_LISTED_MS: i64 = 3_600_000;

/// Registers an agent with the hash of its new token; returns its id.
///
/// Names are unique among agents that have not left: a restarted agent registering under
/// its old name replaces the old registration, whose token stops working (its attempts
/// are left to their leases). An advisory lock on the name makes two registrations of one
/// name take turns.
pub(crate) async fn register(
    db: &Db<'_>,
    agent: &RegisterAgent,
    token_hash: &str,
) -> Result<String> {
    if agent.name.trim().is_empty() {
        return Err(StoreError::Invalid("an agent needs a name".into()));
    }
    if agent.slots == 0 {
        return Err(StoreError::Invalid(format!(
            "agent {} needs at least one slot",
            agent.name
        )));
    }
    db.execute(
        "registering an agent",
        "SELECT pg_advisory_xact_lock(hashtextextended('baton:agent:' || $1, 0))",
        &[&agent.name],
    )
    .await?;
    let previous: Vec<String> = db
        .query(
            "registering an agent",
            "SELECT id FROM agents WHERE name = $1 AND deregistered_at IS NULL ORDER BY id",
            &[&agent.name],
        )
        .await?
        .iter()
        .map(|r| r.at(0))
        .collect::<Result<_>>()?;
    for id in &previous {
        deregister(db, id).await?;
    }
    let id = uuid::Uuid::now_v7().to_string();
    let labels = to_json("encoding labels", &agent.labels)?;
    let functions = to_json("encoding functions", &agent.functions)?;
    db.execute(
        "registering an agent",
        "INSERT INTO agents (id, name, labels, functions, slots, version, registered_at, \
         last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        &[
            &id,
            &agent.name,
            &labels,
            &functions,
            &i64::from(agent.slots),
            &agent.version,
            &db.now,
        ],
    )
    .await?;
    db.execute(
        "registering an agent",
        "INSERT INTO tokens (hash, kind, agent_id, created_at) VALUES ($1, $2, $3, $4)",
        &[&token_hash, &TokenKind::Agent.as_str(), &id, &db.now],
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict("that token is already in use".into()),
        e => e,
    })?;
    Ok(id)
}

/// Marks an agent gone and revokes its tokens; repeating it changes nothing.
pub(crate) async fn deregister(db: &Db<'_>, agent_id: &str) -> Result<()> {
    let found = db
        .execute(
            "deregistering an agent",
            "UPDATE agents SET deregistered_at = COALESCE(deregistered_at, $2) WHERE id = $1",
            &[&agent_id, &db.now],
        )
        .await?;
    if found == 0 {
        return Err(StoreError::NotFound(format!("agent {agent_id}")));
    }
    db.execute(
        "deregistering an agent",
        "UPDATE tokens SET revoked_at = $2 WHERE agent_id = $1 AND revoked_at IS NULL",
        &[&agent_id, &db.now],
    )
    .await?;
    db.cache.forget_agent(agent_id);
    Ok(())
}

/// Agents that have not left, plus those that left within the last hour.
pub(crate) async fn list(db: &Db<'_>, lease_ms: u64) -> Result<Vec<AgentDoc>> {
    let mut used: HashMap<String, u32> = HashMap::new();
    let rows = db
        .query(
            "listing agents",
            "SELECT agent_id, COUNT(*) FROM attempts \
             WHERE status IN ('pending', 'running') GROUP BY agent_id",
            &[],
        )
        .await?;
    for r in &rows {
        used.insert(r.at(0)?, r.u32_at(1)?);
    }
    let online_since = db
        .now
        .saturating_sub(i64::try_from(lease_ms).unwrap_or(i64::MAX));
    let rows = db
        .query(
            "listing agents",
            "SELECT id, name, labels, functions, slots, version, registered_at, last_seen_at, \
             deregistered_at FROM agents \
             WHERE deregistered_at IS NULL OR deregistered_at >= $1 \
             ORDER BY name, registered_at",
            &[&(db.now - GONE_LISTED_MS)],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.at(0)?;
        let seen: i64 = r.at(7)?;
        let gone: Option<i64> = r.at(8)?;
        let status = if gone.is_some() {
            "gone"
        } else if seen >= online_since {
            "online"
        } else {
            "offline"
        };
        out.push(AgentDoc {
            used_slots: used.get(&id).copied().unwrap_or(0),
            name: r.at(1)?,
            status: status.to_owned(),
            labels: from_json("decoding agent labels", r.at(2)?)?,
            functions: from_json("decoding agent functions", r.at(3)?)?,
            slots: r.u32_at(4)?,
            version: r.at(5)?,
            registered_at: format_time(r.at(6)?),
            last_seen_at: format_time(seen),
            id,
        });
    }
    Ok(out)
}
