//! Workflow concurrency limits: a new run of a limited workflow starts, waits for a place
//! (`created`, every node waiting) or is canceled, as `baton_core::admit_new` decides; a
//! queued run is admitted, oldest first, as soon as a place frees.
//!
//! Every count and change happens inside the writing transaction, and SQLite serialises
//! writers, so counting the workflow's runs and acting on the count is exact. A place frees
//! when a run that held one ends; [`RunRow::save`] notices ([`RunRow::vacated`]) and calls
//! [`vacated`] in the same transaction, so a place is never left free while runs wait, and
//! a batch of reports can claim the nodes it admitted at once.
//!
//! Workflows without `concurrency` pay nothing here beyond a lookup in the version cache
//! when a run ends. The pure helpers (census, victims, messages, the held plan) are shared
//! with the PostgreSQL backend.

use baton_core::{
    Admission, Concurrency, Gate, NodeState, OnConflict, Places, Reason, RunState, admit_new,
    admits_queued, to_preempt,
};
use rusqlite::{OptionalExtension, params};

use super::cache::Compiled;
use super::db::{Db, SqlResult};
use super::downstream::decide;
use super::runs::{self, NodeStart, RunRow};
use crate::Result;

/// Queued runs read per page while admitting.
pub(crate) const PAGE: i64 = 64;
/// Run ids a message names at most.
const NAMED: usize = 5;

/// How a new run of a limited workflow enters, and what it says about it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) admission: Admission,
    pub(crate) message: Option<String>,
}

impl Entry {
    /// The plan to write when it differs from the one made: a queued run's ready nodes
    /// wait (admission readies them again by their trigger rules), a canceled run's open
    /// nodes are canceled.
    pub(crate) fn hold(&self, plan: &[NodeStart]) -> Option<Vec<NodeStart>> {
        let to = |s: NodeState| match (self.admission, s) {
            (Admission::Queue { .. }, NodeState::Ready) => NodeState::Waiting,
            (Admission::Cancel, NodeState::Ready | NodeState::Waiting) => NodeState::Canceled,
            _ => s,
        };
        match self.admission {
            Admission::Start => None,
            Admission::Queue { .. } | Admission::Cancel => Some(
                plan.iter()
                    .map(|n| NodeStart {
                        status: to(n.status),
                        ..n.clone()
                    })
                    .collect(),
            ),
        }
    }

    /// Marks the new run's row (before it is written or settled): queued runs are
    /// `created`; a canceled one is stopped by the limit (`concurrency`), which settling
    /// then ends.
    pub(crate) fn apply(&self, run: &mut RunRow) {
        match self.admission {
            Admission::Start => {}
            Admission::Queue { .. } => run.status = RunState::Created,
            Admission::Cancel => {
                run.status = RunState::Created;
                run.cancel_requested = true;
                run.reason = Some(Reason::Concurrency);
            }
        }
        run.message.clone_from(&self.message);
    }
}

/// A workflow's runs as its limit sees them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Census {
    /// Runs holding a place, oldest first, with whether each is being canceled.
    pub(crate) active: Vec<(String, bool)>,
    /// How many runs wait for a place.
    pub(crate) queued: u32,
}

impl Census {
    pub(crate) fn places(&self) -> Places {
        Places {
            active: count(self.active.len()),
            canceling: count(self.active.iter().filter(|(_, c)| *c).count()),
            queued: self.queued,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The `k` oldest claimants (active runs not being canceled, and queued runs, by id: ids
/// are UUIDv7, so in creation order), queued ones first: stopping those frees no place,
/// so no queued victim is admitted on the way. `queued` holds the oldest queued ids.
pub(crate) fn victims(census: &Census, queued: &[String], k: u32) -> Vec<String> {
    let mut claimants: Vec<(&str, bool)> = census
        .active
        .iter()
        .filter(|(_, canceling)| !canceling)
        .map(|(id, _)| (id.as_str(), false))
        .chain(queued.iter().map(|id| (id.as_str(), true)))
        .collect();
    claimants.sort_unstable();
    claimants.truncate(k as usize);
    claimants.sort_by_key(|&(id, is_queued)| (!is_queued, id));
    claimants.into_iter().map(|(id, _)| id.to_owned()).collect()
}

fn runs_word(n: usize) -> &'static str {
    if n == 1 { "run" } else { "runs" }
}

fn describe(census: &Census) -> String {
    let active = census.active.len();
    let mut text = format!("{active} active {}", runs_word(active));
    if census.queued > 0 {
        text.push_str(&format!(" and {} queued", census.queued));
    }
    text
}

fn named(ids: &[String]) -> String {
    let mut text = ids
        .iter()
        .take(NAMED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > NAMED {
        text.push_str(&format!(" and {} more", ids.len() - NAMED));
    }
    text
}

/// What a new run says about how it entered; `None` when it started.
pub(crate) fn entry_message(
    workflow: &str,
    c: Concurrency,
    census: &Census,
    admission: Admission,
) -> Option<String> {
    match admission {
        Admission::Start => None,
        Admission::Queue { .. } => {
            let why = if c.on_conflict == OnConflict::CancelRunning {
                "; on_conflict: cancel_running stops the oldest to make room"
            } else {
                ""
            };
            Some(format!(
                "queued: workflow {workflow} has {} (limit {}){why}",
                describe(census),
                c.limit
            ))
        }
        Admission::Cancel => {
            let ids: Vec<String> = census.active.iter().map(|(id, _)| id.clone()).collect();
            let which = if ids.is_empty() {
                String::new()
            } else {
                format!(": {}", named(&ids))
            };
            Some(format!(
                "canceled: workflow {workflow} already has {} (limit {}, on_conflict: \
                 cancel_new){which}",
                describe(census),
                c.limit
            ))
        }
    }
}

/// What a run `cancel_running` stopped says.
pub(crate) fn preempted_message(workflow: &str, limit: u32) -> String {
    format!(
        "canceled: a newer run of workflow {workflow} took its place (limit {limit}, \
         on_conflict: cancel_running)"
    )
}

/// Decides how a new run of `compiled` enters; `None` when the workflow has no limit.
/// Under `cancel_running`, the runs in its way are stopped first (those without live
/// attempts end at once, freeing their place in this transaction).
pub(crate) fn enter(db: &Db<'_>, compiled: &Compiled) -> Result<Option<Entry>> {
    let Some(c) = compiled.workflow.concurrency else {
        return Ok(None);
    };
    let name = compiled.name.as_str();
    let mut now = census(db, name)?;
    let mut admission = admit_new(c, now.places());
    if let Admission::Queue { preempt } = admission
        && preempt > 0
    {
        let queued = queued_ids(db, name, preempt)?;
        for id in victims(&now, &queued, preempt) {
            preempt_run(db, &id, &preempted_message(name, c.limit))?;
        }
        now = census(db, name)?;
        admission = admit_new(c, now.places());
    }
    Ok(Some(Entry {
        admission,
        message: entry_message(name, c, &now, admission),
    }))
}

/// Writes what a new run of a limited workflow says (after [`Entry::apply`]).
pub(crate) fn note(db: &Db<'_>, run: &RunRow) -> Result<()> {
    if run.message.is_some() {
        set_message(db, &run.id, run.message.as_deref())?;
    }
    Ok(())
}

/// A queued run stops waiting (it is being canceled): its queue message goes.
pub(crate) fn unqueue(db: &Db<'_>, run: &mut RunRow) -> Result<()> {
    if run.message.take().is_some() {
        set_message(db, &run.id, None)?;
    }
    Ok(())
}

fn set_message(db: &Db<'_>, id: &str, message: Option<&str>) -> Result<()> {
    db.conn
        .prepare_cached("UPDATE runs SET message = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id, message]))
        .ctx("noting why a run waits")?;
    Ok(())
}

/// A run of `workflow` (version `version_id`) that held a place ended: queued runs take
/// the places free now, when that version has a limit. (A version without one admits
/// nothing here; the deadline pass's [`stalled`] check covers queues it leaves behind.)
pub(crate) fn vacated(db: &Db<'_>, workflow: &str, version_id: &str) -> Result<()> {
    if db
        .cache
        .version(db, version_id)?
        .workflow
        .concurrency
        .is_some()
    {
        admit_queued(db, workflow)?;
    }
    Ok(())
}

/// Admits queued runs of `workflow`, oldest first, while the oldest fits under its own
/// version's limit; returns how many.
pub(crate) fn admit_queued(db: &Db<'_>, workflow: &str) -> Result<u32> {
    let mut active = count(census(db, workflow)?.active.len());
    let mut admitted = 0;
    let mut after = String::new();
    loop {
        let page: Vec<(String, String)> = {
            let mut stmt = db
                .conn
                .prepare_cached(
                    "SELECT id, version_id FROM runs \
                     WHERE workflow = ?1 AND status = 'created' AND id > ?2 \
                     ORDER BY id LIMIT ?3",
                )
                .ctx("finding queued runs")?;
            let rows = stmt
                .query_map(params![workflow, after, PAGE], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .ctx("finding queued runs")?;
            rows.collect::<rusqlite::Result<_>>()
                .ctx("finding queued runs")?
        };
        let full = page.len() as i64 == PAGE;
        for (id, version_id) in page {
            let limit = db
                .cache
                .version(db, &version_id)?
                .workflow
                .concurrency
                .map(|c| c.limit);
            if !admits_queued(limit, active) {
                return Ok(admitted);
            }
            if admit_run(db, &id)? {
                active += 1;
                admitted += 1;
            }
            after = id;
        }
        if !full {
            return Ok(admitted);
        }
    }
}

/// Starts a queued run: `pending`, and its waiting nodes whose trigger rule is met become
/// ready (exactly those its plan made ready: skips were already applied when it was
/// created). False when it no longer waits.
fn admit_run(db: &Db<'_>, id: &str) -> Result<bool> {
    let mut run = RunRow::get(db, id)?;
    if run.status != RunState::Created || run.cancel_requested {
        return Ok(false);
    }
    let compiled = db.cache.version(db, &run.version_id)?;
    let waiting: Vec<(i64, u32, [i64; 3])> = {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT id, idx, remaining, needs_bad, needs_failed FROM nodes \
                 WHERE run_id = ?1 AND status = 'waiting'",
            )
            .ctx("admitting a queued run")?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get(0)?, r.get(1)?, [r.get(2)?, r.get(3)?, r.get(4)?]))
            })
            .ctx("admitting a queued run")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx("admitting a queued run")?
    };
    let mut ready = db
        .conn
        .prepare_cached("UPDATE nodes SET status = 'ready', ready_at = ?2 WHERE id = ?1")
        .ctx("admitting a queued run")?;
    for (node_id, idx, counters) in waiting {
        if decide(&compiled, idx, counters)? == Gate::Ready {
            ready
                .execute(params![node_id, db.now])
                .ctx("admitting a queued run")?;
            run.counts.shift(NodeState::Waiting, NodeState::Ready, 1);
            db.mark_readied(node_id);
        }
    }
    run.status = RunState::Pending;
    run.message = None;
    run.settle(db.now);
    run.save(db)?;
    set_message(db, id, None)?;
    Ok(true)
}

/// Asks a run `cancel_running` chose to stop, as a user's cancel does, with reason
/// `concurrency`; nothing when it is finished or already stopping.
pub(crate) fn preempt_run(db: &Db<'_>, id: &str, message: &str) -> Result<()> {
    let Some(mut run) = RunRow::load(db, id)? else {
        return Ok(());
    };
    if run.status.is_terminal() || run.cancel_requested {
        return Ok(());
    }
    run.reason = Some(Reason::Concurrency);
    runs::stop(db, &mut run)?;
    set_message(db, id, Some(message))
}

/// The workflow's runs holding a place and how many wait.
fn census(db: &Db<'_>, workflow: &str) -> Result<Census> {
    let active = {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT id, cancel_requested FROM runs \
                 WHERE workflow = ?1 AND status IN ('pending', 'running') ORDER BY id",
            )
            .ctx("counting active runs")?;
        let rows = stmt
            .query_map([workflow], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("counting active runs")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx("counting active runs")?
    };
    let queued: i64 = db
        .conn
        .prepare_cached("SELECT count(*) FROM runs WHERE workflow = ?1 AND status = 'created'")
        .and_then(|mut s| s.query_row([workflow], |r| r.get(0)))
        .ctx("counting queued runs")?;
    Ok(Census {
        active,
        queued: u32::try_from(queued).unwrap_or(u32::MAX),
    })
}

/// The `n` oldest queued runs' ids.
fn queued_ids(db: &Db<'_>, workflow: &str, n: u32) -> Result<Vec<String>> {
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT id FROM runs WHERE workflow = ?1 AND status = 'created' \
             ORDER BY id LIMIT ?2",
        )
        .ctx("finding queued runs")?;
    let rows = stmt
        .query_map(params![workflow, n], |r| r.get(0))
        .ctx("finding queued runs")?;
    rows.collect::<rusqlite::Result<_>>()
        .ctx("finding queued runs")
}

/// The oldest or newest queued run of `workflow`: (id, version id).
fn queued_end(db: &Db<'_>, workflow: &str, newest: bool) -> Result<Option<(String, String)>> {
    let sql = if newest {
        "SELECT id, version_id FROM runs WHERE workflow = ?1 AND status = 'created' \
         ORDER BY id DESC LIMIT 1"
    } else {
        "SELECT id, version_id FROM runs WHERE workflow = ?1 AND status = 'created' \
         ORDER BY id LIMIT 1"
    };
    db.conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row([workflow], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .ctx("finding queued runs")
}

/// What a workflow's queue needs now: admissions, and `cancel_running` stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Due {
    /// A place is free for the oldest queued run.
    pub(crate) admit: bool,
    /// Under the newest queued run's `cancel_running`, this many of the oldest claimants
    /// must be stopped.
    pub(crate) preempt: u32,
}

/// Decides [`Due`] from the census and the queue's two ends' limits. Shared by both
/// backends.
pub(crate) fn due(
    census: &Census,
    oldest: Option<Concurrency>,
    newest: Option<Concurrency>,
) -> Due {
    let places = census.places();
    let preempt = match newest {
        Some(c) if c.on_conflict == OnConflict::CancelRunning => to_preempt(c.limit, places, 0),
        _ => 0,
    };
    Due {
        admit: admits_queued(oldest.map(|c| c.limit), places.active),
        preempt,
    }
}

/// The safety net the deadline pass runs: workflows whose queue should move now though no
/// run ending moved it (a version without a limit ended the last active run; on
/// PostgreSQL, a crash between creating a `cancel_running` run and stopping the runs in
/// its way, or a queued run another transaction held).
pub(crate) fn stalled(db: &Db<'_>) -> Result<Vec<String>> {
    let workflows: Vec<String> = {
        let mut stmt = db
            .conn
            .prepare_cached(
                // Walked in workflow order, so DISTINCT needs no temporary tree.
                "SELECT DISTINCT workflow FROM runs INDEXED BY runs_queued_by_workflow \
                 WHERE status = 'created'",
            )
            .ctx("finding queued runs")?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .ctx("finding queued runs")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx("finding queued runs")?
    };
    let mut out = Vec::new();
    for w in workflows {
        if due_of(db, &w)? != Due::default() {
            out.push(w);
        }
    }
    Ok(out)
}

fn due_of(db: &Db<'_>, workflow: &str) -> Result<Due> {
    let limit_of = |end: Option<(String, String)>| -> Result<Option<Concurrency>> {
        Ok(match end {
            Some((_, version_id)) => db.cache.version(db, &version_id)?.workflow.concurrency,
            None => None,
        })
    };
    let Some(oldest) = queued_end(db, workflow, false)? else {
        return Ok(Due::default());
    };
    let oldest = limit_of(Some(oldest))?;
    let newest = limit_of(queued_end(db, workflow, true)?)?;
    Ok(due(&census(db, workflow)?, oldest, newest))
}

/// Moves the queues of these workflows (see [`stalled`]); returns whether a run was
/// admitted.
pub(crate) fn sweep(db: &Db<'_>, workflows: &[String]) -> Result<bool> {
    let mut admitted = false;
    for w in workflows {
        admitted |= admit_queued(db, w)? > 0;
        let Some((_, version_id)) = queued_end(db, w, true)? else {
            continue;
        };
        let Some(c) = db.cache.version(db, &version_id)?.workflow.concurrency else {
            continue;
        };
        let now = census(db, w)?;
        let Due { preempt, .. } = due(&now, None, Some(c));
        if preempt > 0 {
            let queued = queued_ids(db, w, preempt)?;
            for id in victims(&now, &queued, preempt) {
                preempt_run(db, &id, &preempted_message(w, c.limit))?;
            }
            admitted |= admit_queued(db, w)? > 0;
        }
    }
    Ok(admitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(active: &[(&str, bool)], queued: u32) -> Census {
        Census {
            active: active
                .iter()
                .map(|(id, c)| ((*id).to_owned(), *c))
                .collect(),
            queued,
        }
    }

    #[test]
    fn victims_are_the_oldest_claimants_queued_ones_first() {
        let c = census(&[("a", false), ("b", true), ("d", false)], 2);
        let queued = vec!["c".to_owned(), "e".to_owned()];
        // Oldest claimants: a, c, d (b is already canceling).
        assert_eq!(victims(&c, &queued, 3), ["c", "a", "d"]);
        assert_eq!(victims(&c, &queued, 1), ["a"]);
        assert!(victims(&c, &queued, 0).is_empty());
    }

    #[test]
    fn messages_say_what_holds_the_places() {
        let c = Concurrency {
            limit: 1,
            on_conflict: OnConflict::CancelNew,
        };
        let now = census(&[("r1", false)], 0);
        assert_eq!(
            entry_message("deploy", c, &now, Admission::Queue { preempt: 0 }).as_deref(),
            Some("queued: workflow deploy has 1 active run (limit 1)")
        );
        assert_eq!(
            entry_message("deploy", c, &now, Admission::Cancel).as_deref(),
            Some(
                "canceled: workflow deploy already has 1 active run (limit 1, on_conflict: \
                 cancel_new): r1"
            )
        );
        assert_eq!(entry_message("deploy", c, &now, Admission::Start), None);
        let many: Vec<String> = (0..7).map(|i| format!("r{i}")).collect();
        assert_eq!(named(&many), "r0, r1, r2, r3, r4 and 2 more");
    }

    #[test]
    fn a_queue_is_due_when_its_oldest_fits_or_its_newest_must_preempt() {
        let limit = |limit, on_conflict| Some(Concurrency { limit, on_conflict });
        let full = census(&[("a", false)], 1);
        assert_eq!(
            due(
                &full,
                limit(1, OnConflict::Queue),
                limit(1, OnConflict::Queue)
            ),
            Due::default()
        );
        assert!(due(&full, limit(2, OnConflict::Queue), None).admit);
        assert_eq!(
            due(&full, None, limit(1, OnConflict::CancelRunning)).preempt,
            1,
            "a and the queued run claim one place"
        );
        let canceling = census(&[("a", true)], 1);
        assert_eq!(
            due(
                &canceling,
                limit(1, OnConflict::CancelRunning),
                limit(1, OnConflict::CancelRunning)
            ),
            Due::default()
        );
    }
}
