//! Plugin discovery and real plugin processes run as an attempt runs them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use baton_api::Stream;
use baton_core::{Outcome, Reason};
use serde_json::json;

use super::*;
use crate::functions::tests::{assignment, outputs_of, read_pid, run_in, uses, wait_gone};
use crate::registry::Registry;
use crate::stop::Stop;

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn names(plugins: &[Plugin]) -> Vec<&str> {
    plugins.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn executables_are_plugins_named_after_their_stem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "terraform-plan", "#!/bin/sh\n", 0o755);
    write(d, "http-check.py", "#!/bin/sh\n", 0o700);
    write(d, "README.md", "not a plugin\n", 0o644);
    write(d, "Bad.sh", "#!/bin/sh\n", 0o755);
    write(d, "two.dots.sh", "#!/bin/sh\n", 0o755);
    write(d, ".hidden", "#!/bin/sh\n", 0o755);
    std::fs::create_dir(d.join("subdir")).unwrap();
    std::os::unix::fs::symlink(d.join("terraform-plan"), d.join("linked")).unwrap();
    std::os::unix::fs::symlink(d.join("missing"), d.join("dangling")).unwrap();
    let plugins = discover(d).unwrap();
    assert_eq!(names(&plugins), ["http-check", "linked", "terraform-plan"]);
    assert!(plugins.iter().all(|p| p.path.is_absolute()));
    assert_eq!(plugins[0].path, d.join("http-check.py"));
}

#[test]
fn two_files_with_one_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deploy.py", "#!/bin/sh\n", 0o755);
    write(dir.path(), "deploy.sh", "#!/bin/sh\n", 0o755);
    let err = discover(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("deploy.py") && text.contains("deploy.sh"),
        "{text}"
    );
    assert!(text.contains("\"deploy\""), "{text}");
}

#[test]
fn a_plugin_may_not_replace_a_builtin_and_a_missing_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sleep.sh", "#!/bin/sh\n", 0o755);
    let err = Registry::new(&[], Some(dir.path())).unwrap_err();
    assert!(matches!(err, FunctionsError::PluginShadows { ref name, .. } if name == "sleep"));
    assert!(err.to_string().contains("sleep.sh"), "{err}");

    let err = Registry::new(&[], Some(&dir.path().join("nope"))).unwrap_err();
    assert!(matches!(err, FunctionsError::PluginsDir { .. }), "{err}");
}

#[tokio::test]
async fn a_plugin_reads_its_call_on_stdin_and_runs_like_a_step() {
    let plugins = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(
        plugins.path(),
        "show.sh",
        "#!/bin/sh\n\
         cat\n\
         echo \"$BATON_NODE $BATON_ATTEMPT $GREETING\"\n\
         test \"$(pwd -P)\" = \"$(cd \"$BATON_WORK_DIR\" && pwd -P)\"\n\
         test -f \"$BATON_OUTPUT\"\n\
         echo \"seen=$BATON_BUILD_VERSION\" >> \"$BATON_OUTPUT\"\n\
         echo to-stderr >&2\n\
         exit \"${CODE:-0}\"\n",
        0o755,
    );
    let functions = Registry::new(&[], Some(plugins.path())).unwrap();
    assert!(functions.names().contains(&"show".to_owned()));
    let mut a = assignment(uses("show", json!({"url": "http://x", "n": [1, 2]})));
    a.env.insert("GREETING".into(), "hi there".into());
    a.inputs
        .insert("build".into(), [("version".into(), "1.2".into())].into());
    let ran = run_in(root.path(), &functions, &a, &Stop::new()).await;
    assert_eq!(
        ran.outcome(),
        Outcome::exited(0),
        "{}",
        ran.text(Stream::Stderr)
    );
    let out = ran.text(Stream::Stdout);
    let (doc, rest) = out.split_once('\n').unwrap();
    let doc: serde_json::Value = serde_json::from_str(doc).unwrap();
    let work_dir = ran.work_dir.as_ref().unwrap().path();
    assert_eq!(
        doc,
        json!({
            "function": "show",
            "with": {"url": "http://x", "n": [1, 2]},
            "inputs": {"build": {"version": "1.2"}},
            "run_id": "run/01",
            "workflow": "wf",
            "node": "build",
            "attempt": 2,
            "work_dir": work_dir,
        })
    );
    assert_eq!(rest, "build 2 hi there\n");
    assert_eq!(ran.text(Stream::Stderr), "to-stderr\n");
    assert_eq!(outputs_of(&ran)["seen"], "1.2");

    a.env.insert("CODE".into(), "3".into());
    let ran = run_in(root.path(), &functions, &a, &Stop::new()).await;
    assert_eq!(ran.outcome(), Outcome::exited(3));
}

#[tokio::test]
async fn a_plugin_that_never_reads_a_big_input_still_ends() {
    let plugins = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(plugins.path(), "deaf", "#!/bin/sh\necho done\n", 0o755);
    let functions = Registry::new(&[], Some(plugins.path())).unwrap();
    // Far more than a pipe holds, so the write cannot finish before the exit.
    let big = "x".repeat(1 << 20);
    let a = assignment(uses("deaf", json!({ "big": big })));
    let ran = run_in(root.path(), &functions, &a, &Stop::new()).await;
    assert_eq!(ran.outcome(), Outcome::exited(0));
    assert_eq!(ran.text(Stream::Stdout), "done\n");
}

#[tokio::test]
async fn a_plugin_timeout_kills_its_process_group() {
    let plugins = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pid_file = out.path().join("bg.pid");
    write(
        plugins.path(),
        "hang",
        "#!/bin/sh\nsleep 300 & echo $! > \"$PID_FILE\"; sleep 300\n",
        0o755,
    );
    let functions = Registry::new(&[], Some(plugins.path())).unwrap();
    let mut a = assignment(uses("hang", json!({})));
    a.env
        .insert("PID_FILE".into(), pid_file.to_str().unwrap().into());
    a.timeout_ms = Some(300);
    let ran = run_in(root.path(), &functions, &a, &Stop::new()).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Timeout));
    wait_gone(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn a_plugin_gone_since_the_start_is_a_setup_error() {
    let plugins = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let path = write(plugins.path(), "vanish", "#!/bin/sh\n", 0o755);
    let functions = Registry::new(&[], Some(plugins.path())).unwrap();
    std::fs::remove_file(path).unwrap();
    let ran = run_in(
        root.path(),
        &functions,
        &assignment(uses("vanish", json!({}))),
        &Stop::new(),
    )
    .await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Setup));
    assert!(
        ran.message().unwrap().contains("cannot start the plugin"),
        "{:?}",
        ran.message()
    );
}
