//! Attempt output: append chunks, read them back a page at a time.

use baton_api::{AttemptRef, LogChunk, LogPage, LogQuery, Stream};

use super::db::{Db, RowExt};
use super::runs;
use crate::sqlite::late;
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

/// Appends a chunk; a repeated `seq` is ignored.
///
/// Same rules as the SQLite backend (`late`, the per-attempt cap). The attempt row is
/// locked while its log size is read and updated, so two appends for one attempt cannot
/// both count from the same size.
pub(crate) async fn append(
    db: &Db<'_>,
    agent_id: &str,
    at: AttemptRef,
    seq: u32,
    stream: Stream,
    data: &str,
) -> Result<()> {
    let Some(r) = db
        .query_opt(
            "appending logs",
            "SELECT a.agent_id, a.fence, a.run_id, a.number, a.log_bytes, n.idx, \
             a.status, a.reason, n.attempt_id IS NOT DISTINCT FROM a.id \
             FROM attempts a JOIN nodes n ON n.id = a.node_id WHERE a.id = $1 \
             FOR UPDATE OF a",
            &[&at.attempt_id],
        )
        .await?
    else {
        return Err(StoreError::Stale(at.attempt_id));
    };
    let owner: &str = r.at(0)?;
    let fence: i64 = r.at(1)?;
    let run_id: &str = r.at(2)?;
    let number: i64 = r.at(3)?;
    let used: i64 = r.at(4)?;
    let idx: i64 = r.at(5)?;
    if owner != agent_id
        || fence != at.fence
        || !late::takes_output(r.state(6)?, r.opt_state(7)?, r.at(8)?)
    {
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
    db.execute(
        "appending logs",
        "WITH chunk AS ( \
               INSERT INTO logs (attempt_id, seq, run_id, node_idx, attempt, stream, data) \
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (attempt_id, seq) DO NOTHING \
               RETURNING attempt_id) \
             UPDATE attempts SET log_bytes = $8 WHERE id IN (SELECT attempt_id FROM chunk)",
        &[
            &at.attempt_id,
            &i64::from(seq),
            &run_id,
            &idx,
            &number,
            &stream_name(stream),
            &text.as_ref(),
            &used_after,
        ],
    )
    .await?;
    Ok(())
}

/// A page of a run's output, oldest chunk first.
pub(crate) async fn page(db: &Db<'_>, run_id: &str, query: &LogQuery) -> Result<LogPage> {
    let run = runs::get(db, run_id).await?;
    let compiled = db.cache.version(db, &run.version_id).await?;
    let after = query.after.unwrap_or(0);
    let limit = i64::from(query.limit.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX));
    let rows = match &query.node {
        Some(node) => {
            let idx = compiled
                .dag
                .index(node)
                .ok_or_else(|| StoreError::NotFound(format!("node {node} in run {run_id}")))?;
            db.query(
                "reading logs",
                "SELECT id, node_idx, attempt, stream, data FROM logs \
                 WHERE run_id = $1 AND node_idx = $2 AND id > $3 ORDER BY id LIMIT $4",
                &[&run_id, &i64::from(idx), &after, &limit],
            )
            .await?
        }
        None => {
            db.query(
                "reading logs",
                "SELECT id, node_idx, attempt, stream, data FROM logs \
                 WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&run_id, &after, &limit],
            )
            .await?
        }
    };
    let mut chunks = Vec::with_capacity(rows.len());
    for r in &rows {
        chunks.push(LogChunk {
            id: r.at(0)?,
            node: compiled.node(r.u32_at(1)?)?.id.clone(),
            attempt: r.u32_at(2)?,
            stream: stream_of(r.at(3)?),
            data: r.at(4)?,
        });
    }
    let next = chunks.last().map_or(after, |c| c.id);
    Ok(LogPage { chunks, next })
}
