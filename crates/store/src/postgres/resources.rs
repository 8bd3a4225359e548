//! Resources on PostgreSQL: the same rules as SQLite's ([`crate::sqlite::resources`]),
//! exact beside other claims on other connections and replicas.
//!
//! A claim reads a resource's holds only under that resource's transaction-scoped advisory
//! lock, and keeps the lock until it commits, so no other claim can add a holder between
//! its count and its insert. The lock is only tried, never waited for (a claim also holds
//! run locks, and waiting here could close a cycle): a resource another claim is taking
//! right now counts as full for this claim, which then asks waiting agents to look again
//! once it commits. A hold being released still shows until its transaction commits,
//! which can only refuse a claim, never admit one too many. Holds are read in a statement
//! after the one that took the lock, so a hold committed just before is seen.

use baton_api::{ResourceDoc, ResourceHolder, format_time};
use baton_core::ResourceUse;

use super::db::{Db, RowExt};
use crate::Result;
use crate::sqlite::resources::{Listing, Room, Rooms, waiter};

/// What one claim knows about resources, and whether it met one being taken by another
/// claim at that moment.
#[derive(Debug, Default)]
pub(crate) struct Claiming {
    rooms: Rooms,
    /// A resource was refused only because another claim held its lock: agents waiting
    /// for work must look again once this claim commits.
    pub(crate) contended: bool,
}

/// Whether a node naming `uses` may take them now, locking and reading each resource the
/// first time the claim meets it.
pub(crate) async fn admit(db: &Db<'_>, c: &mut Claiming, uses: &[ResourceUse]) -> Result<bool> {
    let unknown: Vec<&str> = c.rooms.unknown(uses);
    if !unknown.is_empty() {
        let mut locked: Vec<&str> = Vec::with_capacity(unknown.len());
        for r in db
            .query(
                "checking resources",
                // The key names the schema, so stores in different schemas of one
                // database (tests) do not contend.
                "SELECT r, pg_try_advisory_xact_lock(hashtextextended( \
                   'baton:resource:' || COALESCE(current_schema(), '') || ':' || r, 0)) \
                 FROM unnest($1::text[]) AS r",
                &[&unknown],
            )
            .await?
        {
            let name: String = r.at(0)?;
            let Some(&name) = unknown.iter().find(|n| **n == name) else {
                continue;
            };
            if r.at::<bool>(1)? {
                locked.push(name);
            } else {
                c.contended = true;
                c.rooms.learn(
                    name,
                    Room {
                        waited: true,
                        ..Room::default()
                    },
                );
            }
        }
        if !locked.is_empty() {
            for r in db
                .query(
                    "checking resources",
                    "SELECT q.r, COUNT(h.resource), MIN(h.capacity) \
                     FROM unnest($1::text[]) AS q(r) \
                     LEFT JOIN resource_holds h ON h.resource = q.r GROUP BY q.r",
                    &[&locked],
                )
                .await?
            {
                let name: String = r.at(0)?;
                c.rooms.learn(
                    &name,
                    Room {
                        holders: r.at(1)?,
                        capacity: r.at(2)?,
                        waited: false,
                    },
                );
            }
        }
    }
    Ok(c.rooms.admit(uses))
}

/// Records the attempt's holds of `uses` (whose locks [`admit`] took).
pub(crate) async fn hold(
    db: &Db<'_>,
    c: &mut Claiming,
    uses: &[ResourceUse],
    attempt_id: i64,
) -> Result<()> {
    let names: Vec<&str> = uses.iter().map(|u| u.name.as_str()).collect();
    let counts: Vec<i64> = uses.iter().map(|u| i64::from(u.count)).collect();
    db.execute(
        "taking resources",
        "INSERT INTO resource_holds (resource, attempt_id, capacity) \
         SELECT r, $2, n FROM unnest($1::text[], $3::bigint[]) AS q(r, n)",
        &[&names, &attempt_id, &counts],
    )
    .await?;
    c.rooms.took(uses);
    Ok(())
}

/// Every resource held or waited for (see `crate::sqlite::resources::list`).
pub(crate) async fn list(db: &Db<'_>) -> Result<Vec<ResourceDoc>> {
    let mut out = Listing::default();
    let rows = db
        .query(
            "listing resources",
            "SELECT h.resource, h.capacity, a.run_id, r.workflow, r.version_id, n.idx, \
               a.number, g.name, a.claimed_at \
             FROM resource_holds h \
             JOIN attempts a ON a.id = h.attempt_id \
             JOIN nodes n ON n.id = a.node_id \
             JOIN runs r ON r.id = a.run_id \
             JOIN agents g ON g.id = a.agent_id \
             ORDER BY h.resource, a.claimed_at, a.id",
            &[],
        )
        .await?;
    for r in &rows {
        let resource: String = r.at(0)?;
        let version_id: String = r.at(4)?;
        let compiled = db.cache.version(db, &version_id).await?;
        out.holder(
            &resource,
            ResourceHolder {
                run_id: r.at(2)?,
                workflow: r.at(3)?,
                node: compiled.node(r.u32_at(5)?)?.id.clone(),
                attempt: r.u32_at(6)?,
                agent: r.at(7)?,
                since: format_time(r.at(8)?),
                count: r.u32_at(1)?,
            },
        );
    }
    let now = db.now;
    let rows = db
        .query(
            "listing resources",
            "SELECT n.run_id, r.workflow, r.version_id, n.idx, n.prio_key, n.ready_at \
             FROM nodes n JOIN runs r ON r.id = n.run_id \
             WHERE n.status = 'ready' AND n.ready_at <= $1 \
             ORDER BY n.prio_key, n.ready_at, n.id",
            &[&now],
        )
        .await?;
    for r in &rows {
        let run_id: String = r.at(0)?;
        let workflow: String = r.at(1)?;
        let version_id: String = r.at(2)?;
        let compiled = db.cache.version(db, &version_id).await?;
        let spec = compiled.node(r.u32_at(3)?)?;
        for u in &spec.resources {
            out.waiter(
                &u.name,
                waiter(&run_id, &workflow, &spec.id, r.at(4)?, r.at(5)?, u.count),
            );
        }
    }
    Ok(out.finish())
}
