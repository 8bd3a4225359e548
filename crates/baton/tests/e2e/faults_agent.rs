//! Agents that die, freeze, come back under the same name or live on a skewed wall clock:
//! real processes, real signals (RELIABILITY.md T3, T4, T5, T12).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::util::{
    AgentSpec, Cluster, GroupKill, Rng, env_count, now_ms, parse_time_ms, pid_alive, quantile,
    read_pid, wait_for, write_file,
};

/// The lease every test here runs with.
const LEASE_MS: i64 = 1_000;
/// From an agent's death to its node being ready again, at most (docs/reliability.md).
const REQUEUE_BOUND_MS: i64 = LEASE_MS + 2_000;

/// Nodes of the churn workflow: chains of 8 wide, so work is always in flight.
const CHURN_NODES: usize = 40;
const CHURN_WIDTH: usize = 8;
/// Attempts a churn node may take; far above what the kills can reach.
const CHURN_ATTEMPTS: usize = 100;

/// A workflow of short nodes that log each execution's start and end to `execs`.
fn churn_workflow(rng: &mut Rng, execs: &Path) -> String {
    let mut wf = String::from("name: churn\nnodes:\n");
    for i in 0..CHURN_NODES {
        let needs = if i >= CHURN_WIDTH {
            format!("needs: [n{:02}], ", i - CHURN_WIDTH)
        } else {
            String::new()
        };
        let rec = |what: &str| {
            format!(
                "echo \\\"{what} $BATON_RUN_ID $BATON_NODE $BATON_ATTEMPT\\\" >> {}",
                execs.display()
            )
        };
        let _ = writeln!(
            wf,
            "  n{i:02}: {{{needs}run: \"{}; sleep 0.{:03}; {}\", \
             retry: {{attempts: {CHURN_ATTEMPTS}, on: [lost], backoff: 0s}}}}",
            rec("start"),
            rng.range(50, 600),
            rec("end"),
        );
    }
    wf
}

/// Executions a node script logged: `(word, run, node, attempt)`.
fn executions(execs: &Path) -> BTreeSet<(String, String, String, u64)> {
    std::fs::read_to_string(execs)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "bad execution line {l:?}");
            let n = f[3].parse().expect("attempt number");
            (f[0].to_string(), f[1].to_string(), f[2].to_string(), n)
        })
        .collect()
}

/// Names of `live` agents that hold attempts right now, per the server.
fn busy_agents(c: &Cluster, live: &[String]) -> Vec<String> {
    let Some(agents) = c.api_get("/api/v1/agents") else {
        return Vec::new();
    };
    let busy: BTreeSet<&str> = agents
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["used_slots"].as_u64().unwrap_or(0) > 0)
        .filter_map(|a| a["name"].as_str())
        .collect();
    live.iter()
        .filter(|n| busy.contains(n.as_str()))
        .cloned()
        .collect()
}

/// Nodes of a run not yet in a terminal state.
fn unfinished_nodes(doc: &Value) -> usize {
    doc["nodes"].as_object().map_or(0, |nodes| {
        nodes
            .values()
            .filter(|n| {
                !matches!(
                    n["status"].as_str(),
                    Some("success" | "failure" | "error" | "canceled" | "skipped")
                )
            })
            .count()
    })
}

/// What the churn runs showed.
#[derive(Default)]
struct Churn {
    lost_attempts: usize,
    nodes_lost: usize,
    duplicate_successes: usize,
    agents_hit: BTreeSet<String>,
    /// From an agent's death to each of its nodes being ready again, in ms.
    requeue_ms: Vec<i64>,
}

/// Checks one finished churn run against the kills (agent name -> kill time).
fn check_churn_run(
    doc: &Value,
    killed: &HashMap<String, i64>,
    execs: &BTreeSet<(String, String, String, u64)>,
    out: &mut Churn,
) {
    let run = doc["id"].as_str().expect("run id");
    assert_eq!(doc["status"], "success", "run {run} did not succeed: {doc}");
    let nodes = doc["nodes"].as_object().expect("nodes");
    assert_eq!(nodes.len(), CHURN_NODES);
    for (node, n) in nodes {
        let attempts = n["attempts"].as_array().expect("attempts");
        if n["status"] != "success" {
            out.nodes_lost += 1;
        }
        let successes = attempts.iter().filter(|a| a["status"] == "success").count();
        out.duplicate_successes += successes.saturating_sub(1);
        assert_eq!(n["status"], "success", "{run}/{node}: {n}");
        assert_eq!(successes, 1, "{run}/{node} must have one success: {n}");
        assert!(
            attempts.len() <= CHURN_ATTEMPTS,
            "{run}/{node} beyond policy"
        );
        let mut hit_by = BTreeSet::new();
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a["number"], i + 1, "{run}/{node}: attempt numbers: {n}");
            let agent = a["agent"].as_str().expect("agent").to_string();
            if i + 1 == attempts.len() {
                assert_eq!(a["status"], "success", "{run}/{node}: last attempt: {n}");
                let done = (
                    "end".to_string(),
                    run.to_string(),
                    node.clone(),
                    i as u64 + 1,
                );
                assert!(
                    execs.contains(&done),
                    "{run}/{node}#{}: accepted success without an execution",
                    i + 1
                );
                continue;
            }
            // Every earlier attempt is one kill of its agent: lost, never anything else.
            assert_eq!(a["status"], "error", "{run}/{node}: {a}");
            assert_eq!(a["reason"], "lost", "{run}/{node}: {a}");
            let Some(&killed_at) = killed.get(&agent) else {
                panic!(
                    "{run}/{node}: attempt lost on {agent}, an agent that was never killed: {a}"
                );
            };
            assert!(
                hit_by.insert(agent.clone()),
                "{run}/{node}: two attempts lost on one agent's death"
            );
            let finished = parse_time_ms(a["finished_at"].as_str().expect("finished_at"));
            let requeue = finished - killed_at;
            assert!(
                requeue <= REQUEUE_BOUND_MS,
                "{run}/{node}: ready again {requeue} ms after its agent died (bound {REQUEUE_BOUND_MS} ms)"
            );
            out.requeue_ms.push(requeue);
            out.lost_attempts += 1;
            out.agents_hit.insert(agent);
        }
    }
    // Every execution a node logged belongs to an attempt the store knows.
    for (_, r, node, number) in execs.iter().filter(|e| e.1 == run) {
        let known = doc["nodes"][node.as_str()]["attempts"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(
            (1..=known as u64).contains(number),
            "{r}/{node}#{number} ran but the store has no such attempt"
        );
    }
}

#[test]
fn agents_killed_at_random_points_lose_no_node_and_double_no_success() {
    let kills_wanted = env_count("BATON_FAULT_KILLS", 20);
    let mut rng = Rng::from_env("t3");
    let mut c = Cluster::start("1s");
    let execs = c.dir.path().join("executions.log");
    let file = write_file(
        c.dir.path(),
        "churn.yaml",
        &churn_workflow(&mut rng, &execs),
    );
    let mut generation = 0;
    let mut next_name = || {
        generation += 1;
        format!("k{generation:03}")
    };
    let mut live = Vec::new();
    for _ in 0..4 {
        let name = next_name();
        c.start_agent(&name, 2, &AgentSpec::default());
        live.push(name);
    }
    let mut runs = vec![c.start_run(&file)];
    let mut killed: HashMap<String, i64> = HashMap::new();
    while killed.len() < kills_wanted {
        // Chaos timing, not synchronisation: the kill lands wherever the nodes happen to be.
        std::thread::sleep(Duration::from_millis(rng.range(50, 600)));
        // Prefer an agent that holds work, so that most kills hit some node's life.
        let busy = busy_agents(&c, &live);
        let pool = if busy.is_empty() { &live } else { &busy };
        let victim = pool[rng.range(0, pool.len() as u64) as usize].clone();
        killed.insert(victim.clone(), now_ms());
        c.kill_agent(&victim);
        live.retain(|n| *n != victim);
        let name = next_name();
        c.spawn_agent(&name, 2, &AgentSpec::default());
        live.push(name);
        // Keep work in flight for every agent: a run near its end has few nodes left to hit.
        let last = runs.last().expect("a run");
        if c.run_api(last)
            .is_some_and(|d| unfinished_nodes(&d) < CHURN_WIDTH)
        {
            runs.push(c.start_run(&file));
        }
    }
    let docs: Vec<Value> = runs.iter().map(|id| c.wait_run_done(id)).collect();
    let execs = executions(&execs);
    let mut churn = Churn::default();
    for doc in &docs {
        check_churn_run(doc, &killed, &execs, &mut churn);
    }
    assert!(
        !churn.agents_hit.is_empty(),
        "no kill hit a node: the test proves nothing"
    );
    let (p50, p99) = (
        quantile(&mut churn.requeue_ms, 0.5),
        quantile(&mut churn.requeue_ms, 0.99),
    );
    println!(
        "FAULTS t3 kills={} kills_hitting_nodes={} runs={} lost_attempts={} nodes_lost={} \
         duplicate_successes={} requeue_ms_p50={p50} requeue_ms_p99={p99} requeue_ms_max={}",
        killed.len(),
        churn.agents_hit.len(),
        docs.len(),
        churn.lost_attempts,
        churn.nodes_lost,
        churn.duplicate_successes,
        churn.requeue_ms.last().copied().unwrap_or(0),
    );
}

#[test]
fn a_frozen_agent_is_fenced_off_and_kills_its_stale_process() {
    let mut c = Cluster::start("1s");
    let log = c.dir.path().join("zombie.log");
    c.start_agent(
        "zombie",
        2,
        &AgentSpec {
            log: Some(&log),
            ..AgentSpec::default()
        },
    );
    let pids = c.dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let execs = c.dir.path().join("executions.log");
    // `hang` outlives the freeze; `late` ends while its agent is frozen, so its report can
    // only arrive after the lease ran out.
    let wf = format!(
        r#"
name: zombie
nodes:
  hang:
    run: 'if [ "$BATON_ATTEMPT" = 1 ]; then sleep 300 & echo $! > {p}/hang; wait; fi; echo "end $BATON_NODE $BATON_ATTEMPT" >> {e}'
  late:
    run: 'if [ "$BATON_ATTEMPT" = 1 ]; then echo $$ > {p}/late; sleep 1.5; fi; echo "end $BATON_NODE $BATON_ATTEMPT" >> {e}'
"#,
        p = pids.display(),
        e = execs.display()
    );
    let file = write_file(c.dir.path(), "zombie.yaml", &wf);
    let id = c.start_run(&file);
    let hang = read_pid(&pids.join("hang"));
    let late = read_pid(&pids.join("late"));
    c.signal_agent("zombie", Signal::SIGSTOP);

    // The server's clock alone decides: both leases run out and the attempts are lost.
    wait_for("both first attempts lost", || {
        let doc = c.run_api(&id)?;
        ["hang", "late"]
            .iter()
            .all(|n| doc["nodes"][n]["attempts"][0]["status"] == "error")
            .then_some(())
    });
    // `late` finished its work while its agent is frozen: a report is now due.
    wait_for("late's first execution to end", || {
        (!pid_alive(late)).then_some(())
    });
    assert!(
        pid_alive(hang),
        "nothing may kill hang's process but its agent"
    );

    c.start_agent("rescuer", 2, &AgentSpec::default());
    let doc = c.wait_run_done(&id);
    assert_eq!(doc["status"], "success", "{doc}");

    c.signal_agent("zombie", Signal::SIGCONT);
    // Waking up, the agent finds its leases gone: it kills the stale process itself.
    wait_for("the stale process killed by its agent", || {
        (!pid_alive(hang)).then_some(())
    });
    let late_handled = wait_for("the late report refused or dropped", || {
        let text = std::fs::read_to_string(&log).ok()?;
        ["report refused as stale", "attempt dropped unreported"]
            .into_iter()
            .find(|m| text.contains(m))
    });
    println!("late attempt on the frozen agent: {late_handled}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("lease not renewed in time; killing the attempt")
            || text.contains("the server says the attempt is stale; killing it"),
        "the frozen agent never said it killed its stale attempt:\n{text}"
    );

    // Whatever arrived late changed nothing: one success per node, on the rescuer.
    let doc = c.run_api(&id).expect("run document");
    assert_eq!(doc["status"], "success");
    for node in ["hang", "late"] {
        let attempts = doc["nodes"][node]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{node}: {attempts:?}");
        assert_eq!(attempts[0]["agent"], "zombie");
        assert_eq!(attempts[0]["status"], "error", "{node}: {attempts:?}");
        assert_eq!(attempts[0]["reason"], "lost");
        assert_eq!(attempts[1]["agent"], "rescuer");
        assert_eq!(attempts[1]["status"], "success");
    }
    // `late` really ran twice (at-least-once execution), yet only one success counts.
    let runs = executions_by_node(&execs);
    assert_eq!(runs.get("late"), Some(&vec![1, 2]), "{runs:?}");
    assert_eq!(runs.get("hang"), Some(&vec![2]), "{runs:?}");
}

/// The attempt numbers each node logged an `end` for, from `end NODE ATTEMPT` lines.
fn executions_by_node(execs: &Path) -> HashMap<String, Vec<u64>> {
    let mut by_node: HashMap<String, Vec<u64>> = HashMap::new();
    for line in std::fs::read_to_string(execs).unwrap_or_default().lines() {
        if let ["end", node, n] = line.split_whitespace().collect::<Vec<_>>()[..] {
            by_node
                .entry(node.to_string())
                .or_default()
                .push(n.parse().unwrap());
        }
    }
    for v in by_node.values_mut() {
        v.sort_unstable();
    }
    by_node
}

#[test]
fn an_agent_restarted_under_the_same_name_does_not_resurrect_old_attempts() {
    let mut c = Cluster::start("1s");
    c.start_agent("same", 1, &AgentSpec::default());
    let pids = c.dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let execs = c.dir.path().join("executions.log");
    let wf = format!(
        r#"
name: same
nodes:
  work:
    run: 'echo "end $BATON_NODE $BATON_ATTEMPT" >> {e}; if [ "$BATON_ATTEMPT" = 1 ]; then sleep 300 & echo $! > {p}/first; wait; fi'
"#,
        p = pids.display(),
        e = execs.display()
    );
    let file = write_file(c.dir.path(), "same.yaml", &wf);
    let id = c.start_run(&file);
    let orphan = read_pid(&pids.join("first"));
    c.kill_agent("same");
    // Back at once, before the old lease ran out, under the same name.
    c.start_agent("same", 1, &AgentSpec::default());

    let doc = c.wait_run_done(&id);
    // A SIGKILLed agent cannot clean up: its orphan would run on; end it ourselves.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(orphan), Signal::SIGKILL);
    assert_eq!(doc["status"], "success", "{doc}");
    let attempts = doc["nodes"]["work"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["status"], "error");
    assert_eq!(
        attempts[0]["reason"], "lost",
        "the old attempt is not the new agent's"
    );
    assert_eq!(attempts[1]["status"], "success");
    assert_eq!(attempts[1]["agent"], "same");
    let agents = c.api_get("/api/v1/agents").unwrap();
    let online: Vec<&Value> = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "same" && a["status"] == "online")
        .collect();
    assert_eq!(online.len(), 1, "one registration per name: {agents}");
    assert_eq!(
        executions_by_node(&execs).get("work"),
        Some(&vec![1, 2]),
        "the new agent ran attempt 2 only"
    );
}

#[test]
fn agents_with_skewed_wall_clocks_cause_no_spurious_reaps() {
    // Never skipped: a machine without faketime fails here and says how to get it.
    let probe = std::process::Command::new("faketime")
        .args(["-f", "+0", "true"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "faketime is missing: install it with `apt-get install -y faketime` (scripts/test.sh \
         does so when run as root)"
    );
    let mut c = Cluster::start("1s");
    let clocks = c.dir.path().join("clocks");
    std::fs::create_dir(&clocks).unwrap();
    let mut groups = Vec::new();
    for (name, skew) in [("ahead", "+1h"), ("behind", "-1h")] {
        c.start_agent(
            name,
            2,
            &AgentSpec {
                wrapper: &["faketime", "-f", skew],
                // Only the wall clock is off, as with a badly set host clock.
                env: &[("FAKETIME_DONT_FAKE_MONOTONIC", "1")],
                // Steps start from a clean environment: hand them faketime's variables,
                // so they see the agent's skewed clock as a host's processes would.
                flags: &[
                    "--pass-env",
                    "LD_PRELOAD,FAKETIME,FAKETIME_DONT_FAKE_MONOTONIC",
                ],
                ..AgentSpec::default()
            },
        );
        groups.push(GroupKill(c.agent_pid(name)));
    }
    // Each node runs three leases long and notes the wall clock it sees.
    let mut wf = String::from("name: skew\nnodes:\n");
    for i in 0..4 {
        let _ = writeln!(
            wf,
            "  s{i}: {{run: 'date +%s > {}/$BATON_NODE; sleep 3'}}",
            clocks.display()
        );
    }
    let file = write_file(c.dir.path(), "skew.yaml", &wf);
    let id = c.start_run(&file);
    let doc = c.wait_run_done(&id);
    assert_eq!(doc["status"], "success", "{doc}");
    let mut agents_used = BTreeSet::new();
    for i in 0..4 {
        let node = format!("s{i}");
        let attempts = doc["nodes"][&node]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{node} was reaped: {attempts:?}");
        assert_eq!(attempts[0]["status"], "success");
        let agent = attempts[0]["agent"].as_str().unwrap().to_string();
        // The agent's children inherit its clock: prove the skew was real.
        let seen: i64 = std::fs::read_to_string(clocks.join(&node))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let skew = seen - now_ms() / 1000;
        let expected = if agent == "ahead" { 3600 } else { -3600 };
        assert!(
            (skew - expected).abs() < 600,
            "{node} on {agent} saw a clock {skew} s off"
        );
        agents_used.insert(agent);
    }
    assert_eq!(agents_used.len(), 2, "both skewed agents ran nodes");
    drop(groups);
}

#[test]
fn repeated_late_and_stale_writes_change_nothing() {
    let c = Cluster::start("1s");
    // A hand-driven agent, so that every write can be sent twice, late or with a bad fence.
    let enroll = std::fs::read_to_string(c.data_dir().join("agent.token")).unwrap();
    let register = r#"{"name":"hand","labels":{},"slots":1,"functions":["shell"],"version":"0"}"#;
    let (status, body) = c
        .http(
            "POST",
            "/api/v1/agent/register",
            Some(enroll.trim()),
            Some(register),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let registered: Value = serde_json::from_str(&body).unwrap();
    let token = registered["token"].as_str().unwrap().to_string();
    let call = |path: &str, body: &str| {
        c.http(
            "POST",
            &format!("/api/v1/agent{path}"),
            Some(&token),
            Some(body),
        )
        .unwrap()
    };

    let file = write_file(
        c.dir.path(),
        "hand.yaml",
        "name: hand\nnodes:\n  a: {run: 'true'}\n  b: {needs: [a], run: 'true'}\n",
    );
    let id = c.start_run(&file);
    let (status, body) = call("/claim", r#"{"max":1,"wait_ms":10000}"#);
    assert_eq!(status, 200, "{body}");
    let claimed: Value = serde_json::from_str(&body).unwrap();
    let a = &claimed["assignments"][0];
    let (attempt, fence) = (
        a["attempt_id"].as_i64().unwrap(),
        a["fence"].as_i64().unwrap(),
    );
    let at = |what: &str| format!("/attempts/{attempt}/{what}");

    let start = format!(r#"{{"fence":{fence}}}"#);
    assert_eq!(call(&at("start"), &start).0, 204);
    assert_eq!(
        call(&at("start"), &start).0,
        204,
        "a repeated start is a no-op"
    );
    let bad_start = format!(r#"{{"fence":{}}}"#, fence + 1);
    assert_eq!(call(&at("start"), &bad_start).0, 409, "wrong fence");

    let success = format!(
        r#"{{"fence":{fence},"outcome":{{"state":"success","reason":"exit","exit_code":0}}}}"#
    );
    let first = call(&at("report"), &success);
    assert_eq!(first.0, 200, "{}", first.1);
    let again = call(&at("report"), &success);
    assert_eq!(again, first, "the same report twice gets the same answer");
    let other = format!(
        r#"{{"fence":{fence},"outcome":{{"state":"failure","reason":"exit","exit_code":1}}}}"#
    );
    assert_eq!(
        call(&at("report"), &other).0,
        409,
        "a second, different ending"
    );
    let stale = format!(
        r#"{{"fence":{},"outcome":{{"state":"success","reason":"exit","exit_code":0}}}}"#,
        fence + 1
    );
    assert_eq!(call(&at("report"), &stale).0, 409, "wrong fence");
    let logs = format!(
        r#"{{"fence":{},"seq":0,"stream":"stdout","data":"x"}}"#,
        fence + 1
    );
    assert_eq!(call(&at("logs"), &logs).0, 409, "logs with a wrong fence");
    // A late heartbeat for the ended attempt renews nothing and names it stale.
    let beat = format!(r#"{{"attempts":[{{"attempt_id":{attempt},"fence":{fence}}}]}}"#);
    let (status, body) = call("/heartbeat", &beat);
    assert_eq!(status, 200, "{body}");
    let beat: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(beat["stale"], serde_json::json!([attempt]), "{beat}");

    let doc = c.run_api(&id).unwrap();
    let attempts = doc["nodes"]["a"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{doc}");
    assert_eq!(attempts[0]["status"], "success");
    assert_eq!(attempts[0]["exit_code"], 0);
    assert_eq!(doc["nodes"]["a"]["status"], "success");
    assert_eq!(
        doc["nodes"]["b"]["status"], "ready",
        "released exactly once: {doc}"
    );
}
