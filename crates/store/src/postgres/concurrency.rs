//! Workflow concurrency limits on PostgreSQL: the SQLite backend's rules (module
//! `sqlite::concurrency`, whose pure helpers this shares), made exact beside other
//! transactions and replicas.
//!
//! Everything that can make a run of a limited workflow hold a place (creating it,
//! admitting it) first takes a transaction-scoped advisory lock on the workflow's name,
//! then counts under it: two of them never count at once, and `READ COMMITTED` shows each
//! the other's committed rows. Runs that end need no lock to give their place up; the
//! transaction that ended one takes the lock at its end, writes its runs back (so its own
//! count sees them ended) and admits queued runs ([`admit_vacated`], from `PgStore::end`).
//!
//! Lock order: run rows first (every use case locks them), then workflow locks in name
//! order. Holding a workflow lock, a transaction only *tries* run rows (`SKIP LOCKED`): a
//! queued run another transaction holds is passed over (that transaction is canceling or
//! timing it out, or admitting it) and the next one is admitted instead. For the same
//! reason, `cancel_running` does not stop the runs in a new run's way in the creating
//! transaction: each is stopped in a transaction of its own after the commit
//! (`PgStore::preempt`), which locks the run's row first. A crash between the two leaves
//! the new run queued behind runs that were never asked to stop; the deadline pass's
//! safety net ([`stalled`], [`sweep`]) finds and stops them, and admits runs any skipped
//! row left waiting.

use std::collections::BTreeSet;

use baton_core::{Admission, Gate, NodeState, RunState, admit_new, admits_queued};

use crate::sqlite::downstream::decide;

use super::db::{Db, RowExt};
use crate::sqlite::cache::Compiled;
use crate::sqlite::concurrency::{
    Census, Due, Entry, PAGE, due, entry_message, preempted_message, victims,
};
use crate::sqlite::runs::RunRow;
use crate::{Result, StoreError};

/// Takes the workflow's advisory lock until the transaction ends.
async fn lock(db: &Db<'_>, workflow: &str) -> Result<()> {
    db.query_one(
        "waiting for a workflow's concurrency lock",
        // The key names the schema, so stores in different schemas of one database
        // (tests) do not serialise on each other.
        "SELECT pg_advisory_xact_lock(hashtextextended( \
           'baton:concurrency:' || COALESCE(current_schema(), '') || ':' || $1, 0))",
        &[&workflow],
    )
    .await?;
    Ok(())
}

/// Decides how a new run of `compiled` enters, under the workflow's lock; `None` when it
/// has no limit. Runs `cancel_running` must stop are stopped after the commit.
pub(crate) async fn enter(db: &mut Db<'_>, compiled: &Compiled) -> Result<Option<Entry>> {
    let Some(c) = compiled.workflow.concurrency else {
        return Ok(None);
    };
    let name = compiled.name.as_str();
    lock(db, name).await?;
    let now = census(db, name).await?;
    let admission = admit_new(c, now.places());
    if let Admission::Queue { preempt } = admission
        && preempt > 0
    {
        db.note_preempt(name);
    }
    Ok(Some(Entry {
        admission,
        message: entry_message(name, c, &now, admission),
    }))
}

/// Writes what the row insert leaves out of a new run of a limited workflow: why it waits
/// or was canceled.
pub(crate) async fn note(db: &Db<'_>, run: &RunRow) -> Result<()> {
    if run.message.is_none() {
        return Ok(());
    }
    db.execute(
        "noting why a run waits",
        "UPDATE runs SET cancel_requested = $2, reason = $3, message = $4 WHERE id = $1",
        &[
            &run.id,
            &run.cancel_requested,
            &run.reason.map(|r| r.as_str()),
            &run.message,
        ],
    )
    .await?;
    Ok(())
}

/// A queued run stops waiting (it is being canceled): its queue message goes.
pub(crate) async fn unqueue(db: &Db<'_>, id: &str) -> Result<()> {
    set_message(db, id, None).await
}

async fn set_message(db: &Db<'_>, id: &str, message: Option<&str>) -> Result<()> {
    db.execute(
        "noting why a run waits",
        "UPDATE runs SET message = $2 WHERE id = $1",
        &[&id, &message],
    )
    .await?;
    Ok(())
}

/// At the end of every write: if it ended runs that held places of limited workflows,
/// queued runs of those workflows take the places now, in the same transaction.
pub(crate) async fn admit_vacated(db: &mut Db<'_>) -> Result<()> {
    let vacated = db.vacated();
    if vacated.is_empty() {
        return Ok(());
    }
    let mut limited = BTreeSet::new();
    for (workflow, version_id) in vacated {
        if db
            .cache
            .version(db, &version_id)
            .await?
            .workflow
            .concurrency
            .is_some()
        {
            limited.insert(workflow);
        }
    }
    if limited.is_empty() {
        return Ok(());
    }
    db.flush_runs().await?;
    for workflow in &limited {
        lock(db, workflow).await?;
        admit_queued(db, workflow).await?;
    }
    Ok(())
}

/// Admits queued runs of `workflow`, oldest first, while the oldest fits under its own
/// version's limit; the caller holds the workflow's lock. Returns how many.
async fn admit_queued(db: &mut Db<'_>, workflow: &str) -> Result<u32> {
    let mut active = active_count(db, workflow).await?;
    let mut admitted = 0;
    let mut after = String::new();
    loop {
        let page = db
            .query(
                "finding queued runs",
                "SELECT id, version_id FROM runs \
                 WHERE workflow = $1 AND status = 'created' AND id > $2 ORDER BY id LIMIT $3",
                &[&workflow, &after, &PAGE],
            )
            .await?;
        let full = page.len() as i64 == PAGE;
        for r in &page {
            let id: String = r.at(0)?;
            let version_id: String = r.at(1)?;
            let limit = db
                .cache
                .version(db, &version_id)
                .await?
                .workflow
                .concurrency
                .map(|c| c.limit);
            if !admits_queued(limit, active) {
                return Ok(admitted);
            }
            if admit_run(db, &id).await? {
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

/// Starts a queued run, as the SQLite backend's `admit_run` does. False when it no longer
/// waits, or another transaction holds it.
async fn admit_run(db: &mut Db<'_>, id: &str) -> Result<bool> {
    let Some(run) = db.lock_run_if_free(id).await? else {
        return Ok(false);
    };
    if run.status != RunState::Created || run.cancel_requested {
        return Ok(false);
    }
    let version_id = run.version_id.clone();
    let compiled = db.cache.version(db, &version_id).await?;
    let rows = db
        .query(
            "admitting a queued run",
            "SELECT id, idx, remaining, needs_bad, needs_failed FROM nodes \
             WHERE run_id = $1 AND status = 'waiting'",
            &[&id],
        )
        .await?;
    let mut ready: Vec<i64> = Vec::new();
    for r in &rows {
        let idx = r.u32_at(1)?;
        if decide(&compiled, idx, [r.at(2)?, r.at(3)?, r.at(4)?])? == Gate::Ready {
            ready.push(r.at(0)?);
        }
    }
    let now = db.now;
    db.execute(
        "admitting a queued run",
        "UPDATE nodes SET status = 'ready', ready_at = $2 WHERE id = ANY($1)",
        &[&ready, &now],
    )
    .await?;
    set_message(db, id, None).await?;
    for &node in &ready {
        db.mark_readied(node);
    }
    let run = db.lock_run(id).await?;
    run.counts
        .shift(NodeState::Waiting, NodeState::Ready, ready.len() as i64);
    run.status = RunState::Pending;
    run.message = None;
    run.settle(now);
    Ok(true)
}

/// Stops, as a user's cancel does and with reason `concurrency`, a run `cancel_running`
/// chose; nothing when it is finished or already stopping. Its own transaction: the run's
/// row is its first lock.
pub(crate) async fn preempt_run(db: &mut Db<'_>, id: &str, message: &str) -> Result<()> {
    let run = match db.lock_run(id).await {
        Err(StoreError::NotFound(_)) => return Ok(()),
        found => found?,
    };
    if run.status.is_terminal() || run.cancel_requested {
        return Ok(());
    }
    run.reason = Some(baton_core::Reason::Concurrency);
    super::runs::stop(db, id).await?;
    set_message(db, id, Some(message)).await
}

/// The runs `cancel_running` of `workflow` must stop now, queued ones first, each with its
/// message: under the newest queued run's limit, the oldest claimants beyond it.
pub(crate) async fn victims_of(db: &Db<'_>, workflow: &str) -> Result<Vec<(String, String)>> {
    let Some((_, version_id)) = queued_end(db, workflow, true).await? else {
        return Ok(Vec::new());
    };
    let Some(c) = db
        .cache
        .version(db, &version_id)
        .await?
        .workflow
        .concurrency
    else {
        return Ok(Vec::new());
    };
    let now = census(db, workflow).await?;
    let Due { preempt, .. } = due(&now, None, Some(c));
    if preempt == 0 {
        return Ok(Vec::new());
    }
    let queued = queued_ids(db, workflow, preempt).await?;
    let message = preempted_message(workflow, c.limit);
    Ok(victims(&now, &queued, preempt)
        .into_iter()
        .map(|id| (id, message.clone()))
        .collect())
}

/// Workflows whose queue should move now though no run ending moved it (see
/// `sqlite::concurrency::stalled`).
pub(crate) async fn stalled(db: &Db<'_>) -> Result<Vec<String>> {
    let rows = db
        .query(
            "finding queued runs",
            "SELECT DISTINCT workflow FROM runs WHERE status = 'created'",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        let workflow: String = r.at(0)?;
        let Some((_, oldest)) = queued_end(db, &workflow, false).await? else {
            continue;
        };
        let Some((_, newest)) = queued_end(db, &workflow, true).await? else {
            continue;
        };
        let oldest = db.cache.version(db, &oldest).await?.workflow.concurrency;
        let newest = db.cache.version(db, &newest).await?.workflow.concurrency;
        if due(&census(db, &workflow).await?, oldest, newest) != Due::default() {
            out.push(workflow);
        }
    }
    Ok(out)
}

/// Admits what fits of `workflow`'s queue under its lock (the deadline pass's safety
/// net); returns how many. The stops it may also need come after, in transactions of
/// their own.
pub(crate) async fn sweep(db: &mut Db<'_>, workflow: &str) -> Result<u32> {
    lock(db, workflow).await?;
    admit_queued(db, workflow).await
}

async fn active_count(db: &Db<'_>, workflow: &str) -> Result<u32> {
    let n: i64 = db
        .query_one(
            "counting active runs",
            "SELECT count(*) FROM runs WHERE workflow = $1 AND status IN ('pending', 'running')",
            &[&workflow],
        )
        .await?
        .at(0)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The workflow's runs holding a place and how many wait.
async fn census(db: &Db<'_>, workflow: &str) -> Result<Census> {
    let active = db
        .query(
            "counting active runs",
            "SELECT id, cancel_requested FROM runs \
             WHERE workflow = $1 AND status IN ('pending', 'running') ORDER BY id",
            &[&workflow],
        )
        .await?
        .iter()
        .map(|r| Ok((r.at(0)?, r.at(1)?)))
        .collect::<Result<_>>()?;
    let queued: i64 = db
        .query_one(
            "counting queued runs",
            "SELECT count(*) FROM runs WHERE workflow = $1 AND status = 'created'",
            &[&workflow],
        )
        .await?
        .at(0)?;
    Ok(Census {
        active,
        queued: u32::try_from(queued).unwrap_or(u32::MAX),
    })
}

/// The `n` oldest queued runs' ids.
async fn queued_ids(db: &Db<'_>, workflow: &str, n: u32) -> Result<Vec<String>> {
    db.query(
        "finding queued runs",
        "SELECT id FROM runs WHERE workflow = $1 AND status = 'created' ORDER BY id LIMIT $2",
        &[&workflow, &i64::from(n)],
    )
    .await?
    .iter()
    .map(|r| r.at(0))
    .collect()
}

/// The oldest or newest queued run of `workflow`: (id, version id).
async fn queued_end(db: &Db<'_>, workflow: &str, newest: bool) -> Result<Option<(String, String)>> {
    let sql = if newest {
        "SELECT id, version_id FROM runs WHERE workflow = $1 AND status = 'created' \
         ORDER BY id DESC LIMIT 1"
    } else {
        "SELECT id, version_id FROM runs WHERE workflow = $1 AND status = 'created' \
         ORDER BY id LIMIT 1"
    };
    db.query_opt("finding queued runs", sql, &[&workflow])
        .await?
        .map(|r| Ok((r.at(0)?, r.at(1)?)))
        .transpose()
}
