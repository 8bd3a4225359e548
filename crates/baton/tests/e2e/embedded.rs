//! `baton run` with nothing set up: embedded server and local agents.

use std::path::PathBuf;

use crate::util::{baton, node_states};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

#[test]
fn self_contained_run_of_the_ci_example_succeeds() {
    let home = tempfile::tempdir().unwrap();
    let out = baton(home.path())
        .args(["run", "--json"])
        .arg(example("ci-pipeline.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "success");
    assert!(node_states(&doc).values().all(|s| s == "success"), "{doc}");
}

#[test]
fn self_contained_run_of_the_nightly_example_merges_and_passes_outputs() {
    let home = tempfile::tempdir().unwrap();
    let out = baton(home.path())
        .args(["run", "--json", "--agents", "3"])
        .arg(example("nightly.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "success");
    assert_eq!(doc["priority"], 5);
    let states = node_states(&doc);
    assert_eq!(states["roll-back"], "skipped", "{doc}");
    assert_eq!(states["summary"], "success", "{doc}");
    assert_eq!(states["publish"], "success", "{doc}");
    let artifact = doc["nodes"]["build-arm64"]["outputs"]["artifact"]
        .as_str()
        .unwrap_or_default();
    assert!(
        artifact.starts_with("app-nightly-") && artifact.ends_with("-arm64.tar"),
        "{doc}"
    );
}

#[test]
fn self_contained_run_of_a_failing_workflow_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let out = baton(home.path())
        .args(["run", "--json"])
        .arg(example("failing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states = node_states(&doc);
    assert_eq!(states["migrate"], "failure");
    assert_eq!(states["deploy"], "skipped");
    assert_eq!(states["publish-docs"], "success");
}

#[test]
fn plain_output_shows_progress_and_summary() {
    let home = tempfile::tempdir().unwrap();
    let out = baton(home.path())
        .arg("run")
        .arg(example("builtins.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wait"), "{err}");
    assert!(err.contains("success"), "{err}");
}

#[test]
fn validate_reports_every_problem_and_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nnodes:\n  test: {run: 'true'}\n  deploy: {needs: [tset], run: 'true'}\n  loop: {needs: [loop], run: 'true'}\n",
    )
    .unwrap();
    let out = baton(home.path())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean \"test\""), "{err}");
    assert!(err.contains("bad.yaml:4"), "{err}");
    assert!(err.contains("loop"), "{err}");
    // The same file is refused by `run` before anything starts.
    let out = baton(home.path()).arg("run").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_accepts_every_example() {
    let home = tempfile::tempdir().unwrap();
    for f in [
        "ci-pipeline.yaml",
        "fan-out.yaml",
        "failing.yaml",
        "builtins.json",
        "nightly.yaml",
        "plugin-demo.yaml",
    ] {
        let out = baton(home.path())
            .arg("validate")
            .arg(example(f))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
