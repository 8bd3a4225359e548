//! Re-runs, run and queue timeouts, and offline agents, through real processes.

use std::path::Path;

use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::Value;

use crate::util::{Cluster, node_states, wait_for, write_file};

/// Lines in a marker file: how many times a node ran.
fn runs_of(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// `baton runs retry ... --json`: the exit code and the final document of the new run.
fn retry(c: &Cluster, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["runs", "retry"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = c.cli(&all);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "runs retry printed no document ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

#[test]
fn retry_from_a_failed_run_runs_only_what_did_not_succeed() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 2, &[]);
    let d = c.dir.path();
    let (prep, side, flaky, after) = (
        d.join("prep.count"),
        d.join("side.count"),
        d.join("flaky.count"),
        d.join("after.count"),
    );
    let fixed = d.join("fixed");
    let wf = format!(
        r#"
name: rerun
nodes:
  prep: {{run: "echo ran >> {prep}"}}
  side: {{run: "echo ran >> {side}"}}
  flaky: {{needs: [prep], run: ["echo ran >> {flaky}", "test -e {fixed}"]}}
  after: {{needs: [flaky], run: "echo ran >> {after}"}}
"#,
        prep = prep.display(),
        side = side.display(),
        flaky = flaky.display(),
        after = after.display(),
        fixed = fixed.display(),
    );
    let file = write_file(d, "rerun.yaml", &wf);
    let (code, first) = c.run_file(&file);
    assert_eq!(code, 1, "{first}");
    assert_eq!(first["status"], "failure");
    assert_eq!(node_states(&first)["after"], "skipped");
    let first_id = first["id"].as_str().expect("run id").to_owned();

    std::fs::write(&fixed, "").expect("fix the cause");
    let (code, second) = retry(&c, &[&first_id]);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["status"], "success", "{second}");
    assert_eq!(second["retry_of"], first_id.as_str());
    assert_eq!(second["nodes"]["prep"]["reused_from"], first_id.as_str());
    assert_eq!(second["nodes"]["prep"]["attempts"], serde_json::json!([]));
    assert_eq!(
        [
            runs_of(&prep),
            runs_of(&side),
            runs_of(&flaky),
            runs_of(&after)
        ],
        [1, 1, 2, 1],
        "successful nodes were not executed again"
    );
    let second_id = second["id"].as_str().expect("run id").to_owned();
    assert_eq!(
        c.run_doc(&first_id)["retried_by"],
        serde_json::json!([second_id.as_str()])
    );

    // --from runs the node and everything below it again, even successes.
    let (code, third) = retry(&c, &[&second_id, "--from", "prep"]);
    assert_eq!(code, 0, "{third}");
    assert_eq!(
        [
            runs_of(&prep),
            runs_of(&side),
            runs_of(&flaky),
            runs_of(&after)
        ],
        [2, 1, 3, 2]
    );
    assert_eq!(
        third["nodes"]["side"]["reused_from"],
        first_id.as_str(),
        "side last ran in the first run"
    );

    let out = c.cli(&["runs", "retry", &first_id, "--from", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");
    let text = String::from_utf8_lossy(&c.cli(&["runs", "show", &second_id]).stdout).into_owned();
    assert!(text.contains(&format!("retry of  {first_id}")), "{text}");
    assert!(text.contains("kept from run"), "{text}");
}

/// True while `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name: `123 (sleep) S ...`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

#[test]
fn a_run_past_its_timeout_ends_error_and_leaves_no_process() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 2, &[]);
    let pidfile = c.dir.path().join("sleep.pid");
    let wf = format!(
        r#"
name: bounded
timeout: 2s
nodes:
  hang: {{run: "sleep 300 & echo $! > {pid}; wait"}}
  later: {{needs: [hang], run: "echo never"}}
"#,
        pid = pidfile.display()
    );
    let file = write_file(c.dir.path(), "bounded.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["status"], "error", "{doc}");
    assert_eq!(doc["reason"], "timeout", "{doc}");
    let hang = &doc["nodes"]["hang"];
    assert_eq!(hang["status"], "error", "{doc}");
    assert_eq!(hang["attempts"][0]["reason"], "timeout", "{doc}");
    assert_eq!(node_states(&doc)["later"], "canceled");

    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("the node wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    wait_for("the timed-out node's process to be gone", || {
        (!alive(pid)).then_some(())
    });
}

#[test]
fn a_node_no_agent_can_run_ends_error_naming_the_missing_label() {
    let mut c = Cluster::start_with(&["--lease", "5s", "--queue-timeout", "1s"]);
    c.add_agent("linux", 1, &["os=linux"]);
    let file = write_file(
        c.dir.path(),
        "gpu.yaml",
        r#"
name: gpu
nodes:
  train: {run: "echo never", selector: {gpu: "yes"}}
  publish: {needs: [train], run: "echo never"}
  lint: {run: "true"}
"#,
    );
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["status"], "error", "{doc}");
    let train = &doc["nodes"]["train"];
    assert_eq!(train["status"], "error", "{doc}");
    assert_eq!(train["reason"], "no_agent", "{doc}");
    let message = train["message"].as_str().unwrap_or_default();
    assert!(message.contains("gpu=yes"), "{message}");
    assert!(message.contains("1s"), "{message}");
    let states = node_states(&doc);
    assert_eq!(states["publish"], "skipped");
    assert_eq!(states["lint"], "success");
    let id = doc["id"].as_str().expect("run id");
    let text = String::from_utf8_lossy(&c.cli(&["runs", "show", id]).stdout).into_owned();
    assert!(text.contains("gpu=yes"), "{text}");
}

#[test]
fn an_agent_whose_heartbeats_stop_is_listed_offline() {
    let mut c = Cluster::start("1s");
    c.add_agent("short-lived", 1, &[]);
    c.kill_agent("short-lived");
    wait_for("the killed agent to be listed offline", || {
        let out = c.cli(&["agents", "list"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .any(|l| l.starts_with("short-lived") && l.contains("offline"))
            .then_some(())
    });
}
