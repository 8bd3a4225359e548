//! Resources on PostgreSQL: the same rules as SQLite's ([`crate::sqlite::resources`]),
//! exact beside other claims on other connections and replicas.
//!
//! A claim reads a resource's holds and first waiter only under that resource's
//! transaction-scoped advisory lock, and keeps the lock until it commits, so no other claim
//! can add a holder between its count and its insert, nor change the first waiter between
//! its read and its write. The lock is only tried, never waited for (a claim also holds
//! run locks, and waiting here could close a cycle): a resource another claim is taking
//! right now counts as full for this claim, which then tells its agent to look again soon
//! (see `super::claim`). A hold being released still shows until its transaction commits,
//! which can only refuse a claim, never admit one too many. Holds are read in a statement
//! after the one that took the lock, so a hold committed just before is seen.

use baton_api::{ResourceDoc, ResourceHolder, format_time};
use baton_core::ResourceUse;

use super::db::{Db, RowExt};
use crate::Result;
use crate::sqlite::resources::{Listing, Place, Room, Rooms, waiter};

/// What one claim knows about resources, and whether it met one being taken by another
/// claim at that moment.
#[derive(Debug, Default)]
pub(crate) struct Claiming {
    rooms: Rooms,
    /// A resource was refused only because another claim held its lock: this claim's
    /// agent must look again soon.
    pub(crate) contended: bool,
}

/// Whether the node at `place` naming `uses` may take them now, locking and reading each
/// resource the first time the claim meets it, and recording the node as the first waiter
/// of those it now waits first for (see [`Rooms::admit`]).
pub(crate) async fn admit(
    db: &Db<'_>,
    c: &mut Claiming,
    uses: &[ResourceUse],
    place: Place,
) -> Result<bool> {
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
                        busy: true,
                        ..Room::default()
                    },
                );
            }
        }
        if !locked.is_empty() {
            for r in db
                .query(
                    "checking resources",
                    // A first waiter no longer ready since the recorded time is stale.
                    "SELECT q.r, \
                       (SELECT COUNT(*) FROM resource_holds h WHERE h.resource = q.r), \
                       (SELECT MIN(h.capacity) FROM resource_holds h WHERE h.resource = q.r), \
                       w.prio_key, w.ready_at, w.node_id \
                     FROM unnest($1::text[]) AS q(r) \
                     LEFT JOIN (resource_waiters w JOIN nodes n ON n.id = w.node_id \
                       AND n.status = 'ready' AND n.ready_at = w.ready_at) \
                       ON w.resource = q.r",
                    &[&locked],
                )
                .await?
            {
                let name: String = r.at(0)?;
                let first = match r.at::<Option<i64>>(5)? {
                    Some(node_id) => Some((r.at(3)?, r.at(4)?, node_id)),
                    None => None,
                };
                c.rooms.learn(
                    &name,
                    Room {
                        holders: r.at(1)?,
                        capacity: r.at(2)?,
                        first,
                        busy: false,
                    },
                );
            }
        }
    }
    let (admitted, first_of) = c.rooms.admit(uses, place);
    if !first_of.is_empty() {
        db.execute(
            "queueing for resources",
            "INSERT INTO resource_waiters (resource, node_id, prio_key, ready_at) \
             SELECT r, $2, $3, $4 FROM unnest($1::text[]) AS r \
             ON CONFLICT (resource) DO UPDATE SET node_id = excluded.node_id, \
               prio_key = excluded.prio_key, ready_at = excluded.ready_at",
            &[&first_of, &place.2, &place.0, &place.1],
        )
        .await?;
    }
    Ok(admitted)
}

/// Records the attempt's holds of `uses` (whose locks [`admit`] took), taken by the node
/// at `place`.
pub(crate) async fn hold(
    db: &Db<'_>,
    c: &mut Claiming,
    uses: &[ResourceUse],
    attempt_id: i64,
    place: Place,
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
    let served = c.rooms.took(uses, place);
    if !served.is_empty() {
        db.execute(
            "taking resources",
            "DELETE FROM resource_waiters WHERE resource = ANY($1) AND node_id = $2",
            &[&served, &place.2],
        )
        .await?;
    }
    Ok(())
}

/// Every resource held or waited for (see `crate::sqlite::resources::list`).
pub(crate) async fn list(db: &Db<'_>) -> Result<Vec<ResourceDoc>> {
    let mut out = Listing::default();
    for r in &db
        .query(
            "listing resources",
            "SELECT w.resource, w.node_id FROM resource_waiters w \
             JOIN nodes n ON n.id = w.node_id \
             WHERE n.status = 'ready' AND n.ready_at = w.ready_at",
            &[],
        )
        .await?
    {
        out.first(&r.at::<String>(0)?, r.at(1)?);
    }
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
            "SELECT n.run_id, r.workflow, r.version_id, n.idx, n.prio_key, n.ready_at, n.id \
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
                r.at(6)?,
                waiter(&run_id, &workflow, &spec.id, r.at(4)?, r.at(5)?, u.count),
            );
        }
    }
    Ok(out.finish())
}
