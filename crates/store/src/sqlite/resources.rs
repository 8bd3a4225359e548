//! Resources: named semaphores that nodes hold while an attempt of theirs is live.
//!
//! A hold is a row of `resource_holds` (resource, attempt, the count the holder's node
//! declared), written by the claim that opens the attempt and deleted by whatever ends it
//! (report, reap, cancel). A node may take a resource while the holders, itself counted,
//! stay within its own count and every holder's: nodes that disagree on a resource's count
//! get the strictest of those in play, so a node that asked for a resource alone
//! (`count: 1`) always has it alone.
//!
//! Fairness comes from the claim's walk, which meets ready nodes in the order they get
//! work (highest priority, then longest ready): [`Rooms`] remembers, for the length of one
//! claim, which resources a node it met first was refused, so no later node of that claim
//! overtakes it. What [`Rooms`] decides is shared by both backends; only how the holds are
//! read differs (PostgreSQL reads them under a per-resource advisory lock).

use std::collections::{BTreeMap, HashMap};

use baton_api::{ResourceDoc, ResourceHolder, ResourceWaiter, format_time};
use baton_core::ResourceUse;
use rusqlite::params;

use super::db::{Db, SqlResult};
use crate::Result;

/// Most waiters a listing names per resource (all are counted).
pub(crate) const LISTED_WAITERS: usize = 100;

/// What a claim has learnt about one resource.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Room {
    /// Live holders.
    pub(crate) holders: i64,
    /// The smallest count the holders declared; `None` without holders.
    pub(crate) capacity: Option<i64>,
    /// A node met earlier in this claim was refused it (or, on PostgreSQL, another claim
    /// is taking it right now): later nodes must not take it.
    pub(crate) waited: bool,
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

    /// Whether a node may take every resource it names now (each must be known). On a
    /// refusal, the resources that had no room for it are marked waited for, so nodes met
    /// later in the claim leave them to it.
    pub(crate) fn admit(&mut self, uses: &[ResourceUse]) -> bool {
        let full: Vec<&str> = uses
            .iter()
            .filter(|u| {
                self.0.get(&u.name).is_none_or(|room| {
                    let limit = room
                        .capacity
                        .map_or(i64::from(u.count), |c| c.min(i64::from(u.count)));
                    room.waited || room.holders >= limit
                })
            })
            .map(|u| u.name.as_str())
            .collect();
        for name in &full {
            self.0.entry((*name).to_owned()).or_default().waited = true;
        }
        full.is_empty()
    }

    /// Records that a node took these resources.
    pub(crate) fn took(&mut self, uses: &[ResourceUse]) {
        for u in uses {
            let room = self.0.entry(u.name.clone()).or_default();
            room.holders += 1;
            let count = i64::from(u.count);
            room.capacity = Some(room.capacity.map_or(count, |c| c.min(count)));
        }
    }
}

/// Whether a node naming `uses` may take them now (see [`Rooms::admit`]), reading each
/// resource's holds the first time the claim meets it.
pub(crate) fn admit(db: &Db<'_>, rooms: &mut Rooms, uses: &[ResourceUse]) -> Result<bool> {
    let unknown = rooms.unknown(uses);
    if !unknown.is_empty() {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT COUNT(*), MIN(capacity) FROM resource_holds WHERE resource = ?1",
            )
            .ctx("checking resources")?;
        for name in unknown {
            let room = stmt
                .query_row([name], |r| {
                    Ok(Room {
                        holders: r.get(0)?,
                        capacity: r.get(1)?,
                        waited: false,
                    })
                })
                .ctx("checking resources")?;
            rooms.learn(name, room);
        }
    }
    Ok(rooms.admit(uses))
}

/// Records the attempt's holds of `uses`.
pub(crate) fn hold(
    db: &Db<'_>,
    rooms: &mut Rooms,
    uses: &[ResourceUse],
    attempt_id: i64,
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
    rooms.took(uses);
    Ok(())
}

/// Resources being held or waited for, each with its holders and waiters, by name.
#[derive(Debug, Default)]
pub(crate) struct Listing(BTreeMap<String, ResourceDoc>);

impl Listing {
    fn entry(&mut self, name: &str) -> &mut ResourceDoc {
        self.0
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

    /// Adds a waiter; waiters come in the order claims meet them.
    pub(crate) fn waiter(&mut self, name: &str, waiter: ResourceWaiter) {
        let doc = self.entry(name);
        doc.waiting += 1;
        if doc.waiters.len() < LISTED_WAITERS {
            doc.waiters.push(waiter);
        }
    }

    /// The resources, by name.
    pub(crate) fn finish(self) -> Vec<ResourceDoc> {
        self.0.into_values().collect()
    }
}

/// Every resource held or waited for. Waiters are the claimable ready nodes that name it,
/// in the order claims meet them; finding them reads every ready node (a listing for
/// people, not a hot path).
pub(crate) fn list(db: &Db<'_>) -> Result<Vec<ResourceDoc>> {
    let mut out = Listing::default();
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
            "SELECT n.run_id, r.workflow, r.version_id, n.idx, n.prio_key, n.ready_at \
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
            ))
        })
        .ctx("listing resources")?;
    for row in rows {
        let (run_id, workflow, version_id, idx, prio_key, ready_at) =
            row.ctx("listing resources")?;
        let compiled = db.cache.version(db, &version_id)?;
        let spec = compiled.node(idx)?;
        for u in &spec.resources {
            out.waiter(
                &u.name,
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
