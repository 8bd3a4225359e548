//! Ending work on purpose: agent SIGTERM with a grace, a second SIGTERM, cancel, node
//! timeout. Whatever way an attempt is ended, no process of it survives, not even one the
//! script sent to the background.

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;

use crate::util::{AgentSpec, Cluster, node_states, pid_alive, read_pid, wait_for, write_file};

/// A node script whose first attempt hangs in a background child (its pid in `PIDS/NODE`)
/// and whose later attempts succeed at once.
fn hanging_first_attempt(pids: &std::path::Path) -> String {
    format!(
        r#"'if [ "$BATON_ATTEMPT" = 1 ]; then sleep 300 & echo $! > {}/$BATON_NODE; wait; fi'"#,
        pids.display()
    )
}

fn pids_dir(c: &Cluster) -> std::path::PathBuf {
    let pids = c.dir.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    pids
}

#[test]
fn sigterm_lets_work_finish_within_the_grace_and_hands_back_the_rest() {
    let mut c = Cluster::start("1s");
    let log = c.dir.path().join("leaving.log");
    c.start_agent(
        "leaving",
        2,
        &AgentSpec {
            flags: &["--shutdown-grace", "3s"],
            log: Some(&log),
            ..AgentSpec::default()
        },
    );
    let pids = pids_dir(&c);
    let wf = format!(
        r#"
name: leaving
nodes:
  quick:
    run: 'touch {p}/quick-started; sleep 1'
  slow:
    run: {slow}
"#,
        p = pids.display(),
        slow = hanging_first_attempt(&pids)
    );
    let file = write_file(c.dir.path(), "leaving.yaml", &wf);
    let id = c.start_run(&file);
    let slow = read_pid(&pids.join("slow"));
    wait_for("quick to start", || {
        pids.join("quick-started").exists().then_some(())
    });
    c.signal_agent("leaving", Signal::SIGTERM);

    let status = c.wait_agent_exit("leaving");
    assert!(status.success(), "the agent exited with {status:?}");
    assert!(!pid_alive(slow), "a process of the killed attempt survived");
    assert_eq!(c.agent_status("leaving").as_deref(), Some("gone"));
    let doc = c.run_api(&id).unwrap();
    let quick = &doc["nodes"]["quick"]["attempts"][0];
    assert_eq!(
        quick["status"], "success",
        "finished within the grace: {doc}"
    );
    let slow_first = &doc["nodes"]["slow"]["attempts"][0];
    assert_eq!(slow_first["status"], "canceled", "{doc}");
    assert_eq!(slow_first["reason"], "shutdown");
    // A shutdown hands the node back: the default policy retries it elsewhere.
    assert_eq!(doc["nodes"]["slow"]["status"], "ready", "{doc}");

    c.start_agent("next", 1, &AgentSpec::default());
    let doc = c.wait_run_done(&id);
    assert_eq!(doc["status"], "success", "{doc}");
    let attempts = doc["nodes"]["slow"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["agent"], "next");
}

#[test]
fn a_second_sigterm_stops_the_agent_at_once_and_kills_its_work() {
    let mut c = Cluster::start("1s");
    let log = c.dir.path().join("stubborn.log");
    c.start_agent(
        "stubborn",
        1,
        &AgentSpec {
            flags: &["--shutdown-grace", "300s"],
            log: Some(&log),
            ..AgentSpec::default()
        },
    );
    let pids = pids_dir(&c);
    let wf = format!(
        "name: stubborn\nnodes:\n  hang:\n    run: {}\n",
        hanging_first_attempt(&pids)
    );
    let file = write_file(c.dir.path(), "stubborn.yaml", &wf);
    let id = c.start_run(&file);
    let hang = read_pid(&pids.join("hang"));
    c.signal_agent("stubborn", Signal::SIGTERM);
    wait_for("the agent to start draining", || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("stopped claiming")
            .then_some(())
    });
    c.signal_agent("stubborn", Signal::SIGTERM);
    // Far sooner than the 300 s grace.
    let status = c.wait_agent_exit("stubborn");
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(status.signal(), None);
    wait_for("the attempt's processes to die", || {
        (!pid_alive(hang)).then_some(())
    });
    // Nothing was reported: the lease runs out and the node is retried.
    let doc = wait_for("the attempt to be lost", || {
        let doc = c.run_api(&id)?;
        (doc["nodes"]["hang"]["attempts"][0]["status"] == "error").then_some(doc)
    });
    assert_eq!(doc["nodes"]["hang"]["attempts"][0]["reason"], "lost");
}

#[test]
fn cancel_kills_every_process_of_running_attempts() {
    let mut c = Cluster::start("1s");
    c.start_agent("worker", 2, &AgentSpec::default());
    let pids = pids_dir(&c);
    let hang = hanging_first_attempt(&pids);
    let wf = format!(
        "name: cancel\nnodes:\n  a:\n    run: {hang}\n  b:\n    run: {hang}\n  after:\n    needs: [a, b]\n    run: 'true'\n"
    );
    let file = write_file(c.dir.path(), "cancel.yaml", &wf);
    let id = c.start_run(&file);
    let a = read_pid(&pids.join("a"));
    let b = read_pid(&pids.join("b"));
    let out = c.cli(&["runs", "cancel", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = c.wait_run_done(&id);
    assert_eq!(doc["status"], "canceled", "{doc}");
    let states = node_states(&doc);
    assert_eq!(states["a"], "canceled");
    assert_eq!(states["b"], "canceled");
    assert_eq!(states["after"], "canceled");
    for node in ["a", "b"] {
        let attempts = doc["nodes"][node]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "a canceled run retries nothing");
        assert_eq!(attempts[0]["status"], "canceled");
    }
    for (node, pid) in [("a", a), ("b", b)] {
        wait_for(&format!("{node}'s background child to die"), || {
            (!pid_alive(pid)).then_some(())
        });
    }
    // Canceling again is a clear no-op error.
    let again = c.cli(&["runs", "cancel", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already finished"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn node_timeout_kills_the_whole_process_group() {
    let mut c = Cluster::start("1s");
    c.start_agent("worker", 1, &AgentSpec::default());
    let pids = pids_dir(&c);
    let wf = format!(
        "name: slowpoke\nnodes:\n  slow:\n    timeout: 1s\n    run: {}\n",
        hanging_first_attempt(&pids)
    );
    let file = write_file(c.dir.path(), "timeout.yaml", &wf);
    let id = c.start_run(&file);
    let child = read_pid(&pids.join("slow"));
    let doc = c.wait_run_done(&id);
    assert_eq!(doc["status"], "error", "{doc}");
    let attempts = doc["nodes"]["slow"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "no retry on timeout by default");
    assert_eq!(attempts[0]["status"], "error");
    assert_eq!(attempts[0]["reason"], "timeout");
    assert!(
        !pid_alive(child),
        "the background child outlived the timeout"
    );
}
