//! Attempt output: append chunks, read them back a page at a time.

use baton_api::{AttemptRef, LogChunk, LogPage, LogQuery, Stream};
use baton_core::{AttemptState, Reason};
use rusqlite::{OptionalExtension, params};

use super::db::{Db, SqlResult, opt_state, state};
use super::late;
use super::runs::RunRow;
use crate::{Result, StoreError};

/// Default and largest page.
const PAGE_MAX: u32 = 1000;

fn stream_name(s: Stream) -> &'static str {
    match s {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

fn stream_of(name: &str) -> Stream {
    if name == "stderr" {
        Stream::Stderr
    } else {
        Stream::Stdout
    }
}

/// The attempt a chunk is for, as `append` reads it.
struct Target {
    owner: String,
    fence: i64,
    run_id: String,
    number: u32,
    used: i64,
    idx: u32,
    status: AttemptState,
    reason: Option<Reason>,
    /// The attempt is its node's newest.
    current: bool,
}

/// Appends a chunk; a repeated `seq` is ignored.
///
/// Chunks of the agent's own attempt are accepted even after it ended by its report, so
/// output flushed just after the report is not lost, but not once it was reaped or a newer
/// attempt opened (`late`). Past the attempt's cap, the chunk is cut and one marker line
/// says so; later chunks are dropped.
pub(crate) fn append(
    db: &Db<'_>,
    agent_id: &str,
    at: AttemptRef,
    seq: u32,
    stream: Stream,
    data: &str,
) -> Result<()> {
    let row = db
        .conn
        .prepare_cached(
            "SELECT a.agent_id, a.fence, a.run_id, a.number, a.log_bytes, n.idx, \
             a.status, a.reason, n.attempt_id IS a.id \
             FROM attempts a JOIN nodes n ON n.id = a.node_id WHERE a.id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([at.attempt_id], |r| {
                Ok(Target {
                    owner: r.get(0)?,
                    fence: r.get(1)?,
                    run_id: r.get(2)?,
                    number: r.get(3)?,
                    used: r.get(4)?,
                    idx: r.get(5)?,
                    status: state(r, 6)?,
                    reason: opt_state(r, 7)?,
                    current: r.get(8)?,
                })
            })
            .optional()
        })
        .ctx("appending logs")?;
    let Some(Target {
        owner,
        fence,
        run_id,
        number,
        used,
        idx,
        status,
        reason,
        current,
    }) = row
    else {
        return Err(StoreError::Stale(at.attempt_id));
    };
    if owner != agent_id || fence != at.fence || !late::takes_output(status, reason, current) {
        return Err(StoreError::Stale(at.attempt_id));
    }
    let cap = i64::try_from(db.cfg.log_cap).unwrap_or(i64::MAX);
    if used > cap {
        return Ok(());
    }
    let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
    let (text, used_after) = if used.saturating_add(len) <= cap {
        (std::borrow::Cow::Borrowed(data), used + len)
    } else {
        let room = usize::try_from(cap - used).unwrap_or(0);
        let mut cut = room.min(data.len());
        while !data.is_char_boundary(cut) {
            cut -= 1;
        }
        let head = &data[..cut];
        let sep = if head.is_empty() || head.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        let marked = format!("{head}{sep}[baton: log truncated at {cap} bytes]\n");
        // One past the cap: the marker is written once, later chunks are dropped.
        (std::borrow::Cow::Owned(marked), cap + 1)
    };
    let inserted = db
        .conn
        .prepare_cached(
            "INSERT INTO logs (attempt_id, seq, run_id, node_idx, attempt, stream, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (attempt_id, seq) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                at.attempt_id,
                seq,
                run_id,
                idx,
                number,
                stream_name(stream),
                text.as_ref()
            ])
        })
        .ctx("appending logs")?;
    if inserted == 1 {
        db.conn
            .prepare_cached("UPDATE attempts SET log_bytes = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![at.attempt_id, used_after]))
            .ctx("appending logs")?;
    }
    Ok(())
}

/// A page of a run's output, oldest chunk first.
pub(crate) fn page(db: &Db<'_>, run_id: &str, query: &LogQuery) -> Result<LogPage> {
    let run = RunRow::get(db, run_id)?;
    let compiled = db.cache.version(db, &run.version_id)?;
    let after = query.after.unwrap_or(0);
    let limit = i64::from(query.limit.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX));
    let map = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    };
    let rows: Vec<_> = match &query.node {
        Some(node) => {
            let idx = compiled
                .dag
                .index(node)
                .ok_or_else(|| StoreError::NotFound(format!("node {node} in run {run_id}")))?;
            let mut stmt = db
                .conn
                .prepare_cached(
                    "SELECT id, node_idx, attempt, stream, data FROM logs \
                     WHERE run_id = ?1 AND node_idx = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
                )
                .ctx("reading logs")?;
            stmt.query_map(params![run_id, idx, after, limit], map)
                .ctx("reading logs")?
                .collect::<rusqlite::Result<_>>()
                .ctx("reading logs")?
        }
        None => {
            let mut stmt = db
                .conn
                .prepare_cached(
                    "SELECT id, node_idx, attempt, stream, data FROM logs \
                     WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .ctx("reading logs")?;
            stmt.query_map(params![run_id, after, limit], map)
                .ctx("reading logs")?
                .collect::<rusqlite::Result<_>>()
                .ctx("reading logs")?
        }
    };
    let mut chunks = Vec::with_capacity(rows.len());
    for (id, idx, attempt, stream, data) in rows {
        chunks.push(LogChunk {
            id,
            node: compiled.node(idx)?.id.clone(),
            attempt,
            stream: stream_of(&stream),
            data,
        });
    }
    let next = chunks.last().map_or(after, |c| c.id);
    Ok(LogPage { chunks, next })
}
