//! Real `sh` processes run through the functions, as an attempt would run them; the
//! harness is shared with the tests of plugins and Rust functions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_api::{Assignment, Stream};
use baton_core::{Action, AttemptState, Outcome, Reason, Script};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::*;
use crate::logs::Chunk;

pub(crate) fn assignment(action: Action) -> Assignment {
    Assignment {
        attempt_id: 7,
        fence: 1,
        run_id: "run/01".into(),
        workflow: "wf".into(),
        node: "build".into(),
        attempt: 2,
        action,
        env: BTreeMap::new(),
        timeout_ms: None,
        artifacts: Vec::new(),
        inputs: BTreeMap::new(),
        secrets: BTreeMap::new(),
        secret_refs: BTreeMap::new(),
        refused: None,
    }
}

fn script(s: &str) -> Action {
    Action::Run(Script::One(s.into()))
}

pub(crate) fn uses(function: &str, with: serde_json::Value) -> Action {
    Action::Uses {
        function: function.into(),
        with,
    }
}

pub(crate) struct Ran {
    pub(crate) ended: Ended,
    pub(crate) work_dir: Option<WorkDir>,
    pub(crate) chunks: Vec<Chunk>,
}

impl Ran {
    pub(crate) fn text(&self, stream: Stream) -> String {
        self.chunks
            .iter()
            .filter(|c| c.stream == stream)
            .map(|c| c.data.as_str())
            .collect()
    }

    pub(crate) fn outcome(&self) -> Outcome {
        match &self.ended {
            Ended::Finished { outcome, .. } => *outcome,
            Ended::Dropped => panic!("dropped"),
        }
    }

    pub(crate) fn message(&self) -> Option<&str> {
        match &self.ended {
            Ended::Finished { message, .. } => message.as_deref(),
            Ended::Dropped => None,
        }
    }
}

async fn run_with(root: &Path, a: &Assignment, stop: &Stop) -> Ran {
    let functions = Registry::new(&[], None).unwrap();
    run_in(root, &functions, a, stop).await
}

/// Runs `a` with `functions`, as an attempt would.
pub(crate) async fn run_in(root: &Path, functions: &Registry, a: &Assignment, stop: &Stop) -> Ran {
    run_passing(root, functions, a, stop, &[]).await
}

/// [`run_in`], by an agent started with `--pass-env` for each of `pass_env`.
pub(crate) async fn run_passing(
    root: &Path,
    functions: &Registry,
    a: &Assignment,
    stop: &Stop,
    pass_env: &[String],
) -> Ran {
    let (mut logs, mut rx) = LogBuffer::channel();
    let collector = tokio::spawn(async move {
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        chunks
    });
    let workspace = Workspace {
        root: root.to_owned(),
        pass_env: pass_env.to_vec(),
    };
    let execution = execute(&workspace, functions, a, stop, &mut logs).await;
    logs.finish().await;
    Ran {
        ended: execution.ended,
        work_dir: execution.work_dir,
        chunks: collector.await.unwrap(),
    }
}

async fn run(root: &Path, a: &Assignment) -> Ran {
    run_with(root, a, &Stop::new()).await
}

/// Alive and not a zombie waiting for a reaper.
pub(crate) fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub(crate) async fn wait_gone(pid: i32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn read_pid(path: &PathBuf) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "no pid file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_command_list_stops_at_the_first_failing_command() {
    let root = tempfile::tempdir().unwrap();
    let a = assignment(Action::Run(Script::List(vec![
        "echo one".into(),
        "false".into(),
        "echo two".into(),
    ])));
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::exited(1));
    assert_eq!(ran.text(Stream::Stdout), "one\n");
}

#[tokio::test]
async fn later_commands_see_earlier_ones_and_success_exits_zero() {
    let root = tempfile::tempdir().unwrap();
    let a = assignment(Action::Run(Script::List(vec![
        "mkdir sub".into(),
        "cd sub".into(),
        "X=42".into(),
        "echo \"$X $(basename \"$PWD\")\"".into(),
    ])));
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::exited(0));
    assert_eq!(ran.text(Stream::Stdout), "42 sub\n");
}

#[tokio::test]
async fn the_process_sees_node_env_and_baton_variables_in_its_work_dir() {
    let root = tempfile::tempdir().unwrap();
    let mut a = assignment(script(
        "echo \"$GREETING|$BATON_RUN_ID|$BATON_WORKFLOW|$BATON_NODE|$BATON_ATTEMPT\"\n\
         echo \"$BATON_WORK_DIR\"; pwd -P; ls -A | wc -l; echo oops >&2",
    ));
    a.env.insert("GREETING".into(), "hello world".into());
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::exited(0));
    let out = ran.text(Stream::Stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello world|run/01|wf|build|2");
    let dir = ran.work_dir.as_ref().unwrap().path();
    assert_eq!(dir, root.path().join("run_01-build-2"));
    assert_eq!(lines[1], dir.to_str().unwrap());
    assert_eq!(Path::new(lines[2]), dir.canonicalize().unwrap());
    assert_eq!(lines[3].trim(), "0", "the work dir starts empty");
    assert_eq!(ran.text(Stream::Stderr), "oops\n");
}

#[tokio::test]
async fn the_work_dir_is_fresh_during_the_run_and_gone_after() {
    let root = tempfile::tempdir().unwrap();
    let a = assignment(script(
        "test ! -e leftover; touch made; test -d \"$BATON_WORK_DIR\"",
    ));
    let leftover = root.path().join("run_01-build-2");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("leftover"), "x").unwrap();
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::exited(0));
    let dir = ran.work_dir.unwrap();
    let path = dir.path().to_owned();
    assert!(path.join("made").exists());
    dir.remove().await;
    assert!(!path.exists());
}

#[tokio::test]
async fn the_output_file_starts_empty_beside_the_work_dir_and_goes_with_it() {
    let root = tempfile::tempdir().unwrap();
    let a = assignment(script(
        "test -f \"$BATON_OUTPUT\"; test ! -s \"$BATON_OUTPUT\"\n\
         echo answer=42 >> \"$BATON_OUTPUT\"; echo \"$BATON_OUTPUT\"",
    ));
    let leftover = root.path().join("run_01-build-2.output");
    std::fs::write(&leftover, "stale=1\n").unwrap();
    let ran = run(root.path(), &a).await;
    assert_eq!(
        ran.outcome(),
        Outcome::exited(0),
        "{:?}",
        ran.text(Stream::Stderr)
    );
    assert_eq!(
        ran.text(Stream::Stdout).trim_end(),
        leftover.to_str().unwrap()
    );
    let dir = ran.work_dir.unwrap();
    assert_eq!(dir.output_file(), leftover);
    assert!(!dir.output_file().starts_with(dir.path()));
    assert_eq!(std::fs::read_to_string(&leftover).unwrap(), "answer=42\n");
    dir.remove().await;
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

pub(crate) fn outputs_of(ran: &Ran) -> &baton_core::Outputs {
    match &ran.ended {
        Ended::Finished { outputs, .. } => outputs,
        Ended::Dropped => panic!("dropped"),
    }
}

#[tokio::test]
async fn inputs_reach_a_step_as_data_and_its_outputs_come_back() {
    let root = tempfile::tempdir().unwrap();
    let mut a = assignment(script(
        "echo \"$BATON_BUILD_X\" > x.txt; echo \"$BATON_WEB_APP_OUT_DIR\" >> x.txt\n\
         cat \"$BATON_INPUTS\"; echo; echo \"$BATON_BUILD_VERSION|$BATON_RUN_ID\"\n\
         ls -A | tr '\\n' ' '; echo\n\
         echo 'tag=v1=final' >> \"$BATON_OUTPUT\"\n\
         printf 'notes<<EOF\\nfirst\\nsecond\\nEOF\\n' >> \"$BATON_OUTPUT\"\n\
         exit 2",
    ));
    a.inputs.insert(
        "build".into(),
        [
            ("x".into(), "\"; touch pwned #".into()),
            ("version".into(), "1.2".into()),
        ]
        .into(),
    );
    a.inputs.insert(
        "web-app".into(),
        [("out-dir".into(), "$(touch pwned2) `touch pwned3`".into())].into(),
    );
    // An input whose name is one of Baton's own variables loses to it.
    a.inputs
        .insert("run".into(), [("id".into(), "fake".into())].into());
    // The node's env wins over inputs.
    a.env
        .insert("BATON_BUILD_VERSION".into(), "from-env".into());
    let ran = run(root.path(), &a).await;
    assert_eq!(
        ran.outcome(),
        Outcome::exited(2),
        "{}",
        ran.text(Stream::Stderr)
    );
    let out = ran.text(Stream::Stdout);
    let lines: Vec<&str> = out.lines().collect();
    let doc: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(doc, serde_json::to_value(&a.inputs).unwrap());
    assert_eq!(lines[1], "from-env|run/01");
    assert_eq!(lines[2].trim(), "x.txt", "only the step's own file");
    let dir = ran.work_dir.as_ref().unwrap().path();
    assert_eq!(
        std::fs::read_to_string(dir.join("x.txt")).unwrap(),
        "\"; touch pwned #\n$(touch pwned2) `touch pwned3`\n"
    );
    let outputs = outputs_of(&ran);
    assert_eq!(outputs["tag"], "v1=final");
    assert_eq!(outputs["notes"], "first\nsecond");
    assert_eq!(outputs.len(), 2);
}

#[tokio::test]
async fn outputs_over_the_limit_end_the_attempt_error_output() {
    let root = tempfile::tempdir().unwrap();
    let a = assignment(script("printf 'big=%070000d\\n' 0 >> \"$BATON_OUTPUT\""));
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome().state, AttemptState::Error);
    assert_eq!(ran.outcome().reason, Reason::Output);
    assert_eq!(ran.outcome().exit_code, Some(0));
    assert_eq!(
        ran.message(),
        Some(
            "bad $BATON_OUTPUT: outputs of 70005 bytes are too large: at most 65536 bytes \
             (the work exited with code 0)"
        )
    );
    assert!(outputs_of(&ran).is_empty());
}

#[tokio::test]
async fn exit_codes_and_signals_map_to_outcomes() {
    let root = tempfile::tempdir().unwrap();
    let ran = run(root.path(), &assignment(script("exit 3"))).await;
    assert_eq!(ran.outcome(), Outcome::exited(3));
    assert_eq!(ran.outcome().state, AttemptState::Failure);

    let ran = run(root.path(), &assignment(script("kill -9 $$"))).await;
    assert_eq!(ran.outcome(), Outcome::exited(137));
    assert_eq!(ran.message(), Some("killed by SIGKILL"));
}

#[tokio::test]
async fn invalid_utf8_output_is_replaced_not_dropped() {
    let root = tempfile::tempdir().unwrap();
    let ran = run(root.path(), &assignment(script("printf 'a\\377b\\n'"))).await;
    assert_eq!(ran.text(Stream::Stdout), "a\u{FFFD}b\n");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pid_file = out.path().join("bg.pid");
    let mut a = assignment(script("sleep 300 & echo $! > \"$PID_FILE\"; sleep 300"));
    a.env
        .insert("PID_FILE".into(), pid_file.to_str().unwrap().into());
    a.timeout_ms = Some(300);
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Timeout));
    assert!(ran.message().unwrap().starts_with("timed out after"));
    let pid = read_pid(&pid_file).await;
    wait_gone(pid).await;
}

#[tokio::test]
async fn a_group_ignoring_sigterm_is_killed_after_the_grace() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pid_file = out.path().join("bg.pid");
    let mut a = assignment(script(
        "trap '' TERM; sleep 300 & echo $! > \"$PID_FILE\"; sleep 300",
    ));
    a.env
        .insert("PID_FILE".into(), pid_file.to_str().unwrap().into());
    a.timeout_ms = Some(200);
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Timeout));
    wait_gone(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn background_leftovers_are_killed_when_the_script_exits() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pid_file = out.path().join("bg.pid");
    let mut a = assignment(script(
        "sleep 300 >/dev/null 2>&1 & echo $! > \"$PID_FILE\"",
    ));
    a.env
        .insert("PID_FILE".into(), pid_file.to_str().unwrap().into());
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::exited(0));
    wait_gone(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn a_cancel_kills_the_process_and_ends_canceled() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pid_file = out.path().join("sh.pid");
    let mut a = assignment(script("echo $$ > \"$PID_FILE\"; sleep 300"));
    a.env
        .insert("PID_FILE".into(), pid_file.to_str().unwrap().into());
    let stop = Stop::new();
    let stopper = {
        let stop = stop.clone();
        let pid_file = pid_file.clone();
        tokio::spawn(async move {
            read_pid(&pid_file).await;
            stop.stop(StopReason::Cancel);
        })
    };
    let ran = run_with(root.path(), &a, &stop).await;
    stopper.await.unwrap();
    assert_eq!(ran.outcome(), Outcome::canceled(Reason::Canceled));
    wait_gone(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn a_stale_attempt_is_killed_and_dropped() {
    let root = tempfile::tempdir().unwrap();
    let stop = Stop::new();
    stop.stop(StopReason::Stale);
    let ran = run_with(root.path(), &assignment(script("sleep 300")), &stop).await;
    assert_eq!(ran.ended, Ended::Dropped);
}

/// Names the agent's environment holds (this test process's) that are neither on the
/// allow-list nor Baton's: a step must not see any of them unless passed.
fn private_agent_vars() -> Vec<String> {
    // The shell sets these itself, whatever it was given.
    let shell_own = ["PWD", "OLDPWD", "SHLVL", "_"];
    let allowed = |n: &str| {
        crate::step_env::ALLOWED.contains(&n)
            || shell_own.contains(&n)
            || n.starts_with("LC_")
            || n.starts_with("BATON_")
    };
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| !allowed(k))
        .collect();
    assert!(!names.is_empty(), "cargo always sets some CARGO_* variable");
    names
}

fn env_names(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect()
}

#[tokio::test]
async fn a_step_gets_a_clean_environment() {
    let root = tempfile::tempdir().unwrap();
    let mut a = assignment(script("env"));
    a.env.insert("GREETING".into(), "hi".into());
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::exited(0));
    let out = ran.text(Stream::Stdout);
    let names = env_names(&out);
    for private in private_agent_vars() {
        assert!(
            !names.contains(&private.as_str()),
            "{private} leaked: {out}"
        );
    }
    assert!(names.contains(&"PATH"), "{out}");
    assert!(out.lines().any(|l| l == "GREETING=hi"), "{out}");
    assert!(out.lines().any(|l| l == "BATON_NODE=build"), "{out}");
}

#[tokio::test]
async fn pass_env_hands_one_more_variable_to_steps() {
    let root = tempfile::tempdir().unwrap();
    let private = private_agent_vars();
    let passed = private[0].clone();
    let functions = Registry::new(&[], None).unwrap();
    let a = assignment(script("env"));
    let ran = run_passing(
        root.path(),
        &functions,
        &a,
        &Stop::new(),
        std::slice::from_ref(&passed),
    )
    .await;
    let out = ran.text(Stream::Stdout);
    let names = env_names(&out);
    assert!(names.contains(&passed.as_str()), "{passed} missing: {out}");
    for other in &private[1..] {
        assert!(!names.contains(&other.as_str()), "{other} leaked: {out}");
    }
}

#[tokio::test]
async fn a_spawn_failure_is_a_setup_error() {
    let root = tempfile::tempdir().unwrap();
    let mut a = assignment(script("true"));
    a.env.insert("PATH".into(), "/nonexistent".into());
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Setup));
    assert!(ran.message().unwrap().contains("cannot start sh"));
}

#[tokio::test]
async fn an_unusable_work_root_is_a_setup_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let ran = run(&file, &assignment(script("true"))).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Setup));
    assert!(ran.work_dir.is_none());
}

#[tokio::test]
async fn noop_succeeds_without_a_work_dir() {
    let root = tempfile::tempdir().unwrap();
    let ran = run(
        root.path(),
        &assignment(uses("noop", serde_json::Value::Null)),
    )
    .await;
    assert_eq!(ran.outcome().state, AttemptState::Success);
    assert!(ran.work_dir.is_none());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn sleep_checks_its_arguments_and_honours_timeout_and_cancel() {
    let root = tempfile::tempdir().unwrap();
    let ok = run(
        root.path(),
        &assignment(uses("sleep", serde_json::json!({"seconds": 0.01}))),
    )
    .await;
    assert_eq!(ok.outcome().state, AttemptState::Success);

    for bad in [
        serde_json::json!({"seconds": -1}),
        serde_json::json!({"seconds": 86401}),
        serde_json::json!({"seconds": "1"}),
        serde_json::json!({}),
    ] {
        let ran = run(root.path(), &assignment(uses("sleep", bad))).await;
        assert_eq!(ran.outcome(), Outcome::error(Reason::Setup));
        assert!(ran.message().unwrap().contains("seconds"));
    }

    let mut a = assignment(uses("sleep", serde_json::json!({"seconds": 300})));
    a.timeout_ms = Some(20);
    let ran = run(root.path(), &a).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Timeout));

    let stop = Stop::new();
    stop.stop(StopReason::Shutdown);
    let a = assignment(uses("sleep", serde_json::json!({"seconds": 300})));
    let ran = run_with(root.path(), &a, &stop).await;
    assert_eq!(ran.outcome(), Outcome::canceled(Reason::Shutdown));
}

#[tokio::test]
async fn unknown_functions_are_setup_errors() {
    let root = tempfile::tempdir().unwrap();
    let ran = run(
        root.path(),
        &assignment(uses("terraform-plan", serde_json::json!({}))),
    )
    .await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Setup));
    assert!(ran.message().unwrap().contains("terraform-plan"));
}
