//! Several `baton server` replicas on one PostgreSQL database: any replica serves any request,
//! work made ready on one wakes agents held on another, agents fail over when a replica dies,
//! the servers ride out a database restart, and no node is claimed twice under load (T2).
//!
//! Each replica is a [`Cluster`] of its own (its own data dir and token files) started with
//! `--db` naming the test's database, so every test also checks that one replica's tokens
//! work on the others: their hashes are shared through the database.
//!
//! The tests need `BATON_TEST_PG_URL`, a PostgreSQL server where they may create databases;
//! `scripts/test.sh` starts a throwaway one. Without it each test prints SKIPPED and passes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    AgentSpec, Cluster, PATIENCE, env_count, is_terminal_run, now_ms, wait_for, write_file,
};

/// Leases short enough that an attempt stranded by a dying replica is retried soon.
const LEASE: &str = "3s";
/// Claims of the T2 run in the suite; `scripts/t2.sh` runs 20,000 and 100,000.
const T2_CLAIMS: usize = 4_000;
/// Nodes per T2 run: the claims are spread over runs of this size.
const T2_RUN_NODES: usize = 250;

/// The PostgreSQL server tests may use, or `None` after saying on stderr that `test` is
/// skipped. The message goes to the real stderr, past the test harness's capture, so that a
/// plain `cargo test` shows it.
pub(crate) fn pg_url(test: &str) -> Option<String> {
    match std::env::var("BATON_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if baton_store::testing::in_ci() => {
            panic!(
                "replicas::{test}: BATON_TEST_PG_URL is not set but CI is: PostgreSQL tests \
                 must run here; run scripts/test.sh, which starts a throwaway cluster"
            )
        }
        _ => {
            skipped(
                test,
                "BATON_TEST_PG_URL is not set (scripts/test.sh sets it)",
            );
            None
        }
    }
}

fn skipped(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED replicas::{test}: {why}; this PostgreSQL test did not run"
    );
}

/// `url` with its database name replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// Runs SQL with `psql` and returns its unaligned output.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-A", "-t", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A database of the test's own, dropped afterwards.
pub(crate) struct TestDb {
    server: String,
    name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) fn create(server: &str) -> TestDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "baton_e2e_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            now_ms() % 1_000_000
        );
        psql(server, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        TestDb {
            url: with_database(server, &name),
            server: server.to_string(),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // FORCE ends the connections of servers that were killed but not yet noticed.
        let _ = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Replicas on one database; each is a [`Cluster`] with its own data dir and agents.
struct Replicas {
    // Dropped first: servers and agents die before their database is dropped.
    nodes: Vec<Cluster>,
    db: TestDb,
}

impl Replicas {
    /// `count` replicas on a fresh database of the test server; `None` when skipped.
    fn start(test: &str, count: usize) -> Option<Replicas> {
        let server = pg_url(test)?;
        Some(Replicas::on(TestDb::create(&server), count))
    }

    fn on(db: TestDb, count: usize) -> Replicas {
        let nodes = (0..count)
            .map(|_| Cluster::start_with(&["--db", &db.url, "--lease", LEASE]))
            .collect();
        Replicas { nodes, db }
    }

    /// Starts an agent on replica `first` that fails over to the others in order, and waits
    /// until it is online.
    fn agent_with_failover(&mut self, first: usize, name: &str, slots: u32) {
        let others: Vec<String> = (0..self.nodes.len())
            .filter(|&i| i != first)
            .flat_map(|i| ["--server".to_string(), self.nodes[i].url.clone()])
            .collect();
        let flags: Vec<&str> = others.iter().map(String::as_str).collect();
        let spec = AgentSpec {
            flags: &flags,
            ..AgentSpec::default()
        };
        self.nodes[first].start_agent(name, slots, &spec);
    }
}

/// A workflow of `nodes` nodes in layers of `width`, each needing the one above it.
fn layered(name: &str, nodes: usize, width: usize, action: &str) -> String {
    let mut wf = format!("name: {name}\nnodes:\n");
    for i in 0..nodes {
        let needs = if i >= width {
            format!("needs: [n{:05}], ", i - width)
        } else {
            String::new()
        };
        // A claim answered just as a replica dies strands its attempt until the lease ends;
        // that attempt ends `lost` and is retried.
        let _ = writeln!(
            wf,
            "  n{i:05}: {{{needs}{action}, retry: {{attempts: 20, on: [lost], backoff: 0s}}}}"
        );
    }
    wf
}

fn apply(c: &Cluster, file: &std::path::Path) {
    let out = c.cli(&["workflows", "apply", &file.to_string_lossy()]);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What run documents say about claims.
#[derive(Debug, Default)]
struct Claims {
    nodes: usize,
    attempts: usize,
    /// Attempts that ended `lost` (their lease ran out) and were retried.
    lost: usize,
    /// Nodes run more than once for any other reason, or that succeeded more than once.
    doubles: usize,
    /// Attempts per agent name.
    by_agent: BTreeMap<String, usize>,
}

impl Claims {
    /// Counts the attempts of finished runs, each of which must have succeeded.
    fn of(docs: &[Value]) -> Claims {
        let mut claims = Claims::default();
        for doc in docs {
            assert_eq!(doc["status"], "success", "run {}: {doc}", doc["id"]);
            for (node, n) in doc["nodes"].as_object().expect("nodes") {
                claims.nodes += 1;
                assert_eq!(n["status"], "success", "{}/{node}: {n}", doc["id"]);
                let attempts = n["attempts"].as_array().expect("attempts");
                claims.attempts += attempts.len();
                let successes = attempts.iter().filter(|a| a["status"] == "success").count();
                claims.doubles += successes.saturating_sub(1);
                for a in &attempts[..attempts.len().saturating_sub(1)] {
                    if a["reason"] == "lost" {
                        claims.lost += 1;
                    } else {
                        claims.doubles += 1;
                    }
                }
                for a in attempts {
                    let agent = a["agent"].as_str().unwrap_or("").to_string();
                    *claims.by_agent.entry(agent).or_default() += 1;
                }
            }
        }
        claims
    }

    /// Attempts run by agents whose name starts with `prefix`.
    fn by_agents(&self, prefix: &str) -> usize {
        self.by_agent
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The number of nodes of a run that ended `success`, from `c`'s API.
fn succeeded(c: &Cluster, run: &str) -> Option<usize> {
    let doc = c.run_api(run)?;
    Some(
        doc["nodes"]
            .as_object()?
            .values()
            .filter(|n| n["status"] == "success")
            .count(),
    )
}

#[test]
fn a_run_submitted_to_one_replica_runs_on_agents_of_both() {
    let Some(mut r) = Replicas::start("a_run_submitted_to_one_replica_runs_on_agents_of_both", 2)
    else {
        return;
    };
    r.nodes[0].add_agent("on-a", 4, &[]);
    r.nodes[1].add_agent("on-b", 4, &[]);
    let file = write_file(
        r.nodes[0].dir.path(),
        "wide.yaml",
        &layered("wide", 300, 30, "uses: sleep, with: {seconds: 0.01}"),
    );
    let run = r.nodes[0].start_run(&file);
    let doc = r.nodes[1].wait_run_done(&run);
    let claims = Claims::of(&[doc]);
    assert_eq!(claims.nodes, 300);
    assert_eq!(claims.doubles, 0, "{claims:?}");
    assert!(claims.by_agents("on-a") > 0, "{claims:?}");
    assert!(claims.by_agents("on-b") > 0, "{claims:?}");
    // Tokens made by one replica work on the other: the hashes live in the database.
    let path = format!("/api/v1/runs/{run}");
    let (status, _) = r.nodes[1]
        .http("GET", &path, Some(&r.nodes[0].admin), None)
        .expect("replica b answers");
    assert_eq!(status, 200);
    println!(
        "REPLICAS wide nodes={} attempts={} on_a={} on_b={}",
        claims.nodes,
        claims.attempts,
        claims.by_agents("on-a"),
        claims.by_agents("on-b")
    );
}

#[test]
fn nodes_made_ready_on_one_replica_wake_agents_held_on_another() {
    let Some(mut r) = Replicas::start(
        "nodes_made_ready_on_one_replica_wake_agents_held_on_another",
        2,
    ) else {
        return;
    };
    r.nodes[0].add_agent("side-a", 1, &["side=a"]);
    r.nodes[1].add_agent("side-b", 1, &["side=b"]);
    // Each node runs on the other side from the one before: it is made ready by a report to
    // one replica and claimed through the other. Were the held claim not woken through the
    // database, every hop would wait for the claim's long poll (30 s) to end, and the run
    // could not finish within the test's patience.
    let mut wf = String::from("name: zigzag\nnodes:\n");
    for i in 0..16 {
        let side = if i % 2 == 0 { "a" } else { "b" };
        let needs = if i > 0 {
            format!("needs: [z{:02}], ", i - 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            wf,
            "  z{i:02}: {{{needs}uses: noop, selector: {{side: {side}}}}}"
        );
    }
    let file = write_file(r.nodes[0].dir.path(), "zigzag.yaml", &wf);
    let run = r.nodes[0].start_run(&file);
    let doc = r.nodes[1].wait_run_done(&run);
    let claims = Claims::of(&[doc]);
    assert_eq!(claims.nodes, 16);
    assert_eq!(claims.by_agents("side-a"), 8, "{claims:?}");
    assert_eq!(claims.by_agents("side-b"), 8, "{claims:?}");
}

#[test]
fn a_replica_killed_mid_run_leaves_the_run_to_the_other() {
    let Some(mut r) = Replicas::start("a_replica_killed_mid_run_leaves_the_run_to_the_other", 2)
    else {
        return;
    };
    // Two agents talk to replica a first, one to b; all know both.
    r.agent_with_failover(0, "x1", 4);
    r.agent_with_failover(0, "x2", 4);
    r.agent_with_failover(1, "x3", 4);
    let file = write_file(
        r.nodes[0].dir.path(),
        "big.yaml",
        &layered("big", 300, 30, "uses: sleep, with: {seconds: 0.02}"),
    );
    let run = r.nodes[0].start_run(&file);
    wait_for("a fifth of the run done", || {
        (succeeded(&r.nodes[0], &run)? >= 60).then_some(())
    });
    r.nodes[0].kill_server();
    let doc = r.nodes[1].wait_run_done(&run);
    let claims = Claims::of(&[doc]);
    assert_eq!(claims.nodes, 300);
    assert_eq!(claims.doubles, 0, "{claims:?}");
    // The agents of the dead replica went on through the other one.
    assert_eq!(r.nodes[1].agent_status("x1").as_deref(), Some("online"));
    assert_eq!(r.nodes[1].agent_status("x2").as_deref(), Some("online"));
    println!(
        "REPLICAS kill nodes={} attempts={} lost={}",
        claims.nodes, claims.attempts, claims.lost
    );
}

/// A PostgreSQL cluster of the test's own (from `scripts/pg.sh`), which it may restart
/// without disturbing tests that share the suite's cluster. Removed on drop.
struct OwnCluster {
    env: BTreeMap<String, String>,
}

impl OwnCluster {
    /// `None` when this machine has no server binaries the suite's script could use.
    fn start(test: &str) -> Option<OwnCluster> {
        // Set only when scripts/pg.sh made the suite's cluster, so its binaries are here.
        if std::env::var_os("BATON_TEST_PG_DATA").is_none() {
            skipped(
                test,
                "BATON_TEST_PG_DATA is not set (the PostgreSQL server was not started by scripts/pg.sh)",
            );
            return None;
        }
        let out = Command::new(pg_script())
            .arg("start")
            .env("BATON_PG_NO_INSTALL", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/pg.sh");
        assert!(
            out.status.success(),
            "pg.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(OwnCluster { env })
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("pg.sh printed no {name}"))
    }

    /// `pg_ctl restart -m fast`: every connection is closed, the server is down for a moment.
    fn restart(&self) {
        let pg_ctl = PathBuf::from(self.var("BATON_TEST_PG_BIN")).join("pg_ctl");
        let user = self.var("BATON_TEST_PG_CTL_USER");
        let mut cmd = if user != current_user() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(pg_ctl);
            cmd
        } else {
            Command::new(pg_ctl)
        };
        let log = PathBuf::from(self.var("BATON_TEST_PG_DIR")).join("restart.log");
        let status = cmd
            .args(["restart", "-m", "fast", "-w", "-t", "60", "-D"])
            .arg(self.var("BATON_TEST_PG_DATA"))
            .arg("-l")
            .arg(log)
            // The server keeps the output it inherits; a pipe would never close.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl");
        assert!(status.success(), "pg_ctl restart failed");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if let Some(dir) = self.env.get("BATON_TEST_PG_DIR") {
            let _ = Command::new(pg_script())
                .args(["stop", dir])
                .stdin(Stdio::null())
                .status();
        }
    }
}

/// The name of the user running the tests.
fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .stdin(Stdio::null())
        .output()
        .expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pg_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg.sh")
}

#[test]
fn a_database_restart_mid_run_loses_no_run() {
    let test = "a_database_restart_mid_run_loses_no_run";
    if pg_url(test).is_none() {
        return;
    }
    let Some(pg) = OwnCluster::start(test) else {
        return;
    };
    let db = TestDb::create(pg.var("BATON_TEST_PG_URL"));
    let mut r = Replicas::on(db, 2);
    r.agent_with_failover(0, "y1", 4);
    r.agent_with_failover(1, "y2", 4);
    let file = write_file(
        r.nodes[0].dir.path(),
        "big.yaml",
        &layered("big", 200, 20, "uses: sleep, with: {seconds: 0.02}"),
    );
    apply(&r.nodes[0], &file);
    let runs: Vec<String> = (0..2)
        .map(|i| r.nodes[i].create_run_api("big").expect("a run"))
        .collect();
    wait_for("some progress before the restart", || {
        (succeeded(&r.nodes[0], &runs[0])? >= 20).then_some(())
    });
    let down = Instant::now();
    pg.restart();
    let restarted = down.elapsed();
    // Each replica serves a read from the database again once its connections are back.
    let reconnected: Vec<Duration> = r
        .nodes
        .iter()
        .map(|c| {
            wait_for("the replica to reach the database again", || {
                c.run_api(&runs[0]).map(|_| ())
            });
            down.elapsed()
        })
        .collect();
    for (i, run) in runs.iter().enumerate() {
        let doc = r.nodes[i].wait_run_done(run);
        let claims = Claims::of(&[doc]);
        assert_eq!(claims.doubles, 0, "{claims:?}");
    }
    // A run created after the restart runs too.
    let after = r.nodes[1].create_run_api("big").expect("a run after");
    let claims = Claims::of(&[r.nodes[0].wait_run_done(&after)]);
    assert_eq!(claims.nodes, 200);
    println!(
        "REPLICAS pg_restart restart_ms={} reconnected_ms={:?} database={}",
        restarted.as_millis(),
        reconnected
            .iter()
            .map(Duration::as_millis)
            .collect::<Vec<_>>(),
        r.db.name
    );
}

/// T2: two replicas on one database, 8 agents split across them, every node claimed once;
/// and the same claims through one replica, to compare throughput.
#[test]
fn t2_two_replicas_claim_every_node_exactly_once() {
    let test = "t2_two_replicas_claim_every_node_exactly_once";
    let Some(mut r) = Replicas::start(test, 2) else {
        return;
    };
    let claims = env_count("BATON_T2_CLAIMS", T2_CLAIMS).max(1);
    let per_run = claims.min(T2_RUN_NODES);
    let runs = claims.div_ceil(per_run);
    let mut wf = String::from("name: t2\nnodes:\n");
    for i in 0..per_run {
        let _ = writeln!(wf, "  n{i:05}: {{uses: noop}}");
    }
    let file = write_file(r.nodes[0].dir.path(), "t2.yaml", &wf);
    apply(&r.nodes[0], &file);

    let one = t2_phase(&mut r, "one", &[8, 0], runs);
    let two = t2_phase(&mut r, "two", &[4, 4], runs);
    for (label, phase) in [("one", &one), ("two", &two)] {
        assert_eq!(phase.claims.nodes, runs * per_run, "{label}");
        assert_eq!(phase.claims.doubles, 0, "{label}: {:?}", phase.claims);
    }
    // Both replicas' agents took part.
    assert!(two.claims.by_agents("two-0-") > 0, "{:?}", two.claims);
    assert!(two.claims.by_agents("two-1-") > 0, "{:?}", two.claims);
    let rate = |p: &Phase| p.claims.attempts as f64 / p.elapsed.as_secs_f64();
    // For sizing: what a node with one attempt costs on disk, with the schema's fixed part.
    let db_bytes: u64 = psql(&r.db.url, "SELECT pg_database_size(current_database())")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Throughput is printed, never asserted: the suite shares the machine with other tests.
    println!(
        "T2 claims={} runs={runs} one_replica_claims_per_s={:.0} two_replicas_claims_per_s={:.0} \
         ratio={:.2} double_claims={} lost={} split={}/{} db_bytes={db_bytes} nodes={}",
        runs * per_run,
        rate(&one),
        rate(&two),
        rate(&two) / rate(&one),
        one.claims.doubles + two.claims.doubles,
        one.claims.lost + two.claims.lost,
        two.claims.by_agents("two-0-"),
        two.claims.by_agents("two-1-"),
        one.claims.nodes + two.claims.nodes,
    );
}

struct Phase {
    claims: Claims,
    elapsed: Duration,
}

/// Starts `agents[i]` agents on replica `i`, creates `runs` runs spread over the replicas
/// that have agents, waits for all of them, and stops the agents.
fn t2_phase(r: &mut Replicas, label: &str, agents: &[usize], runs: usize) -> Phase {
    let mut names = Vec::new();
    for (replica, &count) in agents.iter().enumerate() {
        for k in 0..count {
            let name = format!("{label}-{replica}-{k}");
            r.nodes[replica].start_agent(&name, 8, &AgentSpec::default());
            names.push((replica, name));
        }
    }
    let serving: Vec<usize> = (0..agents.len()).filter(|&i| agents[i] > 0).collect();
    let start = Instant::now();
    let ids: Vec<(usize, String)> = (0..runs)
        .map(|k| {
            let replica = serving[k % serving.len()];
            let id = r.nodes[replica].create_run_api("t2").expect("a t2 run");
            (replica, id)
        })
        .collect();
    // Summaries, not whole run documents, are polled: the load of watching stays small.
    let list = format!("/api/v1/runs?workflow=t2&limit={}", runs * 2 + 10);
    let deadline = start + PATIENCE + Duration::from_millis(runs as u64 * 2_000);
    loop {
        let done = r.nodes[serving[0]].api_get(&list).map_or(0, |rows| {
            rows.as_array().map_or(0, |rows| {
                rows.iter()
                    .filter(|s| is_terminal_run(s))
                    .filter(|s| ids.iter().any(|(_, id)| s["id"] == id.as_str()))
                    .count()
            })
        });
        if done == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: only {done} of {runs} t2 runs finished in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    let docs: Vec<Value> = ids
        .iter()
        .map(|(replica, id)| r.nodes[*replica].run_api(id).expect("a t2 run document"))
        .collect();
    for (replica, name) in names {
        r.nodes[replica].kill_agent(&name);
    }
    Phase {
        claims: Claims::of(&docs),
        elapsed,
    }
}

#[test]
fn database_urls_name_the_test_database() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5432/postgres", "x"),
        "postgres://u@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/postgres?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
}
