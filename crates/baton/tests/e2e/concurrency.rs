//! Workflow concurrency limits and run priorities through real processes: each
//! `on_conflict` policy with a limit of one, and `baton run --priority`.

use std::path::Path;

use serde_json::Value;

use crate::util::{Cluster, baton, parse_time_ms, pid_alive, read_pid, wait_for, write_file};

/// A workflow limited to one active run whose node logs `start`/`end` lines (run id and a
/// nanosecond clock) in `log` and, until `release` exists, waits.
fn gated(dir: &Path, on_conflict: &str) -> std::path::PathBuf {
    let log = dir.join("log");
    let release = dir.join("release");
    let wf = format!(
        r#"
name: gated
concurrency: {{limit: 1, on_conflict: {on_conflict}}}
nodes:
  work:
    run:
      - echo "start $BATON_RUN_ID $(date +%s%N)" >> {log}
      - while [ ! -e {release} ]; do sleep 0.05; done
      - echo "end $BATON_RUN_ID $(date +%s%N)" >> {log}
"#,
        log = log.display(),
        release = release.display(),
    );
    write_file(dir, "gated.yaml", &wf)
}

/// The `log` lines as (event, run id, time).
fn log_lines(dir: &Path) -> Vec<(String, String, u128)> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2].parse().expect("a clock reading"),
            )
        })
        .collect()
}

/// `queue`: the second run waits as `created`, saying why, while the first runs; it starts
/// only after the first ended, as the times its node logged show.
#[test]
fn queue_starts_the_next_run_only_after_the_first_ended() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 4, &[]);
    let d = c.dir.path();
    let file = gated(d, "queue");
    let first = c.start_run(&file);
    wait_for("the first run's node to start", || {
        (log_lines(d).len() == 1).then_some(())
    });
    let second = c.start_run(&file);
    let doc = c.run_doc(&second);
    assert_eq!(doc["status"], "created", "{doc}");
    assert_eq!(doc["nodes"]["work"]["status"], "waiting");
    assert_eq!(
        doc["message"], "queued: workflow gated has 1 active run (limit 1)",
        "{doc}"
    );
    let shown = c.cli(&["runs", "show", &second]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("status    created"), "{text}");
    assert!(text.contains("note      queued: workflow gated"), "{text}");

    std::fs::write(d.join("release"), "").expect("release");
    let first_doc = c.wait_run_done(&first);
    let second_doc = c.wait_run_done(&second);
    assert_eq!(first_doc["status"], "success");
    assert_eq!(second_doc["status"], "success", "{second_doc}");
    assert!(second_doc.get("message").is_none(), "{second_doc}");
    let events: Vec<(String, String)> = log_lines(d)
        .into_iter()
        .map(|(e, run, _)| (e, run))
        .collect();
    assert_eq!(
        events,
        [
            ("start".to_owned(), first.clone()),
            ("end".to_owned(), first.clone()),
            ("start".to_owned(), second.clone()),
            ("end".to_owned(), second.clone()),
        ],
        "the runs' processes never overlapped"
    );
    let times: Vec<u128> = log_lines(d).into_iter().map(|(_, _, t)| t).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

/// `cancel_new`: a run started while the workflow is full is canceled at once, naming the
/// run in its way; `baton run` exits 1 as for any canceled run. The first run goes on.
#[test]
fn cancel_new_cancels_the_new_run_at_once() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 4, &[]);
    let d = c.dir.path();
    let file = gated(d, "cancel_new");
    let first = c.start_run(&file);
    wait_for("the first run's node to start", || {
        (log_lines(d).len() == 1).then_some(())
    });
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["status"], "canceled");
    assert_eq!(doc["reason"], "concurrency");
    assert_eq!(doc["nodes"]["work"]["status"], "canceled");
    let message = doc["message"].as_str().expect("a message");
    assert!(message.contains(&first), "{message}");
    assert!(message.contains("cancel_new"), "{message}");

    std::fs::write(d.join("release"), "").expect("release");
    assert_eq!(c.wait_run_done(&first)["status"], "success");
    assert_eq!(log_lines(d).len(), 2, "only the first run ran");
}

/// `cancel_running`: a new run cancels the one in its way (its process is killed) and runs
/// to success once it stopped, never beside it.
#[test]
fn cancel_running_kills_the_old_run_then_runs_the_new_one() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 4, &[]);
    let d = c.dir.path();
    let first_mark = d.join("first");
    let pid = d.join("first.pid");
    // The first run to get here holds on until it is killed; any later one goes through.
    let wf = format!(
        r#"
name: latest
concurrency: {{limit: 1, on_conflict: cancel_running}}
nodes:
  work:
    run: |
      if mkdir {first_mark} 2>/dev/null; then
        echo $$ > {pid}
        while true; do sleep 0.05; done
      fi
      echo done
"#,
        first_mark = first_mark.display(),
        pid = pid.display(),
    );
    let file = write_file(d, "latest.yaml", &wf);
    let first = c.start_run(&file);
    let first_pid = read_pid(&pid);
    assert!(pid_alive(first_pid));

    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["status"], "success");
    let old = c.wait_run_done(&first);
    assert_eq!(old["status"], "canceled", "{old}");
    assert_eq!(old["reason"], "concurrency");
    assert!(
        old["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancel_running")),
        "{old}"
    );
    wait_for("the old run's process to be killed", || {
        (!pid_alive(first_pid)).then_some(())
    });
    let ended = |doc: &Value, key: &str| {
        parse_time_ms(
            doc["nodes"]["work"]["attempts"][0][key]
                .as_str()
                .expect(key),
        )
    };
    assert!(
        ended(&old, "finished_at") <= ended(&doc, "started_at"),
        "the new run started after the old one stopped: {old} {doc}"
    );
}

/// `baton run --priority N` gives the run that priority, shown by `runs show`, in server
/// and self-contained mode; a priority out of range is refused by the CLI (exit 2) and by
/// the API (400).
#[test]
fn run_priority_is_accepted_and_shown() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 2, &[]);
    let d = c.dir.path();
    let file = write_file(d, "p.yaml", "name: p\nnodes:\n  a: {run: 'true'}\n");
    let out = c.cli(&["run", &file.to_string_lossy(), "--priority", "-7", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("run document");
    assert_eq!(doc["priority"], -7);
    let id = doc["id"].as_str().expect("run id");
    let shown = c.cli(&["runs", "show", id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("priority  -7"), "{text}");
    let listed: Value =
        serde_json::from_slice(&c.cli(&["runs", "list", "--json"]).stdout).expect("runs");
    assert_eq!(listed[0]["priority"], -7, "{listed}");

    let out = c.cli(&["run", &file.to_string_lossy(), "--priority", "2000000"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--priority"), "{err}");
    let (status, body) = c
        .http(
            "POST",
            "/api/v1/runs",
            Some(&c.admin),
            Some(r#"{"workflow": "p", "priority": 2000000}"#),
        )
        .expect("http");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("priority 2000000 is out of range"), "{body}");

    let home = tempfile::tempdir().expect("home");
    let out = baton(home.path())
        .args(["run", "--json", "--priority", "12"])
        .arg(&file)
        .output()
        .expect("run baton");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("run document");
    assert_eq!(doc["priority"], 12);
}
