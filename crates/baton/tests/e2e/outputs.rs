//! Outputs to inputs through real processes: a shell step's outputs reach the next node as
//! variables and `$BATON_INPUTS` and stay data, the example Python plugin's outputs reach
//! the next node (a plugin, through its stdin), and outputs over the limit end the node
//! `error` with reason `output`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::util::{AgentSpec, Cluster, node_states, write_file};

/// The repository's `examples/`.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn shell_outputs_reach_the_next_node_as_variables_and_a_file_and_stay_data() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 2, &[]);
    let d = c.dir.path();
    let pwned: Vec<PathBuf> = (1..=3).map(|i| d.join(format!("pwned{i}"))).collect();
    // Written by a quoted here-document, so the lines reach the file as they are.
    let up = write_file(
        d,
        "up.sh",
        &format!(
            "cat >> \"$BATON_OUTPUT\" <<'EOF'\n\
             version=1.2.3\n\
             x=\"; touch {p1} #\n\
             y=$(touch {p2})\n\
             z=`touch {p3}`\n\
             notes<<END\n\
             line one\n\
             line two\n\
             END\n\
             EOF\n",
            p1 = pwned[0].display(),
            p2 = pwned[1].display(),
            p3 = pwned[2].display(),
        ),
    );
    let seen = d.join("seen.txt");
    let inputs = d.join("inputs.json");
    let wf = format!(
        r#"
name: outputs
nodes:
  a:
    run: sh {up}
  b:
    needs: [a]
    run:
      - 'echo "$BATON_A_X" > {seen}'
      - 'echo "$BATON_A_Y" >> {seen}'
      - 'echo "$BATON_A_Z" >> {seen}'
      - 'echo "$BATON_A_NOTES" >> {seen}'
      - 'cp "$BATON_INPUTS" {inputs}'
      - 'echo "seen=$BATON_A_VERSION" >> "$BATON_OUTPUT"'
"#,
        up = up.display(),
        seen = seen.display(),
        inputs = inputs.display(),
    );
    let file = write_file(d, "outputs.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    let x = format!("\"; touch {} #", pwned[0].display());
    let y = format!("$(touch {})", pwned[1].display());
    let z = format!("`touch {}`", pwned[2].display());
    assert_eq!(
        read(&seen),
        format!("{x}\n{y}\n{z}\nline one\nline two\n"),
        "the values arrive as they were written"
    );
    for p in &pwned {
        assert!(!p.exists(), "{} was created: a value ran", p.display());
    }
    let a_outputs = json!({
        "version": "1.2.3", "x": x, "y": y, "z": z, "notes": "line one\nline two",
    });
    let got: serde_json::Value = serde_json::from_str(&read(&inputs)).expect("inputs json");
    assert_eq!(got, json!({ "a": a_outputs }));
    assert_eq!(doc["nodes"]["a"]["outputs"], a_outputs, "{doc}");
    assert_eq!(
        doc["nodes"]["b"]["outputs"],
        json!({"seen": "1.2.3"}),
        "{doc}"
    );

    let id = doc["id"].as_str().expect("run id");
    let shown = c.cli(&["runs", "show", id]);
    assert!(shown.status.success());
    let text = String::from_utf8_lossy(&shown.stdout);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["a", "version", "1.2.3"]), "{text}");
    assert!(rows.contains(&vec!["b", "seen", "1.2.3"]), "{text}");
    assert!(text.contains(r"line one\nline two"), "{text}");
}

#[test]
fn the_example_python_plugin_s_outputs_reach_the_next_plugin_on_its_stdin() {
    let mut c = Cluster::start("5s");
    let plugins = c.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::os::unix::fs::symlink(
        examples().join("plugins/http-check.py"),
        plugins.join("http-check.py"),
    )
    .expect("link the example plugin");
    let dump = write_file(
        &plugins,
        "dump.sh",
        "#!/bin/sh\ncat > \"$DUMP_TO\"\necho \"status=$BATON_CHECK_STATUS\" >> \"$DUMP_TO.env\"\n",
    );
    std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let flags = [
        "--plugins".to_string(),
        plugins.to_string_lossy().into_owned(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    c.start_agent(
        "plugged",
        2,
        &AgentSpec {
            flags: &flags,
            ..AgentSpec::default()
        },
    );
    let stdin = c.dir.path().join("stdin.json");
    let wf = format!(
        r#"
name: plugged-outputs
nodes:
  check:
    uses: http-check
    with: {{url: "{url}/healthz"}}
  after:
    needs: [check]
    uses: dump
    env: {{DUMP_TO: "{stdin}"}}
"#,
        url = c.url,
        stdin = stdin.display(),
    );
    let file = write_file(c.dir.path(), "plugged.yaml", &wf);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(node_states(&doc)["after"], "success", "{doc}");
    let outputs = &doc["nodes"]["check"]["outputs"];
    assert_eq!(outputs["status"], "200", "{doc}");
    assert!(outputs["elapsed_ms"].as_str().is_some(), "{doc}");

    let call: serde_json::Value = serde_json::from_str(&read(&stdin)).expect("stdin document");
    assert_eq!(call["inputs"], json!({ "check": outputs }), "{call}");
    let env_file = PathBuf::from(format!("{}.env", stdin.display()));
    assert_eq!(read(&env_file), "status=200\n");
}

#[test]
fn outputs_over_the_limit_end_the_node_error_output() {
    let mut c = Cluster::start("5s");
    c.add_agent("a1", 1, &[]);
    let file = write_file(
        c.dir.path(),
        "big.yaml",
        r#"
name: big
nodes:
  big:
    run: printf 'big=%070000d\n' 0 >> "$BATON_OUTPUT"
  after:
    needs: [big]
    run: echo never
"#,
    );
    let (code, doc) = c.run_file(&file);
    assert_ne!(code, 0, "{doc}");
    assert_eq!(doc["status"], "error", "{doc}");
    let states = node_states(&doc);
    assert_eq!(states["big"], "error");
    assert_eq!(states["after"], "skipped");
    let attempt = &doc["nodes"]["big"]["attempts"][0];
    assert_eq!(attempt["reason"], "output", "{doc}");
    assert_eq!(attempt["exit_code"], 0, "{doc}");
    assert_eq!(
        attempt["message"],
        "bad $BATON_OUTPUT: outputs of 70005 bytes are too large: at most 65536 bytes \
         (the work exited with code 0)"
    );
    assert!(doc["nodes"]["big"].get("outputs").is_none(), "{doc}");
}
