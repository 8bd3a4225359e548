//! Resources and priorities through a real server and real agents: nodes that share a
//! resource never overlap, a counted resource never has more holders than its count, and
//! higher-priority runs are claimed first.

use std::path::Path;

use serde_json::Value;

use crate::util::{Cluster, wait_for, write_file};

/// `(start, end)` of each attempt that appended a line `start end` (nanoseconds) to `log`.
fn intervals(log: &Path) -> Vec<(u128, u128)> {
    let text = std::fs::read_to_string(log).expect("interval log");
    let mut out: Vec<(u128, u128)> = text
        .lines()
        .map(|line| {
            let (s, e) = line.split_once(' ').expect("`start end`");
            (s.parse().expect("start time"), e.parse().expect("end time"))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The most intervals open at one instant (an interval ending when another starts does not
/// overlap it).
fn most_at_once(intervals: &[(u128, u128)]) -> usize {
    let mut edges: Vec<(u128, i32)> = intervals
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    // Ends sort before starts at the same instant.
    edges.sort_unstable();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    most as usize
}

/// A shell line that records when it ran into `log`, holding on for `hold` seconds (or,
/// with a gate, until the gate file exists).
fn timed(log: &Path, hold: &str) -> String {
    format!(
        "s=$(date +%s%N); {hold}; echo \"$s $(date +%s%N)\" >> {log}",
        log = log.display()
    )
}

/// Creates a run through the API, at a priority; returns its id.
fn create_run(c: &Cluster, workflow: &str, priority: Option<i32>) -> String {
    let mut body = serde_json::json!({ "workflow": workflow });
    if let Some(p) = priority {
        body["priority"] = p.into();
    }
    let (status, answer) = c
        .http(
            "POST",
            "/api/v1/runs",
            Some(&c.admin),
            Some(&body.to_string()),
        )
        .expect("create run");
    assert_eq!(status, 201, "{answer}");
    let doc: Value = serde_json::from_str(&answer).expect("run document");
    doc["id"].as_str().expect("run id").to_owned()
}

fn apply(c: &Cluster, name: &str, text: &str) {
    let file = write_file(c.dir.path(), name, text);
    let out = c.cli(&["workflows", "apply", &file.to_string_lossy()]);
    assert!(
        out.status.success(),
        "apply {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `baton resources list --json`.
fn resources(c: &Cluster) -> Value {
    let out = c.cli(&["resources", "list", "--json"]);
    assert!(
        out.status.success(),
        "resources list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("resources JSON")
}

/// Five nodes naming one resource, in three runs at once on two agents with free slots:
/// no two attempts overlap, and every node succeeds.
#[test]
fn nodes_sharing_a_resource_never_overlap_across_runs() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 4, &[]);
    c.add_agent("a2", 4, &[]);
    let log = c.dir.path().join("intervals");
    let step = timed(&log, "sleep 0.2");
    let mut wf = String::from("name: shared\nnodes:\n");
    for n in ["a", "b", "c", "d", "e"] {
        wf.push_str(&format!("  {n}:\n    resources: [db]\n    run: '{step}'\n"));
    }
    apply(&c, "shared.yaml", &wf);
    let runs: Vec<String> = (0..3).map(|_| create_run(&c, "shared", None)).collect();
    for run in &runs {
        let doc = c.wait_run_done(run);
        assert_eq!(doc["status"], "success", "{doc}");
    }
    let got = intervals(&log);
    assert_eq!(got.len(), 15, "every node ran once: {got:?}");
    assert_eq!(most_at_once(&got), 1, "two holders overlapped: {got:?}");
    assert_eq!(
        resources(&c),
        serde_json::json!([]),
        "nothing held at the end"
    );
}

/// A resource with `count: 2` shared by twelve nodes on three agents with six slots: two
/// hold it at once (seen in `baton resources list`), never three.
#[test]
fn a_counted_resource_has_at_most_its_count_of_holders() {
    let mut c = Cluster::start("5s");
    for name in ["a1", "a2", "a3"] {
        c.add_agent(name, 2, &[]);
    }
    let log = c.dir.path().join("intervals");
    let gate = c.dir.path().join("gate");
    let hold = format!(
        "while [ ! -f {gate} ]; do sleep 0.05; done; sleep 0.1",
        gate = gate.display()
    );
    let step = timed(&log, &hold);
    let mut wf = String::from("name: pool\nnodes:\n");
    for i in 0..6 {
        wf.push_str(&format!(
            "  n{i}:\n    resources: [{{name: pool, count: 2}}]\n    run: '{step}'\n"
        ));
    }
    apply(&c, "pool.yaml", &wf);
    let runs = [create_run(&c, "pool", None), create_run(&c, "pool", None)];

    // Until the gate opens the first two holders stay: the listing shows them and ten
    // nodes waiting, whatever free slots the agents have.
    let listed = wait_for("two holders of pool", || {
        let list = resources(&c);
        let pool = list
            .as_array()?
            .iter()
            .find(|r| r["name"] == "pool")?
            .clone();
        (pool["holders"].as_array()?.len() == 2 && pool["waiting"] == 10).then_some(pool)
    });
    assert_eq!(listed["holders"][0]["count"], 2, "{listed}");
    assert_eq!(listed["waiters"].as_array().map(Vec::len), Some(10));
    let text = c.cli(&["resources", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.matches("held").count(), 2, "{text}");
    assert_eq!(text.matches("waiting #").count(), 10, "{text}");

    std::fs::write(&gate, "").expect("open the gate");
    for run in &runs {
        let doc = c.wait_run_done(run);
        assert_eq!(doc["status"], "success", "{doc}");
    }
    let got = intervals(&log);
    assert_eq!(got.len(), 12, "{got:?}");
    assert!(most_at_once(&got) <= 2, "more than two holders: {got:?}");
}

/// One agent with one slot, kept busy by a blocker while runs of several priorities are
/// created: once it frees, they run highest priority first, equal priorities in the order
/// they were created.
#[test]
fn higher_priority_runs_are_claimed_first() {
    let mut c = Cluster::start("5s");
    c.add_agent("solo", 1, &[]);
    let gate = c.dir.path().join("gate");
    let order = c.dir.path().join("order");
    apply(
        &c,
        "blocker.yaml",
        &format!(
            "name: blocker\nnodes:\n  wait:\n    run: 'while [ ! -f {gate} ]; do sleep 0.05; done'\n",
            gate = gate.display()
        ),
    );
    apply(
        &c,
        "job.yaml",
        &format!(
            "name: job\nnodes:\n  note:\n    run: 'echo \"$BATON_RUN_ID\" >> {order}'\n",
            order = order.display()
        ),
    );
    let blocker = create_run(&c, "blocker", None);
    wait_for("the blocker to run", || {
        let doc = c.run_api(&blocker)?;
        (doc["nodes"]["wait"]["status"] == "running").then_some(())
    });

    let low1 = create_run(&c, "job", None);
    let high = create_run(&c, "job", Some(5));
    let low2 = create_run(&c, "job", Some(0));
    let neg = create_run(&c, "job", Some(-1));
    let mid = create_run(&c, "job", Some(2));

    std::fs::write(&gate, "").expect("open the gate");
    for run in [&blocker, &low1, &high, &low2, &neg, &mid] {
        let doc = c.wait_run_done(run);
        assert_eq!(doc["status"], "success", "{doc}");
    }
    let got: Vec<String> = std::fs::read_to_string(&order)
        .expect("order file")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, vec![high, mid, low1, low2, neg]);
}
