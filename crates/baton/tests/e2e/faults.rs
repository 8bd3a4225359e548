//! Agents that die.

use crate::util::{Cluster, wait_for, write_file};

#[test]
fn killed_agent_leaves_a_lost_attempt_and_the_node_is_retried() {
    let mut c = Cluster::start("1s");
    c.add_agent("doomed", 1, &[]);
    let marker = c.dir.path().join("first-try");
    // The first attempt marks its try and hangs; a retry finds the mark and succeeds.
    let wf = format!(
        r#"
name: lost
nodes:
  work:
    run: "if [ -f {m} ]; then echo second try; else touch {m}; sleep 300; fi"
"#,
        m = marker.display()
    );
    let file = write_file(c.dir.path(), "lost.yaml", &wf);
    let out = c.cli(&["run", &file.to_string_lossy(), "--detach", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = doc["id"].as_str().unwrap().to_string();

    wait_for("first attempt running", || {
        (c.run_doc(&id)["nodes"]["work"]["status"] == "running" && marker.exists()).then_some(())
    });
    c.kill_agent("doomed");

    let doc = wait_for("attempt 1 lost", || {
        let doc = c.run_doc(&id);
        (doc["nodes"]["work"]["attempts"][0]["status"] == "error").then_some(doc)
    });
    let first = &doc["nodes"]["work"]["attempts"][0];
    assert_eq!(first["reason"], "lost");
    assert_eq!(first["agent"], "doomed");
    // The default policy retries a lost node: it is ready again, waiting for an agent.
    assert_eq!(doc["nodes"]["work"]["status"], "ready");

    c.add_agent("rescuer", 1, &[]);
    let doc = wait_for("run finished", || {
        let doc = c.run_doc(&id);
        (doc["status"] == "success").then_some(doc)
    });
    let attempts = doc["nodes"]["work"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["agent"], "rescuer");
    assert_eq!(attempts[1]["status"], "success");
}
