//! The server SIGKILLed at random moments under load and restarted on the same data dir and
//! port (RELIABILITY.md T7): nothing acknowledged is lost, the database stays sound, every
//! run finishes.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{AgentSpec, Cluster, Rng, env_count, is_terminal_run, quantile, write_file};

/// Nodes of the big workflow: 10 layers of 30, each node needing the one above it.
const BIG_NODES: usize = 300;
const BIG_WIDTH: usize = 30;

fn big_workflow() -> String {
    let mut wf = String::from("name: big\nnodes:\n");
    for i in 0..BIG_NODES {
        let needs = if i >= BIG_WIDTH {
            format!("needs: [n{:03}], ", i - BIG_WIDTH)
        } else {
            String::new()
        };
        // A restart shorter than the lease loses nothing, but a claim answered just as the
        // server dies strands its attempt until the lease ends: that one is retried.
        let _ = writeln!(
            wf,
            "  n{i:03}: {{{needs}run: 'sleep 0.05', retry: {{attempts: 20, on: [lost], backoff: 0s}}}}"
        );
    }
    wf
}

const TINY: &str = "name: tiny\nnodes:\n  a: {run: 'true'}\n  b: {needs: [a], run: 'true'}\n";

#[test]
fn server_killed_at_random_moments_loses_nothing_acknowledged() {
    let kills_wanted = env_count("BATON_FAULT_SERVER_KILLS", 4);
    let mut rng = Rng::from_env("t7");
    // Leases longer than a restart: agents carry on through one.
    let mut c = Cluster::start("5s");
    for name in ["s1", "s2"] {
        c.start_agent(name, 4, &AgentSpec::default());
    }
    let big = write_file(c.dir.path(), "big.yaml", &big_workflow());
    let tiny = write_file(c.dir.path(), "tiny.yaml", TINY);
    for file in [&big, &tiny] {
        let out = c.cli(&["workflows", "apply", &file.to_string_lossy()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut big_runs = vec![c.create_run_api("big").expect("first run")];

    // A client creating small runs all along: what the server acknowledged must survive.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (url, admin) = (c.url.clone(), c.admin.clone());
    let creator = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut refused = 0usize;
            while !stop.load(Ordering::Relaxed) {
                match post_run(&url, &admin, "tiny") {
                    Some(id) => acked.lock().unwrap().push(id),
                    None => refused += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            refused
        })
    };

    let mut restarts_ms = Vec::new();
    for _ in 0..kills_wanted {
        // Chaos timing, not synchronisation: the kill lands wherever the work happens to be.
        std::thread::sleep(Duration::from_millis(rng.range(200, 1500)));
        c.kill_server();
        let down = Instant::now();
        c.restart_server();
        restarts_ms.push(i64::try_from(down.elapsed().as_millis()).unwrap());
        let last = big_runs.last().expect("a big run");
        if c.run_api(last).is_some_and(|d| is_terminal_run(&d)) {
            big_runs.push(c.create_run_api("big").expect("a big run after restart"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let refused = creator.join().expect("creator thread");
    let acked = acked.lock().unwrap().clone();
    assert!(
        !acked.is_empty(),
        "no run was acknowledged during the chaos"
    );

    let mut lost_attempts = 0;
    let mut duplicate_successes = 0;
    let mut nodes = 0;
    for id in big_runs.iter().chain(&acked) {
        // Every acknowledged run is still there, and finishes.
        let doc = c.wait_run_done(id);
        assert_eq!(doc["status"], "success", "run {id}: {doc}");
        for (node, n) in doc["nodes"].as_object().expect("nodes") {
            nodes += 1;
            assert_eq!(n["status"], "success", "{id}/{node}: {n}");
            let attempts = n["attempts"].as_array().expect("attempts");
            let successes = attempts.iter().filter(|a| a["status"] == "success").count();
            duplicate_successes += successes.saturating_sub(1);
            assert_eq!(successes, 1, "{id}/{node}: {n}");
            for a in &attempts[..attempts.len() - 1] {
                assert_eq!(a["reason"], "lost", "{id}/{node}: {n}");
                lost_attempts += 1;
            }
        }
    }
    let integrity = integrity_check(&c.data_dir().join("baton.db"));
    assert_eq!(integrity, "ok");
    println!(
        "FAULTS t7 server_kills={kills_wanted} acked_runs={} refused_creates={refused} big_runs={} \
         nodes={nodes} lost_attempts={lost_attempts} duplicate_successes={duplicate_successes} \
         integrity={integrity} restart_ms_p50={} restart_ms_max={}",
        acked.len(),
        big_runs.len(),
        quantile(&mut restarts_ms, 0.5),
        restarts_ms.last().copied().unwrap_or(0),
    );
}

/// `POST /api/v1/runs` over a fresh connection: the id when acknowledged with 201.
fn post_run(url: &str, admin: &str, workflow: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let body = format!(r#"{{"workflow":"{workflow}"}}"#);
    let req = format!(
        "POST /api/v1/runs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAuthorization: Bearer {admin}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    stream.read_to_string(&mut resp).ok()?;
    if resp.split_whitespace().nth(1) != Some("201") {
        return None;
    }
    let (_, body) = resp.split_once("\r\n\r\n")?;
    let doc: Value = serde_json::from_str(body).ok()?;
    doc["id"].as_str().map(str::to_string)
}

/// `PRAGMA integrity_check` on the database, read-only, beside the running server.
fn integrity_check(db: &std::path::Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}
