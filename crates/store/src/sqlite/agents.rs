//! Agents: register, deregister, list.

use std::collections::HashMap;

use baton_api::{AgentDoc, RegisterAgent, format_time};
use rusqlite::params;

use super::db::{Db, SqlResult, from_json, to_json};
use crate::{Result, StoreError, TokenKind};

/// Agents that left are still listed for this long.
const GONE_LISTED_MS: i64 = 3_600_000;

/// Registers an agent with the hash of its new token; returns its id.
///
/// Names are unique among agents that have not left: a restarted agent registering under
/// its old name replaces the old registration, whose token stops working (its attempts
/// are left to their leases).
pub(crate) fn register(db: &Db<'_>, agent: &RegisterAgent, token_hash: &str) -> Result<String> {
    if agent.name.trim().is_empty() {
        return Err(StoreError::Invalid("an agent needs a name".into()));
    }
    if agent.slots == 0 {
        return Err(StoreError::Invalid(format!(
            "agent {} needs at least one slot",
            agent.name
        )));
    }
    let previous: Vec<String> = {
        let mut stmt = db
            .conn
            .prepare_cached("SELECT id FROM agents WHERE name = ?1 AND deregistered_at IS NULL")
            .ctx("registering an agent")?;
        let rows = stmt
            .query_map([&agent.name], |r| r.get(0))
            .ctx("registering an agent")?;
        rows.map(|r| r.ctx("registering an agent"))
            .collect::<Result<_>>()?
    };
    for id in &previous {
        deregister(db, id)?;
    }
    let id = uuid::Uuid::now_v7().to_string();
    let labels = to_json("encoding labels", &agent.labels)?;
    let functions = to_json("encoding functions", &agent.functions)?;
    db.conn
        .prepare_cached(
            "INSERT INTO agents (id, name, labels, functions, slots, version, registered_at, \
             last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                agent.name,
                labels,
                functions,
                agent.slots,
                agent.version,
                db.now
            ])
        })
        .ctx("registering an agent")?;
    db.conn
        .prepare_cached(
            "INSERT INTO tokens (hash, kind, agent_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![token_hash, TokenKind::Agent.as_str(), id, db.now]))
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => {
                StoreError::Conflict("that token is already in use".into())
            }
            _ => StoreError::backend("registering an agent", e),
        })?;
    Ok(id)
}

/// Marks an agent gone and revokes its tokens; repeating it changes nothing.
pub(crate) fn deregister(db: &Db<'_>, agent_id: &str) -> Result<()> {
    let found = db
        .conn
        .prepare_cached(
            "UPDATE agents SET deregistered_at = COALESCE(deregistered_at, ?2) WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![agent_id, db.now]))
        .ctx("deregistering an agent")?;
    if found == 0 {
        return Err(StoreError::NotFound(format!("agent {agent_id}")));
    }
    db.conn
        .prepare_cached(
            "UPDATE tokens SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
        )
        .and_then(|mut s| s.execute(params![agent_id, db.now]))
        .ctx("deregistering an agent")?;
    db.cache.forget_agent(agent_id);
    Ok(())
}

/// Agents that have not left, plus those that left within the last hour.
pub(crate) fn list(db: &Db<'_>, lease_ms: u64) -> Result<Vec<AgentDoc>> {
    let mut used: HashMap<String, u32> = HashMap::new();
    {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT agent_id, COUNT(*) FROM attempts \
                 WHERE status IN ('pending', 'running') GROUP BY agent_id",
            )
            .ctx("listing agents")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
            .ctx("listing agents")?;
        for row in rows {
            let (id, n) = row.ctx("listing agents")?;
            used.insert(id, n);
        }
    }
    let online_since = db
        .now
        .saturating_sub(i64::try_from(lease_ms).unwrap_or(i64::MAX));
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT id, name, labels, functions, slots, version, registered_at, last_seen_at, \
             deregistered_at FROM agents \
             WHERE deregistered_at IS NULL OR deregistered_at >= ?1 \
             ORDER BY name, registered_at",
        )
        .ctx("listing agents")?;
    let rows = stmt
        .query_map([db.now - GONE_LISTED_MS], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })
        .ctx("listing agents")?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, labels, functions, slots, version, registered, seen, gone) =
            row.ctx("listing agents")?;
        let status = if gone.is_some() {
            "gone"
        } else if seen >= online_since {
            "online"
        } else {
            "offline"
        };
        out.push(AgentDoc {
            used_slots: used.get(&id).copied().unwrap_or(0),
            id,
            name,
            status: status.to_owned(),
            labels: from_json("decoding agent labels", &labels)?,
            functions: from_json("decoding agent functions", &functions)?,
            slots,
            version,
            registered_at: format_time(registered),
            last_seen_at: format_time(seen),
        });
    }
    Ok(out)
}
