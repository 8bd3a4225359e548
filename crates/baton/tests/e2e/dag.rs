//! Workflows through a real server and real agents.

use std::collections::BTreeSet;

use crate::util::{Cluster, node_states, write_file};

#[test]
fn diamond_runs_in_dependency_order() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 4, &[]);
    let log = c.dir.path().join("order.log");
    let wf = format!(
        r#"
name: diamond
nodes:
  a: {{run: "echo a >> {log}"}}
  b: {{needs: [a], run: "sleep 0.1; echo b >> {log}"}}
  c: {{needs: [a], run: "echo c >> {log}"}}
  d: {{needs: [b, c], run: "echo d >> {log}"}}
"#,
        log = log.display()
    );
    let file = write_file(c.dir.path(), "diamond.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["status"], "success");
    let order: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(order[0], "a");
    assert_eq!(order[3], "d");
    let middle: BTreeSet<&str> = order[1..3].iter().map(String::as_str).collect();
    assert_eq!(middle, BTreeSet::from(["b", "c"]));
}

#[test]
fn failure_skips_downstream_while_sibling_branch_finishes() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 2, &[]);
    let file = write_file(
        c.dir.path(),
        "fail.yaml",
        r#"
name: failing
nodes:
  bad: {run: "exit 7"}
  after-bad: {needs: [bad], run: "echo never"}
  later: {needs: [after-bad], run: "echo never"}
  good: {run: "sleep 0.2"}
  after-good: {needs: [good], run: "echo fine"}
"#,
    );
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1);
    assert_eq!(doc["status"], "failure");
    let states = node_states(&doc);
    assert_eq!(states["bad"], "failure");
    assert_eq!(states["after-bad"], "skipped");
    assert_eq!(states["later"], "skipped");
    assert_eq!(states["good"], "success");
    assert_eq!(states["after-good"], "success");
    assert_eq!(doc["nodes"]["bad"]["attempts"][0]["exit_code"], 7);
    assert!(
        doc["nodes"]["after-bad"]["attempts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn command_list_stops_at_first_failing_command() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 1, &[]);
    let marker = c.dir.path().join("third-ran");
    let wf = format!(
        r#"
name: list
nodes:
  steps:
    run: ["echo first-command", "false", "touch {}"]
"#,
        marker.display()
    );
    let file = write_file(c.dir.path(), "list.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1);
    assert_eq!(doc["nodes"]["steps"]["status"], "failure");
    assert!(!marker.exists(), "a command after the failing one ran");
    let id = doc["id"].as_str().unwrap();
    let logs = c.cli(&["runs", "logs", id, "steps"]);
    assert!(logs.status.success());
    assert!(String::from_utf8_lossy(&logs.stdout).contains("first-command"));
}

#[test]
fn work_dir_is_removed_after_the_attempt() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 1, &[]);
    let record = c.dir.path().join("pwd.txt");
    let wf = format!(
        r#"
name: workdir
nodes:
  show:
    run:
      - pwd > {rec}
      - echo data > scratch.txt
      - test -f scratch.txt
"#,
        rec = record.display()
    );
    let file = write_file(c.dir.path(), "wd.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    let dir = std::fs::read_to_string(&record).unwrap();
    let dir = std::path::Path::new(dir.trim());
    assert!(dir.starts_with(c.work_dir("a1")), "ran in {dir:?}");
    assert!(!dir.exists(), "work dir {dir:?} still exists");
}

#[test]
fn hundred_node_dag_uses_every_agent() {
    let mut c = Cluster::start("5s");
    for name in ["a1", "a2", "a3"] {
        c.add_agent(name, 2, &[]);
    }
    // Ten layers of ten; every node needs two nodes of the layer before.
    let mut wf = String::from("name: hundred\nnodes:\n");
    for layer in 0..10 {
        for i in 0..10 {
            wf.push_str(&format!("  n{layer}-{i}:\n    run: sleep 0.05\n"));
            if layer > 0 {
                wf.push_str(&format!(
                    "    needs: [n{}-{}, n{}-{}]\n",
                    layer - 1,
                    i,
                    layer - 1,
                    (i + 1) % 10
                ));
            }
        }
    }
    let file = write_file(c.dir.path(), "hundred.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    let nodes = doc["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 100);
    let mut agents = BTreeSet::new();
    for (id, node) in nodes {
        assert_eq!(node["status"], "success", "{id}");
        let attempts = node["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{id} ran more than once");
        agents.insert(attempts[0]["agent"].as_str().unwrap().to_string());
    }
    assert_eq!(
        agents,
        BTreeSet::from(["a1".into(), "a2".into(), "a3".into()])
    );
}

#[test]
fn selector_and_function_route_nodes_to_matching_agents() {
    let mut c = Cluster::start("5s");
    c.add_agent("linux", 2, &["os=linux"]);
    c.add_agent("plain", 2, &[]);
    let file = write_file(
        c.dir.path(),
        "sel.yaml",
        r#"
name: routed
nodes:
  on-linux: {run: "true", selector: {os: linux}}
  also-linux: {needs: [on-linux], run: "true", selector: {os: linux}}
  builtin: {uses: noop}
"#,
    );
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    for n in ["on-linux", "also-linux"] {
        assert_eq!(doc["nodes"][n]["attempts"][0]["agent"], "linux", "{n}");
    }
    assert_eq!(doc["nodes"]["builtin"]["status"], "success");
}
