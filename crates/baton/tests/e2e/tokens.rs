//! Named tokens through the CLI, on SQLite and PostgreSQL: made by an admin and printed
//! once, limited by their role, refused once revoked, listed without the token.

use std::process::Output;

use serde_json::Value;

use crate::replicas::{TestDb, pg_url};
use crate::util::{Cluster, baton, write_file};

fn as_token(c: &Cluster, token: &str, args: &[&str]) -> Output {
    baton(c.dir.path())
        .args(args)
        .env("BATON_SERVER", &c.url)
        .env("BATON_TOKEN", token)
        .output()
        .expect("run baton")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn roles_hold_through_the_cli(flags: &[&str]) {
    let mut c = Cluster::start_with(flags);
    c.add_agent("a1", 2, &[]);
    let file = write_file(
        c.dir.path(),
        "hello.yaml",
        "name: hello\nnodes:\n  a: {run: 'echo hi'}\n",
    );

    let made = c.cli(&["tokens", "create", "watcher", "--role", "viewer"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let viewer = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert!(
        viewer.starts_with("baton_user_"),
        "the token alone on stdout: {viewer:?}"
    );
    assert!(
        stderr(&made).contains("shown only this once"),
        "{}",
        stderr(&made)
    );
    let made = c.cli(&[
        "tokens",
        "create",
        "deployer",
        "--role",
        "operator",
        "--expires",
        "1d",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let operator = String::from_utf8_lossy(&made.stdout).trim().to_owned();

    // A viewer reads but cannot run, apply or manage tokens: exit 3 naming the role.
    let listed = as_token(&c, &viewer, &["runs", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let ran = as_token(&c, &viewer, &["run", &file.to_string_lossy(), "--detach"]);
    assert_eq!(ran.status.code(), Some(3), "{}", stderr(&ran));
    assert!(stderr(&ran).contains("role"), "{}", stderr(&ran));
    let made = as_token(&c, &viewer, &["tokens", "create", "x", "--role", "admin"]);
    assert_eq!(made.status.code(), Some(3), "{}", stderr(&made));

    // An operator runs a file an admin applied, as it stands; a changed file needs an admin.
    let ran = as_token(&c, &operator, &["run", &file.to_string_lossy()]);
    assert_eq!(
        ran.status.code(),
        Some(3),
        "not applied yet: {}",
        stderr(&ran)
    );
    assert!(stderr(&ran).contains("admin role"), "{}", stderr(&ran));
    let applied = c.cli(&["workflows", "apply", &file.to_string_lossy()]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let ran = as_token(&c, &operator, &["run", &file.to_string_lossy(), "--json"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let changed = write_file(
        c.dir.path(),
        "hello.yaml",
        "name: hello\nnodes:\n  a: {run: 'echo changed'}\n",
    );
    let ran = as_token(&c, &operator, &["run", &changed.to_string_lossy()]);
    assert_eq!(ran.status.code(), Some(3), "{}", stderr(&ran));
    assert!(stderr(&ran).contains("admin role"), "{}", stderr(&ran));

    let listed = c.cli(&["tokens", "list", "--json"]);
    let list: Value = serde_json::from_slice(&listed.stdout).expect("tokens list");
    assert!(!list.to_string().contains(&viewer), "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let table = c.cli(&["tokens", "list"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("watcher") && table.contains("viewer"),
        "{table}"
    );
    assert!(!table.contains(&viewer), "{table}");

    let revoked = c.cli(&["tokens", "revoke", "watcher"]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let listed = as_token(&c, &viewer, &["runs", "list"]);
    assert_eq!(listed.status.code(), Some(3), "refused once revoked");
    let again = c.cli(&["tokens", "revoke", "watcher"]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let bad = c.cli(&["tokens", "create", "Bad Name", "--role", "viewer"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let bad = c.cli(&["tokens", "create", "x", "--role", "root"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    let audit = c.cli(&["audit", "--json"]);
    let audit: Value = serde_json::from_slice(&audit.stdout).expect("audit");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(audit["entries"][1]["actor"], "deployer", "{audit}");
    assert_eq!(
        actions,
        [
            "token.revoke",
            "run.create",
            "workflow.apply",
            "token.create",
            "token.create"
        ],
        "{audit}"
    );
}

#[test]
fn roles_hold_through_the_cli_on_sqlite() {
    roles_hold_through_the_cli(&["--lease", "5s"]);
}

#[test]
fn roles_hold_through_the_cli_on_postgres() {
    let Some(server) = pg_url("roles_hold_through_the_cli_on_postgres") else {
        return;
    };
    let db = TestDb::create(&server);
    roles_hold_through_the_cli(&["--lease", "5s", "--db", &db.url]);
}
