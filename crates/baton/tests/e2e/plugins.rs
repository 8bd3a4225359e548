//! Plugins end to end: the example Python plugin on a real agent, routing by function, a
//! node waiting for a function nobody offers, and how a plugin's failure is reported.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::{AgentSpec, Cluster, baton, node_states, wait_for, write_file};

/// The repository's `examples/`.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Writes an executable plugin `name` into `dir`.
fn plugin(dir: &Path, name: &str, script: &str) {
    std::fs::create_dir_all(dir).expect("plugins dir");
    let path = write_file(dir, name, script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn with_plugins(dir: &Path) -> Vec<String> {
    vec!["--plugins".into(), dir.to_string_lossy().into_owned()]
}

/// The functions an agent offers, from the agents list.
fn functions_of(c: &Cluster, agent: &str) -> Vec<String> {
    let agents = c.agents_json();
    let entry = agents
        .as_array()
        .and_then(|list| list.iter().find(|a| a["name"] == agent))
        .unwrap_or_else(|| panic!("agent {agent} not listed: {agents}"));
    entry["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_example_python_plugin_runs_on_the_agent_that_offers_it() {
    let mut c = Cluster::start("5s");
    // The plain agent is online first and has more slots: only routing keeps it off the node.
    c.add_agent("plain", 4, &[]);
    let flags = with_plugins(&examples().join("plugins"));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    c.start_agent(
        "plugged",
        1,
        &AgentSpec {
            flags: &flags,
            ..AgentSpec::default()
        },
    );
    assert!(functions_of(&c, "plugged").contains(&"http-check".to_string()));
    assert!(!functions_of(&c, "plain").contains(&"http-check".to_string()));

    let wf = format!(
        r#"
name: plugged
nodes:
  check:
    uses: http-check
    with: {{url: "{url}/healthz", contains: '"status":"ok"', attempts: 3, interval: 0.2}}
  after:
    needs: [check]
    run: echo checked
"#,
        url = c.url
    );
    let file = write_file(c.dir.path(), "plugged.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    let states = node_states(&doc);
    assert_eq!(states["check"], "success", "{doc}");
    assert_eq!(states["after"], "success", "{doc}");
    let attempt = &doc["nodes"]["check"]["attempts"][0];
    assert_eq!(attempt["agent"], "plugged");
    assert_eq!(attempt["exit_code"], 0);

    let id = doc["id"].as_str().expect("run id");
    let logs = c.cli(&["runs", "logs", id, "check"]);
    assert!(logs.status.success());
    let text = String::from_utf8_lossy(&logs.stdout);
    let expected = format!("[check] try 1/3: GET {}/healthz -> 200 in ", c.url);
    assert!(text.contains(&expected), "{text}");

    // The shipped demo workflow is valid as it stands.
    let demo = examples().join("plugin-demo.yaml");
    let out = c.cli(&["validate", &demo.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_node_waits_naming_the_function_until_an_agent_offers_it() {
    let mut c = Cluster::start("5s");
    c.add_agent("plain", 2, &[]);
    let file = write_file(
        c.dir.path(),
        "plan.yaml",
        r#"
name: plan
nodes:
  plan:
    uses: terraform-plan
    with: {dir: infra}
"#,
    );
    let id = c.start_run(&file);
    let why = wait_for("the node to explain its wait", || {
        let doc = c.run_api(&id)?;
        doc["nodes"]["plan"]["waiting_for"]
            .as_str()
            .map(str::to_string)
    });
    assert!(why.contains("terraform-plan"), "{why}");
    let shown = c.cli(&["runs", "show", &id]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("terraform-plan"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );

    // An agent with the plugin arrives and takes the node.
    let dir = c.dir.path().join("tf-plugins");
    plugin(
        &dir,
        "terraform-plan.sh",
        "#!/bin/sh\nread -r call\necho \"planning with $call\"\n",
    );
    let flags = with_plugins(&dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    c.start_agent(
        "tf",
        1,
        &AgentSpec {
            flags: &flags,
            ..AgentSpec::default()
        },
    );
    let doc = c.wait_run_done(&id);
    assert_eq!(doc["status"], "success", "{doc}");
    assert_eq!(doc["nodes"]["plan"]["attempts"][0]["agent"], "tf");
    let logs = c.cli(&["runs", "logs", &id, "plan"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains(r#"planning with {"function":"terraform-plan""#),
        "{text}"
    );
    assert!(text.contains(r#""with":{"dir":"infra"}"#), "{text}");
}

#[test]
fn a_failing_plugin_ends_its_node_failure_with_its_exit_code() {
    let mut c = Cluster::start("5s");
    let dir = c.dir.path().join("plugins");
    plugin(
        &dir,
        "flaky.sh",
        "#!/bin/sh\necho \"giving up on $BATON_NODE\" >&2\nexit 3\n",
    );
    let flags = with_plugins(&dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    c.start_agent(
        "a1",
        1,
        &AgentSpec {
            flags: &flags,
            ..AgentSpec::default()
        },
    );
    let file = write_file(
        c.dir.path(),
        "flaky.yaml",
        "name: flaky\nnodes:\n  try: {uses: flaky}\n  next: {needs: [try], run: echo never}\n",
    );
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["status"], "failure");
    let states = node_states(&doc);
    assert_eq!(states["try"], "failure");
    assert_eq!(states["next"], "skipped");
    assert_eq!(doc["nodes"]["try"]["attempts"][0]["exit_code"], 3);
    let id = doc["id"].as_str().expect("run id");
    let logs = c.cli(&["runs", "logs", id, "try"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("giving up on try"));
}

#[test]
fn an_agent_refuses_two_plugins_with_one_name() {
    let mut c = Cluster::start("5s");
    let dir = c.dir.path().join("plugins");
    plugin(&dir, "deploy.py", "#!/bin/sh\n");
    plugin(&dir, "deploy.sh", "#!/bin/sh\n");
    let log = c.dir.path().join("agent.log");
    let flags = with_plugins(&dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    c.spawn_agent(
        "clash",
        1,
        &AgentSpec {
            flags: &flags,
            log: Some(&log),
            ..AgentSpec::default()
        },
    );
    let status = c.wait_agent_exit("clash");
    assert_eq!(status.code(), Some(2));
    let text = std::fs::read_to_string(&log).expect("agent log");
    assert!(
        text.contains("deploy.py") && text.contains("deploy.sh"),
        "{text}"
    );
    assert!(text.contains("both make the function \"deploy\""), "{text}");
    assert!(c.agent_status("clash").is_none(), "it never registered");
}

#[test]
fn a_self_contained_run_offers_its_plugins_and_refuses_a_bad_dir() {
    let home = tempfile::tempdir().expect("temp dir");
    let dir = home.path().join("plugins");
    plugin(
        &dir,
        "greet",
        "#!/bin/sh\necho \"hello from $BATON_NODE\"\n",
    );
    let file = write_file(
        home.path(),
        "greet.yaml",
        "name: greet\nnodes:\n  hi: {uses: greet}\n",
    );
    let out = baton(home.path())
        .args(["run", "--json", "--plugins"])
        .arg(&dir)
        .arg(&file)
        .output()
        .expect("baton run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run document");
    assert_eq!(node_states(&doc)["hi"], "success", "{doc}");

    let out = baton(home.path())
        .args(["run", "--plugins"])
        .arg(home.path().join("missing"))
        .arg(&file)
        .output()
        .expect("baton run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the plugins dir"), "{err}");
}
