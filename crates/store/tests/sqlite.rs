//! What only the SQLite backend promises: the file, its schema, durability across
//! reopening, the log cap.

use std::sync::Arc;

use baton_api::{LogQuery, Stream};
use baton_core::{NodeState, Outcome, RunState};
use baton_store::testing::{LEASE, TestClock, agent, aref, claim_nodes, node, start_run, workflow};
use baton_store::{SqliteOptions, SqliteStore, Store, StoreError, Synchronous};

fn open(path: &std::path::Path, clock: &TestClock) -> SqliteStore {
    SqliteStore::open(&SqliteOptions::new(path))
        .expect("open the database")
        .with_clock(clock.as_fn())
}

#[tokio::test]
async fn state_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/dir/baton.db");
    let clock = TestClock::new();
    let (run, ag, claimed) = {
        let s = open(&path, &clock);
        let ag = agent(&s, "a", &[], &[]).await;
        let run = start_run(&s, &workflow("w", vec![node("a", &[]), node("b", &["a"])])).await;
        let (claimed, _) = claim_nodes(&s, &ag, 1).await;
        (run, ag, claimed)
    };
    assert!(path.exists(), "the file and its directories were created");

    let s = open(&path, &clock);
    assert_eq!(
        s.run(&run).await.expect("run").nodes["a"].status,
        NodeState::Pending
    );
    s.report(&ag, aref(&claimed[0]), Outcome::exited(0), None)
        .await
        .expect("the attempt is still the agent's after a restart");
    let (b, _) = claim_nodes(&s, &ag, 1).await;
    s.report(&ag, aref(&b[0]), Outcome::exited(0), None)
        .await
        .expect("report b");
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Success);
}

#[tokio::test]
async fn full_synchronous_mode_opens_and_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SqliteStore::open(&SqliteOptions {
        path: dir.path().join("baton.db"),
        synchronous: Synchronous::Full,
    })
    .expect("open");
    let made = s
        .apply_workflow(&workflow("w", vec![node("a", &[])]), "")
        .await
        .expect("apply");
    assert_eq!(made.version, 1);
}

/// The schema version this build brings a database to: one per migration file, so adding
/// a migration needs no change here.
fn known_version() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    std::fs::read_dir(dir)
        .expect("the migrations dir")
        .filter(|e| {
            e.as_ref()
                .expect("a dir entry")
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64
}

#[tokio::test]
async fn refuses_a_schema_newer_than_it_knows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("baton.db");
    drop(SqliteStore::open(&SqliteOptions::new(&path)).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, known_version());
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    match SqliteStore::open(&SqliteOptions::new(&path)) {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_version_1_database_upgrades_and_keeps_its_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("baton.db");
    {
        // A database as the first release left it: schema 1 with a workflow and a run.
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
            .expect("schema 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
    }
    let clock = TestClock::new();
    let run = {
        let s = SqliteStore::open(&SqliteOptions::new(&path))
            .expect("open")
            .with_clock(clock.as_fn());
        start_run(&s, &workflow("w", vec![node("a", &[])])).await
    };
    let s = open(&path, &clock);
    let doc = s.run(&run).await.expect("the run is still there");
    assert_eq!(doc.nodes["a"].status, NodeState::Ready);
    assert_eq!(doc.reason, None);
    assert_eq!(doc.retry_of, None);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, known_version());
}

#[tokio::test]
async fn deadline_queries_use_their_indexes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("baton.db");
    drop(SqliteStore::open(&SqliteOptions::new(&path)).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let plan = |sql: &str| -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan rows");
        rows.map(|r| r.expect("plan row"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    // The deadline pass runs about once a second on a busy server: none of its queries may
    // scan a table.
    for (sql, index) in [
        (
            "SELECT MIN(deadline) FROM runs WHERE deadline IS NOT NULL",
            "runs_by_deadline",
        ),
        (
            "SELECT id FROM runs WHERE deadline IS NOT NULL AND deadline <= 5 \
             ORDER BY deadline LIMIT 10",
            "runs_by_deadline",
        ),
        (
            "SELECT MIN(ready_at + queue_timeout_ms) FROM nodes \
             WHERE status = 'ready' AND queue_timeout_ms IS NOT NULL",
            "nodes_queue_deadline",
        ),
        (
            "SELECT id, run_id, idx, queue_timeout_ms FROM nodes \
             WHERE status = 'ready' AND queue_timeout_ms IS NOT NULL \
               AND ready_at + queue_timeout_ms <= 5 \
             ORDER BY ready_at + queue_timeout_ms LIMIT 10",
            "nodes_queue_deadline",
        ),
        (
            "SELECT id FROM runs WHERE retry_of = 'x' ORDER BY id",
            "runs_by_retry_of",
        ),
        // The concurrency safety net, and the counts every limited create and run end make.
        (
            "SELECT DISTINCT workflow FROM runs INDEXED BY runs_queued_by_workflow \
             WHERE status = 'created'",
            "runs_queued_by_workflow",
        ),
        (
            "SELECT id, version_id FROM runs \
             WHERE workflow = 'w' AND status = 'created' AND id > '' ORDER BY id LIMIT 64",
            "runs_queued_by_workflow",
        ),
        (
            "SELECT count(*) FROM runs WHERE workflow = 'w' AND status = 'created'",
            "runs_queued_by_workflow",
        ),
        (
            "SELECT id, cancel_requested FROM runs \
             WHERE workflow = 'w' AND status IN ('pending', 'running') ORDER BY id",
            "runs_active_by_workflow",
        ),
    ] {
        let got = plan(sql);
        assert!(got.contains(index), "{sql}\n  plan: {got}");
    }
}

#[tokio::test]
async fn log_past_the_cap_is_cut_once_with_a_marker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = TestClock::new();
    let s: Arc<dyn Store> = Arc::new(open(&dir.path().join("baton.db"), &clock).with_log_cap(10));
    let ag = agent(&*s, "a", &[], &[]).await;
    let run = start_run(&*s, &workflow("w", vec![node("a", &[])])).await;
    let (a, _) = claim_nodes(&*s, &ag, 1).await;
    let at = aref(&a[0]);
    s.append_log(&ag, at, 0, Stream::Stdout, "12345\n")
        .await
        .expect("log");
    s.append_log(&ag, at, 1, Stream::Stdout, "67890\nmore\n")
        .await
        .expect("log");
    s.append_log(&ag, at, 2, Stream::Stdout, "dropped\n")
        .await
        .expect("log");
    let page = s.logs(&run, &LogQuery::default()).await.expect("logs");
    let text: String = page.chunks.iter().map(|c| c.data.as_str()).collect();
    assert_eq!(text, "12345\n6789\n[baton: log truncated at 10 bytes]\n");
    assert_eq!(page.chunks.len(), 2);
    s.heartbeat(&ag, &[at], LEASE)
        .await
        .expect("the attempt is unaffected");
}

#[tokio::test]
async fn claim_queries_use_their_indexes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("baton.db");
    drop(SqliteStore::open(&SqliteOptions::new(&path)).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let plan = |sql: &str| -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan rows");
        rows.map(|r| r.expect("plan row"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    // Every claim walks ready nodes one priority level at a time, each level's claimable
    // nodes in ready order with keyset pagination: the index must give them in that order
    // (no sort), from the key on and up to now (never reading those backing off), and
    // reach the run by its key; a resource's holds are read by the key's prefix.
    let walk = plan(
        "SELECT n.id, n.run_id, n.idx, n.prio_key, n.ready_at, n.attempts, r.version_id \
         FROM nodes n JOIN runs r ON r.id = n.run_id \
         WHERE n.req_id = 1 AND n.status = 'ready' AND n.prio_key = -5 \
           AND n.ready_at <= 100 AND (n.ready_at, n.id) > (10, 3) \
         ORDER BY n.ready_at, n.id LIMIT 20",
    );
    // SQLite bounds the range by the row value's leading column and `ready_at <= now`, and
    // checks the rest.
    assert!(
        walk.contains("SEARCH n USING INDEX nodes_ready (req_id=? AND prio_key=? AND ")
            && walk.contains("ready_at<?"),
        "{walk}"
    );
    assert!(
        walk.contains("SEARCH r USING INDEX sqlite_autoindex_runs_1 (id=?)"),
        "{walk}"
    );
    assert!(!walk.contains("TEMP B-TREE"), "{walk}");
    // A level's first page seeks the level in the same statement.
    let first = plan(
        "SELECT n.id, n.run_id, n.idx, n.prio_key, n.ready_at, n.attempts, r.version_id \
         FROM nodes n JOIN runs r ON r.id = n.run_id \
         WHERE n.req_id = 1 AND n.status = 'ready' \
           AND n.prio_key = (SELECT MIN(prio_key) FROM nodes \
             WHERE req_id = 1 AND status = 'ready' AND prio_key > -5) \
           AND n.ready_at <= 100 \
         ORDER BY n.ready_at, n.id LIMIT 20",
    );
    assert!(
        first.starts_with(
            "SEARCH n USING INDEX nodes_ready (req_id=? AND prio_key=? AND ready_at<?)"
        ),
        "{first}"
    );
    assert!(
        first.contains("INDEX nodes_ready (req_id=? AND prio_key>?)")
            && first.contains("SEARCH r USING INDEX sqlite_autoindex_runs_1 (id=?)"),
        "{first}"
    );
    assert!(
        !first.contains("SCAN") && !first.contains("TEMP B-TREE"),
        "{first}"
    );
    // The next level, and the earliest backing-off node of a level, are one seek each.
    for seek in [
        "SELECT MIN(prio_key) FROM nodes \
         WHERE req_id = 1 AND status = 'ready' AND prio_key > -5",
        "SELECT MIN(ready_at) FROM nodes \
         WHERE req_id = 1 AND status = 'ready' AND prio_key = -5 AND ready_at > 100",
    ] {
        let seek = plan(seek);
        assert!(
            seek.starts_with("SEARCH nodes USING ")
                && seek.contains("INDEX nodes_ready (req_id=? AND prio_key"),
            "{seek}"
        );
        assert!(
            !seek.contains("SCAN") && !seek.contains("TEMP B-TREE"),
            "{seek}"
        );
    }
    let holds = plan("SELECT COUNT(*), MIN(capacity) FROM resource_holds WHERE resource = 'db'");
    assert!(
        holds.contains("USING PRIMARY KEY (resource=?)")
            || holds.contains("sqlite_autoindex_resource_holds_1 (resource=?)"),
        "{holds}"
    );
}

#[tokio::test]
async fn a_version_2_database_keeps_its_resource_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("baton.db");
    let clock = TestClock::new();
    let now = clock.now();
    let mut locked = node("deploy", &[]);
    locked.resources = vec!["prod".into()];
    let wf = workflow("ship", vec![locked]);
    {
        // Schema 2, as the previous release left it: a run whose node holds `prod` (then a
        // single-holder key) through a live attempt of agent `old`.
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
            .expect("schema 1");
        conn.execute_batch(include_str!(
            "../migrations/sqlite/0002_deadlines_rerun.sql"
        ))
        .expect("schema 2");
        conn.pragma_update(None, "user_version", 2)
            .expect("version");
        let req = serde_json::to_string(&baton_core::Requirement {
            function: "shell".to_owned(),
            selector: Default::default(),
        })
        .expect("requirement key");
        let definition = serde_json::to_string(&wf).expect("definition");
        conn.execute_batch(&format!(
            "INSERT INTO workflow_versions VALUES \
               ('v1', 'ship', 1, '{definition}', '', 'd', 1, {now});
             INSERT INTO requirements VALUES (1, '{req}', 'shell', '{{}}');
             INSERT INTO runs (id, workflow, version, version_id, status, created_at, \
               started_at, total, n_pending) \
               VALUES ('r1', 'ship', 1, 'v1', 'running', {now}, {now}, 1, 1);
             INSERT INTO nodes (id, run_id, idx, status, remaining, attempts, req_id, \
               attempt_id) VALUES (1, 'r1', 0, 'pending', 0, 1, 1, 1);
             INSERT INTO agents VALUES ('ag1', 'old', '{{}}', '[\"shell\"]', 1, 'x', \
               {now}, {now}, NULL);
             INSERT INTO attempts (id, node_id, run_id, number, agent_id, fence, status, \
               claimed_at, lease_until) VALUES (1, 1, 'r1', 1, 'ag1', 7, 'pending', {now}, \
               {lease});
             INSERT INTO resource_holds VALUES ('prod', 1);",
            lease = now + LEASE as i64,
        ))
        .expect("schema 2 rows");
    }

    let s = open(&path, &clock);
    let list = s.resources().await.expect("resources");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].name, "prod");
    assert_eq!(list[0].holders[0].run_id, "r1");
    assert_eq!(list[0].holders[0].agent, "old");
    assert_eq!(list[0].holders[0].count, 1, "old holds were exclusive");

    // The old hold still keeps a new run out, and ends with its attempt.
    let ag = agent(&s, "new", &[], &[]).await;
    let run = start_run(&s, &wf).await;
    assert!(claim_nodes(&s, &ag, 1).await.0.is_empty(), "prod is held");
    s.report(
        "ag1",
        baton_api::AttemptRef {
            attempt_id: 1,
            fence: 7,
        },
        Outcome::exited(0),
        None,
    )
    .await
    .expect("the old attempt reports");
    assert_eq!(
        s.run("r1").await.expect("old run").status,
        RunState::Success
    );
    let (got, _) = claim_nodes(&s, &ag, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run_id, run);
    let list = s.resources().await.expect("resources");
    assert_eq!(list[0].holders.len(), 1);
    assert_eq!(list[0].holders[0].run_id, run);
}
