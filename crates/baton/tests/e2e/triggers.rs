//! Trigger rules (`when`) through a real server and real agents.

use crate::util::{Cluster, node_states, write_file};

/// A failed build skips `deploy` (all_success), runs `notify` (any_failure) and `report`
/// (all_done); of two mirrors, the one that succeeds lets `fetch` (any_success) run while
/// the other is still running. The run fails, since the build and a mirror did.
#[test]
fn every_rule_in_one_run() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 4, &[]);
    let fetched = c.dir.path().join("fetched");
    // mirror1 fails only once fetch has run, so its exit code proves fetch did not wait
    // for it (2 would mean fetch never came).
    let wf = format!(
        r#"
name: rules
nodes:
  build: {{run: "exit 3"}}
  deploy: {{needs: [build], run: "echo never"}}
  notify: {{needs: [build], when: any_failure, run: "echo build failed"}}
  report: {{needs: [deploy, notify], when: all_done, run: "echo report"}}
  mirror1:
    run: "i=0; while [ $i -lt 400 ]; do if [ -f {fetched} ]; then exit 1; fi; sleep 0.05; i=$((i+1)); done; exit 2"
  mirror2: {{run: "echo ok"}}
  fetch: {{needs: [mirror1, mirror2], when: any_success, run: "touch {fetched}"}}
"#,
        fetched = fetched.display()
    );
    let file = write_file(c.dir.path(), "rules.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["status"], "failure");
    let states = node_states(&doc);
    assert_eq!(states["build"], "failure");
    assert_eq!(states["deploy"], "skipped");
    assert_eq!(states["notify"], "success");
    assert_eq!(states["report"], "success");
    assert_eq!(states["mirror2"], "success");
    assert_eq!(states["fetch"], "success");
    assert_eq!(states["mirror1"], "failure");
    assert_eq!(
        doc["nodes"]["mirror1"]["attempts"][0]["exit_code"], 1,
        "fetch ran while mirror1 was still running"
    );
    assert!(
        doc["nodes"]["deploy"]["attempts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// When everything succeeds, the clean-up node (any_failure) is skipped, the one after it
/// (all_done) still runs, and the run succeeds: skipped nodes do not count.
#[test]
fn clean_up_is_skipped_when_everything_succeeds() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 2, &[]);
    let file = write_file(
        c.dir.path(),
        "green.yaml",
        r#"
name: green
nodes:
  test: {run: "echo ok"}
  cleanup: {needs: [test], when: any_failure, run: "echo never"}
  after-cleanup: {needs: [cleanup], run: "echo never"}
  summary: {needs: [after-cleanup], when: all_done, run: "echo summary"}
"#,
    );
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["status"], "success");
    let states = node_states(&doc);
    assert_eq!(states["test"], "success");
    assert_eq!(states["cleanup"], "skipped");
    assert_eq!(states["after-cleanup"], "skipped");
    assert_eq!(states["summary"], "success");
}
