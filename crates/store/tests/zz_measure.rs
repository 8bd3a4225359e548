use std::sync::Arc;
use std::time::Instant;

use baton_core::Outcome;
use baton_store::testing::*;
use baton_store::{SqliteOptions, SqliteStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&SqliteOptions::new(&path)).unwrap());
    let s = &*store;
    let ag = agent(s, "a", &[], &[]).await;
    // wide 10k
    let wide = workflow("wide", (0..10_000).map(|i| node(&format!("n{i}"), &[])).collect());
    s.apply_workflow(&wide, "").await.unwrap();
    s.create_run("wide", None).await.unwrap(); // warm cache
    let t = Instant::now();
    let n = 5;
    for _ in 0..n { s.create_run("wide", None).await.unwrap(); }
    eprintln!("create_run 10k wide: {:?} each", t.elapsed() / n);
    // chain 10k
    let chain = workflow("chain", (0..10_000).map(|i| if i == 0 { node("n0", &[]) } else { let p = format!("n{}", i-1); node(&format!("n{i}"), &[p.as_str()]) }).collect());
    s.apply_workflow(&chain, "").await.unwrap();
    s.create_run("chain", None).await.unwrap();
    let t = Instant::now();
    for _ in 0..n { s.create_run("chain", None).await.unwrap(); }
    eprintln!("create_run 10k chain: {:?} each", t.elapsed() / n);

    // claim+report on a chain (fresh store to avoid the wide runs' ready nodes)
    let dir2 = tempfile::tempdir().unwrap();
    let store2: Arc<dyn Store> = Arc::new(SqliteStore::open(&SqliteOptions::new(dir2.path().join("c.db"))).unwrap());
    let s2 = &*store2;
    let ag2 = agent(s2, "a", &[], &[]).await;
    let small = workflow("chain", (0..3000).map(|i| if i == 0 { node("n0", &[]) } else { let p = format!("n{}", i-1); node(&format!("n{i}"), &[p.as_str()]) }).collect());
    s2.apply_workflow(&small, "").await.unwrap();
    let run = s2.create_run("chain", None).await.unwrap().run.id;
    let t = Instant::now();
    let mut k = 0;
    loop {
        let got = s2.claim(&ag2, 1, 15_000).await.unwrap();
        if got.assignments.is_empty() { break; }
        let a = &got.assignments[0];
        s2.report(&ag2, aref(a), Outcome::exited(0), None).await.unwrap();
        k += 1;
    }
    let el = t.elapsed();
    eprintln!("chain claim+report: {k} pairs in {el:?} = {:.0}/s", k as f64 / el.as_secs_f64());
    let t = Instant::now();
    let doc = s2.run(&run).await.unwrap();
    eprintln!("run doc of 3000 nodes/attempts: {:?} status {}", t.elapsed(), doc.status);
    // with start too
    let run = s2.create_run("chain", None).await.unwrap().run.id;
    let t = Instant::now();
    let mut k = 0;
    loop {
        let got = s2.claim(&ag2, 1, 15_000).await.unwrap();
        if got.assignments.is_empty() { break; }
        let a = &got.assignments[0];
        s2.start_attempt(&ag2, aref(a)).await.unwrap();
        s2.report(&ag2, aref(a), Outcome::exited(0), None).await.unwrap();
        k += 1;
    }
    let el = t.elapsed();
    eprintln!("chain claim+start+report: {k} in {el:?} = {:.0}/s {run}", k as f64 / el.as_secs_f64());
    let _ = ag;

    let conn = rusqlite::Connection::open(&path).unwrap();
    for q in [
        "SELECT id, run_id, idx, ready_at, attempts FROM nodes WHERE req_id = 1 AND status = 'ready' AND ready_at <= 5 AND (ready_at, id) > (1, 2) ORDER BY ready_at, id LIMIT 5",
        "SELECT MIN(ready_at) FROM nodes WHERE req_id = 1 AND status = 'ready' AND ready_at > 5",
        "UPDATE nodes SET status = 'skipped' WHERE run_id = 'x' AND status = 'waiting' AND idx IN (SELECT value FROM json_each('[1,2]'))",
        "SELECT a.id FROM attempts a JOIN runs r ON r.id = a.run_id WHERE a.agent_id = 'x' AND a.status IN ('pending', 'running') AND r.cancel_requested = 1 ORDER BY a.id",
        "SELECT id FROM attempts WHERE status IN ('pending', 'running') AND lease_until < 5 ORDER BY lease_until LIMIT 500",
        "SELECT MIN(lease_until) FROM attempts WHERE status IN ('pending', 'running')",
        "SELECT n.idx, a.number FROM attempts a JOIN nodes n ON n.id = a.node_id LEFT JOIN agents g ON g.id = a.agent_id WHERE a.run_id = 'x' ORDER BY a.id",
        "SELECT id FROM runs WHERE status = 'x' ORDER BY id DESC LIMIT 5",
    ] {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {q}")).unwrap();
        let rows: Vec<String> = st.query_map([], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect();
        eprintln!("{q}\n   -> {rows:?}");
    }
}
