//! What a step can see: a clean environment, work dirs outside the server's data dir, and
//! server files no other user can read.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{AgentSpec, Cluster, PATIENCE, Proc, baton, write_file};

const ENV_WORKFLOW: &str = "\
name: show-env
nodes:
  plain:
    selector: {kind: plain}
    env: {NODE_VAR: from-node}
    run: env
  passing:
    selector: {kind: passing}
    run: env
";

fn logs(c: &Cluster, run: &str, node: &str) -> String {
    let out = c.cli(&["runs", "logs", run, node]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 logs")
}

fn has_var(env: &str, name: &str) -> bool {
    env.lines().any(|l| l.starts_with(&format!("{name}=")))
}

#[test]
fn steps_see_neither_the_agents_token_nor_its_other_variables_unless_passed() {
    let mut c = Cluster::start("5s");
    let secrets = [("BATON_TOKEN", "secret-value"), ("FOO", "bar")];
    c.start_agent(
        "plain",
        1,
        &AgentSpec {
            flags: &["--label", "kind=plain"],
            env: &secrets,
            ..AgentSpec::default()
        },
    );
    c.start_agent(
        "passing",
        1,
        &AgentSpec {
            flags: &["--label", "kind=passing", "--pass-env", "FOO"],
            env: &secrets,
            ..AgentSpec::default()
        },
    );
    let file = write_file(c.dir.path(), "env.yaml", ENV_WORKFLOW);
    let (code, doc) = c.run_file(&file);
    assert_eq!(code, 0, "{doc}");
    let id = doc["id"].as_str().unwrap();

    let plain = logs(&c, id, "plain");
    assert!(!plain.contains("secret-value"), "{plain}");
    assert!(!has_var(&plain, "BATON_TOKEN"), "{plain}");
    assert!(!has_var(&plain, "FOO"), "{plain}");
    assert!(has_var(&plain, "PATH"), "{plain}");
    assert!(has_var(&plain, "HOME"), "{plain}");
    assert!(plain.lines().any(|l| l == "NODE_VAR=from-node"), "{plain}");
    assert!(plain.lines().any(|l| l == "BATON_NODE=plain"), "{plain}");

    let passing = logs(&c, id, "passing");
    assert!(passing.lines().any(|l| l == "FOO=bar"), "{passing}");
    assert!(!passing.contains("secret-value"), "{passing}");
}

#[test]
fn an_agent_refuses_to_pass_baton_variables_to_steps() {
    let home = tempfile::tempdir().unwrap();
    let by_flag = baton(home.path())
        .args(["agent", "--server", "http://127.0.0.1:9", "--token", "t"])
        .args(["--pass-env", "FOO", "--pass-env", "BATON_TOKEN"])
        .output()
        .unwrap();
    let by_env = baton(home.path())
        .args(["agent", "--server", "http://127.0.0.1:9", "--token", "t"])
        .env("BATON_PASS_ENV", "FOO,BATON_AGENT_TOKEN")
        .output()
        .unwrap();
    for (out, name) in [(by_flag, "BATON_TOKEN"), (by_env, "BATON_AGENT_TOKEN")] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(name) && err.contains("never passed"), "{err}");
    }
}

/// A step that walks up from its work dir, listing every folder and trying every
/// `admin.token` and `baton.db` on the way, then writes what it found to `report`.
fn walker(report: &Path) -> String {
    format!(
        "\
name: walk
nodes:
  walk:
    run: |
      set +e
      {{
        echo \"work dir: $PWD\"
        ls -la ..; ls -la ../..; ls ../../..
        cat admin.token ../admin.token ../../admin.token ../../../admin.token
        cat ../data/admin.token ../../data/admin.token
        d=$PWD
        while [ \"$d\" != / ]; do
          d=$(dirname \"$d\")
          ls -a \"$d\"
          cat \"$d/admin.token\" \"$d/agent.token\"
          [ -e \"$d/baton.db\" ] && echo \"found $d/baton.db\"
        done
      }} > {} 2>&1
      true
",
        report.display()
    )
}

fn assert_no_token_found(report: &Path, data: &Path) {
    let found = std::fs::read_to_string(report).expect("the step wrote its report");
    assert!(found.contains("work dir: /"), "{found}");
    for token in ["admin.token", "agent.token"] {
        let value = std::fs::read_to_string(data.join(token)).unwrap();
        assert!(
            !found.contains(value.trim()),
            "the step read {token}: {found}"
        );
    }
    assert!(
        !found.contains("found "),
        "the step found a database: {found}"
    );
    let work_dir = found
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("work dir: ");
    assert!(
        !Path::new(work_dir).starts_with(data),
        "work dir {work_dir} is under the data dir {}",
        data.display()
    );
}

#[test]
fn a_self_contained_run_keeps_work_dirs_out_of_the_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let report = home.path().join("report.txt");
    let file = write_file(home.path(), "walk.yaml", &walker(&report));
    let out = baton(home.path())
        .args(["run", "--data-dir"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_token_found(&report, &data);
}

/// `baton up` in `home`, with its URL once it listens.
fn up(home: &Path, data: &Path) -> (Proc, String) {
    let mut child = baton(home)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let first = first_line(stdout);
    let url = first.trim_start_matches("listening on ").trim().to_owned();
    (proc, url)
}

/// The first line a process prints, while the rest is read and dropped so that it never
/// writes into a closed pipe.
fn first_line(stdout: std::process::ChildStdout) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(Some(Ok(line))) => line,
        other => panic!("no first line: {other:?}"),
    }
}

#[test]
fn baton_up_keeps_work_dirs_out_of_the_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let (_up, url) = up(home.path(), &data);
    let report = home.path().join("report.txt");
    let file = write_file(home.path(), "walk.yaml", &walker(&report));
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let out = baton(home.path())
        .arg("run")
        .arg(&file)
        .env("BATON_SERVER", &url)
        .env("BATON_TOKEN", admin.trim())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_token_found(&report, &data);
}

#[test]
fn baton_up_refuses_a_work_dir_inside_the_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let out = baton(home.path())
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--work-dir")
        .arg(data.join("work"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("inside the data dir"), "{err}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn server_files_are_private_in_a_data_dir_that_already_existed() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The usual umask, set for the server alone.
    let envs: Vec<_> = baton(home.path())
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" server --listen 127.0.0.1:0 --data-dir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_baton"))
        .arg(&data)
        .env_clear()
        .envs(envs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Proc(child);
    assert!(
        first_line(stdout).starts_with("listening on"),
        "the server started"
    );
    for file in [
        "admin.token",
        "agent.token",
        "baton.db",
        "baton.db-wal",
        "baton.db-shm",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data.join("artifacts")), 0o700, "artifacts");
}
