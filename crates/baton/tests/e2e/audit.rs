//! `baton audit` against a real server whose database holds entries (written through the
//! store API while the server is down, as the routes will write them).

use baton_api::AuditAction;
use baton_store::{SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};

use crate::util::Cluster;

/// Records `(actor, action, target, detail)` entries in the cluster's database; the server
/// must be stopped. Returns their ids, in the order given.
fn record(c: &Cluster, entries: &[(&str, AuditAction, &str, Value)]) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(&SqliteOptions::new(c.data_dir().join("baton.db")))
            .expect("open the server's database");
        let mut ids = Vec::new();
        for (actor, action, target, detail) in entries {
            ids.push(
                store
                    .record_audit(actor, *action, target, detail)
                    .await
                    .expect("record an audit entry"),
            );
        }
        ids
    })
}

fn audit_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    let out = c.cli(&all);
    assert!(
        out.status.success(),
        "baton {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("audit --json prints the page")
}

fn ids(page: &Value) -> Vec<i64> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect()
}

#[test]
fn audit_lists_pages_and_filters_entries_from_the_server() {
    let mut c = Cluster::start_with(&[]);
    let empty = audit_json(&c, &[]);
    assert_eq!(empty, json!({"entries": []}));
    let out = c.cli(&["audit"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no audit entries"));

    c.kill_server();
    let mut made = record(
        &c,
        &[
            (
                "admin",
                AuditAction::WorkflowApply,
                "deploy",
                json!({"version": 1}),
            ),
            ("ci-bot", AuditAction::RunCreate, "r-1", json!({})),
            (
                "admin",
                AuditAction::RunCancel,
                "r-1\u{1b}[2J",
                json!({"note": "bell\u{7}"}),
            ),
        ],
    );
    made.reverse();
    c.restart_server();

    let page = audit_json(&c, &[]);
    assert_eq!(ids(&page), made);
    assert!(page.get("next_before").is_none(), "{page}");
    let newest = &page["entries"][0];
    assert_eq!(newest["actor"], "admin");
    assert_eq!(newest["action"], "run.cancel");
    assert_eq!(newest["target"], "r-1\u{1b}[2J");
    assert_eq!(newest["detail"], json!({"note": "bell\u{7}"}));
    assert_eq!(page["entries"][2]["detail"], json!({"version": 1}));

    let first = audit_json(&c, &["--limit", "2"]);
    assert_eq!(ids(&first), made[..2]);
    let before = first["next_before"].as_i64().expect("an older page");
    let rest = audit_json(&c, &["--limit", "2", "--before", &before.to_string()]);
    assert_eq!(ids(&rest), made[2..]);

    let filtered = audit_json(&c, &["--actor", "admin", "--action", "run.cancel"]);
    assert_eq!(ids(&filtered), [made[0]]);
    let by_bot = audit_json(&c, &["--actor", "ci-bot"]);
    assert_eq!(ids(&by_bot), [made[1]]);

    // The table escapes what the server sent instead of letting it reach the terminal.
    let out = c.cli(&["audit", "--limit", "2"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).expect("utf-8");
    assert!(table.starts_with("ID  TIME"), "{table}");
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "{table:?}"
    );
    assert!(table.contains("r-1\\u{1b}[2J"), "{table}");
    assert!(table.contains(r#"{"note":"bell\u0007"}"#), "{table}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("baton audit --before {before}")),
        "{stderr}"
    );
}

#[test]
fn audit_refuses_bad_flags_and_other_tokens() {
    let c = Cluster::start_with(&[]);
    let out = c.cli(&["audit", "--action", "run.explode"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown audit action \"run.explode\""),
        "{stderr}"
    );
    let out = c.cli(&["audit", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2));

    let enroll = std::fs::read_to_string(c.data_dir().join("agent.token")).expect("agent.token");
    let out = c.cli(&["audit", "--token", enroll.trim()]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("403"), "{stderr}");
}
