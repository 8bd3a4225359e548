//! Secrets end to end (the T18 corpus): a value set with `baton secrets set` reaches only
//! the step that refers to it, as a variable, and appears in no stored log, output, run
//! document, CLI answer, server log or database file — plain, base64 at every alignment,
//! URL-encoded, split across log chunks, line by line, or inside JSON. On SQLite and on
//! PostgreSQL.

use std::io::Write as _;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::replicas::{TestDb, pg_url};
use crate::util::{Cluster, baton, node_states, write_file};

/// Holds `/`, `+` and `=` so its URL and JSON forms differ from it.
const VALUE: &str = "Xk9-pa55/w0rd+tail=7Qz";
/// A multi-line value: each line is masked on its own too.
const MULTI: &str = "first-line-AAAA\nsecond-line-BBBB";

const WORKFLOW: &str = r#"
name: leak
env: {API_KEY: {secret: API_KEY}}
nodes:
  spill:
    env: {ML: {secret: MULTI}}
    run: |
      echo "plain: $API_KEY"
      printf '%s' "$API_KEY" | base64 -w0; echo
      printf 'x%s' "$API_KEY" | base64 -w0; echo
      printf 'xy%s' "$API_KEY" | base64 -w0; echo
      printf '%s' "$API_KEY" | base64 -w0 | tr '+/' '-_'; echo
      python3 -c 'import os, urllib.parse; print(urllib.parse.quote(os.environ["API_KEY"], safe=""))'
      python3 -c 'import json, os; print(json.dumps({"k": os.environ["API_KEY"], "m": os.environ["ML"]}))'
      printf '%s' "$(printf '%s' "$API_KEY" | cut -c1-9)"
      sleep 0.3
      printf '%s\n' "$(printf '%s' "$API_KEY" | cut -c10-)"
      echo "$ML"
      echo "to stderr: $API_KEY" >&2
      echo "key=$API_KEY" >> "$BATON_OUTPUT"
      printf 'multi<<EOF\n%s\nEOF\n' "$ML" >> "$BATON_OUTPUT"
  after:
    needs: [spill]
    run: 'echo "input: $BATON_SPILL_KEY"'
  scoped:
    env: {O: {secret: OTHER}}
    run: echo "$O"
"#;

fn b64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Every form of the secrets a leak would show: each must be absent everywhere.
fn forbidden() -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut forms = vec![
        VALUE.to_owned(),
        "first-line-AAAA".into(),
        "second-line-BBBB".into(),
    ];
    for alphabet in [STD, URL] {
        let whole = b64(VALUE.as_bytes(), alphabet);
        // The last character also holds padding bits: the part made of the value alone.
        forms.push(whole[..whole.len() - 1].to_owned());
    }
    forms.push("Xk9-pa55%2Fw0rd%2Btail%3D7Qz".into());
    forms
}

fn set_secret(c: &Cluster, name: &str, value: &str, scope: &[&str]) {
    let mut cmd = baton(c.dir.path());
    cmd.args(["secrets", "set", name])
        .env("BATON_SERVER", &c.url)
        .env("BATON_TOKEN", &c.admin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for w in scope {
        cmd.args(["--workflow", w]);
    }
    let mut child = cmd.spawn().expect("spawn secrets set");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{value}\n").as_bytes())
        .expect("write the value");
    let out = child.wait_with_output().expect("secrets set");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn no_secret_is_ever_shown(flags: &[&str]) {
    let mut c = Cluster::start_logging(flags, true);
    c.add_agent("a1", 2, &[]);
    set_secret(&c, "API_KEY", VALUE, &[]);
    set_secret(&c, "MULTI", MULTI, &[]);
    set_secret(&c, "OTHER", "only-for-another-workflow", &["another"]);

    let listed = c.cli(&["secrets", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("secrets list");
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["API_KEY", "MULTI", "OTHER"]);
    assert_eq!(listed[2]["workflows"], serde_json::json!(["another"]));

    let file = write_file(c.dir.path(), "leak.yaml", WORKFLOW);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 1, "scoped fails the run: {doc}");
    let states = node_states(&doc);
    assert_eq!(states["spill"], "success", "{doc}");
    assert_eq!(states["after"], "success", "{doc}");
    assert_eq!(states["scoped"], "error", "{doc}");
    let run = doc["id"].as_str().expect("run id").to_owned();

    let logs = c.cli(&["runs", "logs", &run]);
    let logs_text = text(&logs);
    assert!(logs.status.success(), "{logs_text}");
    assert!(logs_text.contains("plain: ***"), "{logs_text}");
    assert!(logs_text.contains("to stderr: ***"), "{logs_text}");
    assert!(logs_text.contains("input: ***"), "{logs_text}");
    assert!(
        logs_text.matches("***").count() >= 12,
        "every form is masked: {logs_text}"
    );
    let shown = c.run_doc(&run);
    let scoped = &shown["nodes"]["scoped"];
    assert!(
        scoped.to_string().contains("not available to workflow"),
        "the refusal names the scope: {scoped}"
    );

    let mut seen = vec![
        ("runs logs", logs_text),
        ("runs show --json", shown.to_string()),
        ("runs show", text(&c.cli(&["runs", "show", &run]))),
        (
            "runs logs --json",
            text(&c.cli(&["runs", "logs", &run, "--json"])),
        ),
        (
            "workflows show",
            text(&c.cli(&["workflows", "show", "leak"])),
        ),
        ("secrets list", text(&c.cli(&["secrets", "list"]))),
        ("audit", text(&c.cli(&["audit", "--json"]))),
        ("run --json", doc.to_string()),
    ];
    // The server's own log, at debug level.
    let server_log = std::fs::read(c.server_log()).expect("server log");
    assert!(!server_log.is_empty());
    seen.push((
        "server log",
        String::from_utf8_lossy(&server_log).into_owned(),
    ));
    // The database's own files, when it is a SQLite file in the data dir.
    for name in ["baton.db", "baton.db-wal"] {
        if let Ok(bytes) = std::fs::read(c.data_dir().join(name)) {
            seen.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    for form in forbidden() {
        for (place, text) in &seen {
            assert!(!text.contains(&form), "{form:?} leaked into {place}");
        }
    }
}

#[test]
fn secrets_reach_only_their_step_and_never_show_on_sqlite() {
    no_secret_is_ever_shown(&["--lease", "5s"]);
}

#[test]
fn secrets_reach_only_their_step_and_never_show_on_postgres() {
    let Some(server) = pg_url("secrets_reach_only_their_step_and_never_show_on_postgres") else {
        return;
    };
    let db = TestDb::create(&server);
    no_secret_is_ever_shown(&["--lease", "5s", "--db", &db.url]);
}
