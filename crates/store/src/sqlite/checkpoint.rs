//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the log past 1,000
//! pages: that one call copies the whole log into the database file and syncs it, which
//! made the slowest 1 % of `POST /runs` take 4 ms where the others took 0.4. Here the
//! writer's commit only nudges a thread, which checkpoints on its own connection in
//! `PASSIVE` mode (it never waits for, nor blocks, the writer or the readers).
//!
//! Durability does not change: a commit is as durable as `synchronous` makes it once it
//! is in the log, whether or not a checkpoint has copied it yet. Once the log is four
//! times that long (writes that never pause, a reader's old snapshot) the writer
//! checkpoints inline as SQLite would, so the log stays bounded.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::db::SqlResult;
use super::{Synchronous, open_connection};
use crate::{Result, StoreError};

/// Log pages after which a commit nudges the checkpoint thread (SQLite's own threshold).
const NUDGE_PAGES: i32 = 1_000;
/// Log pages after which the writer checkpoints inline. Under a steady stream of commits
/// the thread never catches up with the end of the log, and only a checkpoint that holds
/// the write lock lets the next commit start the log over; most of the pages have been
/// copied by the thread by then, so this one is short.
const INLINE_PAGES: i32 = 4 * NUDGE_PAGES;

/// What the checkpoint thread is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Checkpoint,
    Stop,
}

/// The checkpoint thread; dropping this stops and joins it.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    ask: SyncSender<Ask>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path` and hooks `writer`'s commits to it.
    pub(crate) fn attach(
        writer: &mut Connection,
        path: &Path,
        sync: Synchronous,
    ) -> Result<Checkpointer> {
        let conn = open_connection(path, sync, false)?;
        let (ask, asked) = mpsc::sync_channel::<Ask>(1);
        let nudge = ask.clone();
        let thread = std::thread::Builder::new()
            .name("baton-checkpoint".to_owned())
            .spawn(move || run(&conn, &asked))
            .map_err(|e| StoreError::backend("starting the checkpoint thread", e))?;
        // The log length that earns the next nudge: one per `NUDGE_PAGES` new pages, not
        // one per commit, as every checkpoint syncs both files.
        let mut next_nudge = NUDGE_PAGES;
        let mut last = 0;
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
                if pages < last {
                    // The log started over.
                    next_nudge = NUDGE_PAGES;
                }
                last = pages;
                if pages >= INLINE_PAGES {
                    // Busy while the thread checkpoints: the next commit tries again. A
                    // checkpoint's failure must never fail the commit it follows.
                    if let Err(e) = wal.checkpoint() {
                        tracing::debug!(error = %e, "inline checkpoint skipped");
                    }
                } else if pages >= next_nudge {
                    nudge_once(&nudge);
                    next_nudge = pages + NUDGE_PAGES;
                }
                Ok(())
            }))
            .ctx("hooking commits to checkpoints")?;
        Ok(Checkpointer {
            ask,
            thread: Some(thread),
        })
    }
}

/// Wakes the thread; a request already waiting covers this one.
fn nudge_once(nudge: &SyncSender<Ask>) {
    match nudge.try_send(Ask::Checkpoint) {
        Ok(()) | Err(TrySendError::Full(_)) => {}
        // The thread is gone (it only ends with the store): the inline fallback remains.
        Err(TrySendError::Disconnected(_)) => {}
    }
}

fn run(conn: &Connection, asked: &Receiver<Ask>) {
    while asked.recv() == Ok(Ask::Checkpoint) {
        let done: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        if let Err(e) = done {
            tracing::warn!(error = %e, "checkpointing the database log failed; will retry");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Waits at most for a checkpoint under way and one asked for: the thread takes
        // requests one by one and ends at this one.
        if self.ask.send(Ask::Stop).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn commits_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.db");
        let mut writer = open_connection(&path, Synchronous::Normal, false).expect("open");
        writer
            .execute_batch("CREATE TABLE t (b BLOB)")
            .expect("create");
        let _checkpointer =
            Checkpointer::attach(&mut writer, &path, Synchronous::Normal).expect("attach");
        let before = std::fs::metadata(&path).expect("db file").len();
        // About 1,500 pages of log, past the nudge and well short of the inline checkpoint.
        for _ in 0..1_500 {
            writer
                .execute("INSERT INTO t (b) VALUES (zeroblob(3000))", [])
                .expect("insert");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).expect("db file").len() < before + 1_000 * 4096 {
            assert!(
                Instant::now() < deadline,
                "the checkpoint thread never copied the log"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
