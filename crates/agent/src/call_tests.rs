//! Rust functions called as an attempt calls them: logs, outcomes, timeout and cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_api::Stream;
use baton_core::{Outcome, Reason};
use serde_json::json;

use crate::function::{CallContext, CallOutcome, Function, FunctionError};
use crate::functions::tests::{Ran, assignment, outputs_of, run_in, uses};
use crate::registry::{FunctionsError, Registry};
use crate::stop::{Stop, StopReason};

/// Logs what it was given, then ends as `with.end` says.
struct Echo;

#[async_trait::async_trait]
impl Function for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    async fn call(&self, ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
        let log = ctx.log();
        log.line(format!(
            "{} {}/{}/{}/{} {}",
            ctx.function(),
            ctx.run_id(),
            ctx.workflow(),
            ctx.node(),
            ctx.attempt(),
            ctx.inputs()
        ))
        .await;
        log.line(format!("env {}", ctx.env()["GREETING"])).await;
        if let Some(secret) = ctx.secret("API_KEY") {
            log.line(format!("secret of {} bytes", secret.len())).await;
        }
        for i in 0..200 {
            log.line(format!("line {i}")).await;
        }
        log.error_line("to stderr\n").await;
        match ctx.with()["end"].as_str() {
            Some("fail") => Ok(CallOutcome::Failure {
                exit_code: 4,
                message: Some("checksum mismatch".into()),
            }),
            Some("error") => Err(FunctionError::with_source(
                "cannot reach the registry",
                std::io::Error::other("connection refused"),
            )),
            _ => Ok(CallOutcome::Success),
        }
    }
}

/// Waits for its token; records that it saw it, unless told to ignore it.
struct Wait {
    saw_cancel: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Function for Wait {
    fn name(&self) -> &str {
        "wait"
    }

    async fn call(&self, ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
        ctx.log().line("waiting").await;
        if ctx.with()["ignore_cancel"] == json!(true) {
            std::future::pending::<()>().await;
        }
        ctx.cancelled().await;
        self.saw_cancel.store(true, Ordering::SeqCst);
        ctx.log().line("cleaning up").await;
        Ok(CallOutcome::Success)
    }
}

fn registry(saw_cancel: &Arc<AtomicBool>) -> Registry {
    let functions: Vec<Arc<dyn Function>> = vec![
        Arc::new(Echo),
        Arc::new(Wait {
            saw_cancel: Arc::clone(saw_cancel),
        }),
    ];
    Registry::new(&functions, None).unwrap()
}

async fn call(
    with: serde_json::Value,
    function: &str,
    stop: &Stop,
    timeout_ms: Option<u64>,
) -> (Ran, bool) {
    let root = tempfile::tempdir().unwrap();
    let saw = Arc::new(AtomicBool::new(false));
    let mut a = assignment(uses(function, with));
    a.env.insert("GREETING".into(), "hi".into());
    a.timeout_ms = timeout_ms;
    let ran = run_in(root.path(), &registry(&saw), &a, stop).await;
    assert!(ran.work_dir.is_none(), "a Rust function gets no work dir");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    (ran, saw.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_function_logs_lines_in_order_and_succeeds() {
    let (ran, _) = call(json!({}), "echo", &Stop::new(), None).await;
    assert_eq!(ran.outcome().state, baton_core::AttemptState::Success);
    assert_eq!(ran.outcome().exit_code, None);
    let out = ran.text(Stream::Stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("echo run/01/wf/build/2 {}"));
    assert_eq!(lines.next(), Some("env hi"));
    let numbered: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
    assert_eq!(lines.collect::<Vec<_>>(), numbered);
    assert_eq!(ran.text(Stream::Stderr), "to stderr\n");
    let seqs: Vec<u32> = ran.chunks.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (0..ran.chunks.len() as u32).collect::<Vec<_>>());
}

#[tokio::test]
async fn failures_and_errors_of_a_function_end_the_attempt_so() {
    let (ran, _) = call(json!({"end": "fail"}), "echo", &Stop::new(), None).await;
    assert_eq!(
        ran.outcome(),
        Outcome {
            state: baton_core::AttemptState::Failure,
            reason: Reason::Exit,
            exit_code: Some(4)
        }
    );
    assert_eq!(ran.message(), Some("checksum mismatch"));

    let (ran, _) = call(json!({"end": "error"}), "echo", &Stop::new(), None).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Setup));
    assert_eq!(
        ran.message(),
        Some("cannot reach the registry: connection refused")
    );
}

#[tokio::test]
async fn a_timeout_cancels_the_token_and_keeps_the_last_lines() {
    let (ran, saw_cancel) = call(json!({}), "wait", &Stop::new(), Some(50)).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Timeout));
    assert!(saw_cancel);
    assert_eq!(ran.text(Stream::Stdout), "waiting\ncleaning up\n");
}

#[tokio::test]
async fn a_cancel_ends_the_attempt_canceled() {
    let stop = Stop::new();
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            stop.stop(StopReason::Cancel);
        })
    };
    let (ran, saw_cancel) = call(json!({}), "wait", &stop, None).await;
    stopper.await.unwrap();
    assert_eq!(ran.outcome(), Outcome::canceled(Reason::Canceled));
    assert!(saw_cancel);
}

#[tokio::test]
async fn a_function_ignoring_its_token_is_abandoned_after_the_grace() {
    let stop = Stop::new();
    stop.stop(StopReason::Shutdown);
    let (ran, saw_cancel) = call(json!({"ignore_cancel": true}), "wait", &stop, None).await;
    assert_eq!(ran.outcome(), Outcome::canceled(Reason::Shutdown));
    assert!(!saw_cancel);
    assert!(
        ran.text(Stream::Stderr).contains("wait did not return"),
        "{}",
        ran.text(Stream::Stderr)
    );
}

#[test]
fn function_names_must_be_valid_and_free() {
    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Function for Named {
        fn name(&self) -> &str {
            self.0
        }

        async fn call(&self, _ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
            Ok(CallOutcome::Success)
        }
    }

    let build = |names: &[&'static str]| {
        let functions: Vec<Arc<dyn Function>> = names
            .iter()
            .map(|&n| Arc::new(Named(n)) as Arc<dyn Function>)
            .collect();
        Registry::new(&functions, None)
    };
    let ok = build(&["checksum", "deploy_2"]).unwrap();
    assert_eq!(
        ok.names(),
        ["checksum", "deploy_2", "noop", "shell", "sleep"]
    );
    assert!(matches!(
        build(&["Checksum"]),
        Err(FunctionsError::BadName { .. })
    ));
    assert!(matches!(
        build(&["sleep"]),
        Err(FunctionsError::ShadowsBuiltin { .. })
    ));
    let err = build(&["a", "a"]).unwrap_err();
    assert_eq!(err.to_string(), "two functions are named \"a\"");
}

/// Passes its input `build.version` on as output `version`, and sets what `with.set` names.
struct Pass;

#[async_trait::async_trait]
impl Function for Pass {
    fn name(&self) -> &str {
        "pass"
    }

    async fn call(&self, ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
        let version = ctx.input("build", "version").unwrap_or("none");
        ctx.set_output("version", format!("{version}-final"))?;
        ctx.log().line(ctx.inputs().to_string()).await;
        // A refused output changes nothing; the function may carry on.
        let refused = ctx.set_output("1bad", "x").expect_err("a bad key");
        ctx.log().line(refused.to_string()).await;
        if let Some(key) = ctx.with()["set"].as_str() {
            ctx.set_output(key, "v")?;
        }
        match ctx.with()["end"].as_str() {
            Some("fail") => Ok(CallOutcome::failure("failed after setting outputs")),
            _ => Ok(CallOutcome::Success),
        }
    }
}

async fn pass(with: serde_json::Value) -> Ran {
    let root = tempfile::tempdir().unwrap();
    let functions: Vec<Arc<dyn Function>> = vec![Arc::new(Pass)];
    let registry = Registry::new(&functions, None).unwrap();
    let mut a = assignment(uses("pass", with));
    a.inputs
        .insert("build".into(), [("version".into(), "1.2".into())].into());
    run_in(root.path(), &registry, &a, &Stop::new()).await
}

#[tokio::test]
async fn a_function_reads_its_inputs_and_sets_outputs() {
    let ran = pass(json!({})).await;
    assert_eq!(ran.outcome().state, baton_core::AttemptState::Success);
    let outputs = outputs_of(&ran);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs["version"], "1.2-final");
    let out = ran.text(Stream::Stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], r#"{"build":{"version":"1.2"}}"#);
    assert!(
        lines[1].starts_with("\"1bad\" is not an output key"),
        "{out}"
    );

    // A failure keeps its outputs too.
    let ran = pass(json!({"end": "fail"})).await;
    assert_eq!(ran.outcome().state, baton_core::AttemptState::Failure);
    assert_eq!(outputs_of(&ran)["version"], "1.2-final");
}

#[tokio::test]
async fn a_refused_output_passed_on_ends_the_attempt_error_output() {
    let ran = pass(json!({"set": "has space"})).await;
    assert_eq!(ran.outcome(), Outcome::error(Reason::Output));
    let message = ran.message().unwrap();
    assert!(
        message.starts_with("bad output: \"has space\" is not an output key"),
        "{message}"
    );
    assert!(outputs_of(&ran).is_empty());
}

#[tokio::test]
async fn a_function_reads_the_secrets_its_node_refers_to() {
    let root = tempfile::tempdir().unwrap();
    let saw = Arc::new(AtomicBool::new(false));
    let mut a = assignment(uses("echo", json!({})));
    a.env.insert("GREETING".into(), "hi".into());
    a.secrets.insert(
        "API_KEY".into(),
        baton_api::SecretValue("eleven-byte".into()),
    );
    let ran = run_in(root.path(), &registry(&saw), &a, &Stop::new()).await;
    let out = ran.text(Stream::Stdout);
    assert_eq!(out.lines().nth(2), Some("secret of 11 bytes"), "{out}");
}
