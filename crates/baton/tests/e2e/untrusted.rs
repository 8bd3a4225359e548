//! Agents are untrusted input: what they say about themselves is checked, and what the
//! CLI prints of it can never drive the terminal.

use serde_json::{Value, json};

use crate::util::{Cluster, baton, write_file};

/// Characters a terminal acts on, or that reorder or split what it shows.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

fn enroll(c: &Cluster) -> String {
    std::fs::read_to_string(c.data_dir().join("agent.token"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn registration_with_terminal_escapes_is_refused_naming_the_field() {
    let c = Cluster::start("5s");
    let enroll = enroll(&c);
    let cases = [
        (
            "name",
            json!({"name": "\u{1b}[2Jevil", "slots": 1, "functions": ["shell"]}),
        ),
        (
            "labels",
            json!({"name": "a", "slots": 1, "functions": ["shell"], "labels": {"os": "linux\r\u{7}"}}),
        ),
        (
            "slots",
            json!({"name": "a", "slots": 4_294_967_295_u32, "functions": ["shell"]}),
        ),
        (
            "functions",
            json!({"name": "a", "slots": 1, "functions": ["sh\u{0}ell"]}),
        ),
    ];
    for (field, body) in cases {
        let (status, answer) = c
            .http(
                "POST",
                "/api/v1/agent/register",
                Some(&enroll),
                Some(&body.to_string()),
            )
            .unwrap();
        assert_eq!(status, 400, "{body} -> {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("bad agent {field}:")),
            "{message}"
        );
    }
}

#[test]
fn an_agent_with_a_bad_name_stops_at_start() {
    let home = tempfile::tempdir().unwrap();
    let out = baton(home.path())
        .args(["agent", "--server", "http://127.0.0.1:9", "--token", "t"])
        .args(["--name", "evil\u{1b}[31mname"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad agent name"), "{err}");
    assert!(
        raw_controls(&err).is_empty(),
        "the error itself is escaped: {err:?}"
    );
}

#[test]
fn the_cli_prints_what_agents_say_without_raw_control_characters() {
    let c = Cluster::start("5s");
    let enroll = enroll(&c);
    // What registration still lets through: text that only reorders or splits lines.
    let register = json!({
        "name": "evil\u{202e}gnp.exe",
        "slots": 1,
        "functions": ["shell"],
        "labels": {"note": "a\u{2028}b"},
    });
    let (status, body) = c
        .http(
            "POST",
            "/api/v1/agent/register",
            Some(&enroll),
            Some(&register.to_string()),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let call = |path: &str, body: &Value| {
        c.http(
            "POST",
            &format!("/api/v1/agent{path}"),
            Some(&token),
            Some(&body.to_string()),
        )
        .unwrap()
    };

    // A report message is free text from the agent: it may carry anything.
    let file = write_file(
        c.dir.path(),
        "w.yaml",
        "name: w\nnodes:\n  a: {run: 'true'}\n",
    );
    let id = c.start_run(&file);
    let (status, body) = call("/claim", &json!({"max": 1, "wait_ms": 10_000}));
    assert_eq!(status, 200, "{body}");
    let claimed: Value = serde_json::from_str(&body).unwrap();
    let a = &claimed["assignments"][0];
    let (attempt, fence) = (
        a["attempt_id"].as_i64().unwrap(),
        a["fence"].as_i64().unwrap(),
    );
    let report = json!({
        "fence": fence,
        "outcome": {"state": "error", "reason": "setup"},
        "message": "\u{1b}[32mall good\r\u{7}\u{1b}]0;pwned\u{7}\nsecond line",
    });
    let (status, body) = call(&format!("/attempts/{attempt}/report"), &report);
    assert_eq!(status, 200, "{body}");
    c.wait_run_done(&id);

    for args in [
        vec!["agents", "list"],
        vec!["runs", "show", &id],
        vec!["runs", "list"],
    ] {
        let out = c.cli(&args);
        let text = String::from_utf8(out.stdout).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || args[0] == "runs", "{args:?}: {err}");
        assert!(
            raw_controls(&text).is_empty(),
            "{args:?} printed raw {:?}: {text:?}",
            raw_controls(&text)
        );
        assert!(raw_controls(&err).is_empty(), "{args:?} stderr: {err:?}");
    }
    let agents = String::from_utf8(c.cli(&["agents", "list"]).stdout).unwrap();
    assert!(agents.contains("evil\\u{202e}gnp.exe"), "{agents}");
    assert!(agents.contains("note=a\\u{2028}b"), "{agents}");
    let show = String::from_utf8(c.cli(&["runs", "show", &id]).stdout).unwrap();
    assert!(show.contains("\\u{1b}[32mall good\\r\\u{7}"), "{show}");
    assert!(show.contains("\\nsecond line"), "{show}");
}
