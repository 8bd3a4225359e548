//! Resources: named semaphores that nodes hold while an attempt of theirs is live.
//!
//! A hold is a row of `resource_holds` (resource, attempt, the count the holder's node
//! declared), written by the claim that opens the attempt and deleted by whatever ends it
//! (report, reap, cancel). A node may take a resource while the holders, itself counted,
//! stay within its own count and every holder's: nodes that disagree on a resource's count
//! get the strictest of those in play, so a node that asked for a resource alone
//! (`count: 1`) always has it alone.
//!
//! Fairness: claims meet ready nodes in the order they get work (highest priority, then
//! longest ready: a node's [`Place`]). A node refused a resource for lack of room becomes
//! the resource's first waiter (a row of `resource_waiters`) unless one ahead of it already
//! is, and while that node stays ready no node behind it takes the resource, in this claim
//! or any later one, even where its count would fit: holders that keep overlapping cannot
//! starve a node that needs the resource emptier. The row goes when its node is claimed;
//! one whose node ended otherwise is stale, ignored and replaced. What [`Rooms`] decides is
//! shared by both backends; only how the rows are read and written differs (PostgreSQL
//! does it under a per-resource advisory lock).

use std::collections::{BTreeMap, HashMap};

use baton_api::{ResourceDoc, ResourceHolder, ResourceWaiter, format_time};
use baton_core::ResourceUse;
use rusqlite::{OptionalExtension, params};

use super::db::{Db, SqlResult};
use crate::Result;

/// Most waiters a listing names per resource (all are counted).
pub(crate) const LISTED_WAITERS: usize = 100;

/// A ready node's place in line: (`prio_key`, `ready_at`, node id), the order claims meet
/// nodes in; the smaller goes first.
pub(crate) type Place = (i64, i64, i64);

/// What a claim has learnt about one resource.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Room {
    /// Live holders.
    pub(crate) holders: i64,
    /// The smallest count the holders declared; `None` without holders.
    pub(crate) capacity: Option<i64>,
    /// The first waiter's place, while that node is still ready: nodes behind it must not
    /// take the resource.
    pub(crate) first: Option<Place>,
    /// Another claim is taking it right now (PostgreSQL): no node of this claim may take
    /// it, and none is recorded as waiting for it (its row is that claim's to write).
    pub(crate) busy: bool,
}

/// The resources one claim has looked at, read once each per claim.
#[derive(Debug, Default)]
pub(crate) struct Rooms(HashMap<String, Room>);

impl Rooms {
    /// Names among `uses` this claim has not looked at yet.
    pub(crate) fn unknown<'u>(&self, uses: &'u [ResourceUse]) -> Vec<&'u str> {
        uses.iter()
            .map(|u| u.name.as_str())
            .filter(|n| !self.0.contains_key(*n))
            .collect()
    }

    /// Records what was read about a resource.
    pub(crate) fn learn(&mut self, name: &str, room: Room) {
        self.0.insert(name.to_owned(), room);
    }

    /// Whether the node at `place` may take every resource it names now (each must be
    /// known), and the resources it becomes the first waiter of: those that had no room
    /// for it and no waiter ahead of it. The caller records it as their first waiter.
    pub(crate) fn admit<'u>(
        &mut self,
        uses: &'u [ResourceUse],
        place: Place,
    ) -> (bool, Vec<&'u str>) {
        let mut admitted = true;
        let mut first_of = Vec::new();
        for u in uses {
            let room = self.0.entry(u.name.clone()).or_default();
            let limit = room
                .capacity
                .map_or(i64::from(u.count), |c| c.min(i64::from(u.count)));
            let behind = room.first.is_some_and(|f| f < place);
            let full = room.holders >= limit;
            if room.busy || behind || full {
                admitted = false;
            }
            if full && !room.busy && !behind && room.first != Some(place) {
                room.first = Some(place);
                first_of.push(u.name.as_str());
            }
        }
        (admitted, first_of)
    }

    /// Records that the node at `place` took these resources; returns those it was the
    /// first waiter of, whose records the caller deletes.
    pub(crate) fn took<'u>(&mut self, uses: &'u [ResourceUse], place: Place) -> Vec<&'u str> {
        let mut served = Vec::new();
        for u in uses {
            let room = self.0.entry(u.name.clone()).or_default();
            room.holders += 1;
            let count = i64::from(u.count);
            room.capacity = Some(room.capacity.map_or(count, |c| c.min(count)));
            if room.first == Some(place) {
                room.first = None;
                served.push(u.name.as_str());
            }
        }
        served
    }
}

/// Whether the node at `place` naming `uses` may take them now (see [`Rooms::admit`]),
/// reading each resource's holds and first waiter the first time the claim meets it, and
/// recording the node as the first waiter of those it now waits first for.
pub(crate) fn admit(
    db: &Db<'_>,
    rooms: &mut Rooms,
    uses: &[ResourceUse],
    place: Place,
) -> Result<bool> {
    let unknown = rooms.unknown(uses);
    if !unknown.is_empty() {
        let mut holds = db
            .conn
            .prepare_cached(
                "SELECT COUNT(*), MIN(capacity) FROM resource_holds WHERE resource = ?1",
            )
            .ctx("checking resources")?;
        // A row whose node is no longer ready since the recorded time is stale.
        let mut first = db
            .conn
            .prepare_cached(
                "SELECT w.prio_key, w.ready_at, w.node_id FROM resource_waiters w \
                 JOIN nodes n ON n.id = w.node_id \
                 WHERE w.resource = ?1 AND n.status = 'ready' AND n.ready_at = w.ready_at",
            )
            .ctx("checking resources")?;
        for name in unknown {
            let (holders, capacity) = holds
                .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                .ctx("checking resources")?;
            let first = first
                .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .ctx("checking resources")?;
            rooms.learn(
                name,
                Room {
                    holders,
                    capacity,
                    first,
                    busy: false,
                },
            );
        }
    }
    let (admitted, first_of) = rooms.admit(uses, place);
    if !first_of.is_empty() {
        let mut stmt = db
            .conn
            .prepare_cached(
                "INSERT INTO resource_waiters (resource, node_id, prio_key, ready_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (resource) DO UPDATE SET \
                   node_id = excluded.node_id, prio_key = excluded.prio_key, \
                   ready_at = excluded.ready_at",
            )
            .ctx("queueing for resources")?;
        for name in first_of {
            stmt.execute(params![name, place.2, place.0, place.1])
                .ctx("queueing for resources")?;
        }
    }
    Ok(admitted)
}

/// Records the attempt's holds of `uses`, taken by the node at `place`.
pub(crate) fn hold(
    db: &Db<'_>,
    rooms: &mut Rooms,
    uses: &[ResourceUse],
    attempt_id: i64,
    place: Place,
) -> Result<()> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "INSERT INTO resource_holds (resource, attempt_id, capacity) VALUES (?1, ?2, ?3)",
        )
        .ctx("taking resources")?;
    for u in uses {
        stmt.execute(params![u.name, attempt_id, u.count])
            .ctx("taking resources")?;
    }
    let served = rooms.took(uses, place);
    if !served.is_empty() {
        let mut stmt = db
            .conn
            .prepare_cached("DELETE FROM resource_waiters WHERE resource = ?1 AND node_id = ?2")
            .ctx("taking resources")?;
        for name in served {
            stmt.execute(params![name, place.2])
                .ctx("taking resources")?;
        }
    }
    Ok(())
}

/// Resources being held or waited for, each with its holders and waiters, by name.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    docs: BTreeMap<String, ResourceDoc>,
    /// Each resource's first waiter (node row id), while it is still ready.
    firsts: HashMap<String, i64>,
}

impl Listing {
    fn entry(&mut self, name: &str) -> &mut ResourceDoc {
        self.docs
            .entry(name.to_owned())
            .or_insert_with(|| ResourceDoc {
                name: name.to_owned(),
                holders: Vec::new(),
                waiting: 0,
                waiters: Vec::new(),
            })
    }

    /// Adds a holder; holders come in the order they took the resource.
    pub(crate) fn holder(&mut self, name: &str, holder: ResourceHolder) {
        self.entry(name).holders.push(holder);
    }

    /// Notes the node (row id) recorded as a resource's first waiter; give every first
    /// waiter before the waiters.
    pub(crate) fn first(&mut self, name: &str, node_id: i64) {
        self.firsts.insert(name.to_owned(), node_id);
    }

    /// Adds a waiter (the node with row id `node_id`); waiters come in the order claims
    /// meet them, and the recorded first waiter goes first whatever its place: no other
    /// node gets the resource before it.
    pub(crate) fn waiter(&mut self, name: &str, node_id: i64, waiter: ResourceWaiter) {
        let first = self.firsts.get(name) == Some(&node_id);
        let doc = self.entry(name);
        doc.waiting += 1;
        if first {
            doc.waiters.insert(0, waiter);
            doc.waiters.truncate(LISTED_WAITERS);
        } else if doc.waiters.len() < LISTED_WAITERS {
            doc.waiters.push(waiter);
        }
    }

    /// The resources, by name.
    pub(crate) fn finish(self) -> Vec<ResourceDoc> {
        self.docs.into_values().collect()
    }
}

/// Every resource held or waited for. Waiters are the claimable ready nodes that name it,
/// the recorded first waiter first, then in the order claims meet them; finding them reads
/// every ready node (a listing for people, not a hot path).
pub(crate) fn list(db: &Db<'_>) -> Result<Vec<ResourceDoc>> {
    let mut out = Listing::default();
    {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT w.resource, w.node_id FROM resource_waiters w \
                 JOIN nodes n ON n.id = w.node_id \
                 WHERE n.status = 'ready' AND n.ready_at = w.ready_at",
            )
            .ctx("listing resources")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .ctx("listing resources")?;
        for row in rows {
            let (resource, node_id) = row.ctx("listing resources")?;
            out.first(&resource, node_id);
        }
    }
    {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT h.resource, h.capacity, a.run_id, r.workflow, r.version_id, n.idx, \
                   a.number, g.name, a.claimed_at \
                 FROM resource_holds h \
                 JOIN attempts a ON a.id = h.attempt_id \
                 JOIN nodes n ON n.id = a.node_id \
                 JOIN runs r ON r.id = a.run_id \
                 JOIN agents g ON g.id = a.agent_id \
                 ORDER BY h.resource, a.claimed_at, a.id",
            )
            .ctx("listing resources")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, u32>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })
            .ctx("listing resources")?;
        for row in rows {
            let (resource, count, run_id, workflow, version_id, idx, attempt, agent, since) =
                row.ctx("listing resources")?;
            let compiled = db.cache.version(db, &version_id)?;
            out.holder(
                &resource,
                ResourceHolder {
                    run_id,
                    workflow,
                    node: compiled.node(idx)?.id.clone(),
                    attempt,
                    agent,
                    since: format_time(since),
                    count,
                },
            );
        }
    }
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT n.run_id, r.workflow, r.version_id, n.idx, n.prio_key, n.ready_at, n.id \
             FROM nodes n JOIN runs r ON r.id = n.run_id \
             WHERE n.status = 'ready' AND n.ready_at <= ?1 \
             ORDER BY n.prio_key, n.ready_at, n.id",
        )
        .ctx("listing resources")?;
    let rows = stmt
        .query_map([db.now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .ctx("listing resources")?;
    for row in rows {
        let (run_id, workflow, version_id, idx, prio_key, ready_at, node_id) =
            row.ctx("listing resources")?;
        let compiled = db.cache.version(db, &version_id)?;
        let spec = compiled.node(idx)?;
        for u in &spec.resources {
            out.waiter(
                &u.name,
                node_id,
                waiter(&run_id, &workflow, &spec.id, prio_key, ready_at, u.count),
            );
        }
    }
    Ok(out.finish())
}

/// A waiter as listed.
pub(crate) fn waiter(
    run_id: &str,
    workflow: &str,
    node: &str,
    prio_key: i64,
    ready_at: i64,
    count: u32,
) -> ResourceWaiter {
    ResourceWaiter {
        run_id: run_id.to_owned(),
        workflow: workflow.to_owned(),
        node: node.to_owned(),
        // `prio_key` is minus an `i32` priority.
        priority: i32::try_from(-prio_key).unwrap_or(i32::MAX),
        ready_since: format_time(ready_at),
        count,
    }
}
