//! An agent with a function written in Rust (the `custom_agent` example's `checksum`),
//! against a real server on 127.0.0.1 port 0.

#[expect(
    dead_code,
    reason = "each test binary uses a part of the shared support"
)]
mod support;

#[path = "../examples/custom_agent/checksum.rs"]
mod checksum;

use anyhow::Result;
use baton_agent::{AgentError, FunctionsError};
use baton_core::{AttemptState, NodeState, Reason, RunState};
use support::{TestAgent, TestServer, init_tracing};

/// SHA-256 of `hello`.
const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

#[tokio::test]
async fn a_rust_function_runs_its_nodes_with_logs_and_outcomes() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path(), 15_000).await?;
    let agent = TestAgent::spawn_with(
        vec![server.url.clone()],
        &server.enroll,
        "custom",
        |config| config.with_function(checksum::Checksum),
    );
    let admin = server.admin();
    let agents = admin
        .wait_agents(|agents| agents.iter().any(|a| a.name == "custom"))
        .await?;
    assert_eq!(agents[0].functions, ["checksum", "noop", "shell", "sleep"]);
    let run = admin
        .start_run(&format!(
            "name: sums\n\
             nodes:\n\
             \x20 good:\n\
             \x20   uses: checksum\n\
             \x20   with: {{text: hello, expect: {HELLO}}}\n\
             \x20 wrong:\n\
             \x20   uses: checksum\n\
             \x20   with: {{text: hello, expect: beef}}\n\
             \x20 bad:\n\
             \x20   uses: checksum\n\
             \x20   with: {{}}\n\
             \x20 show:\n\
             \x20   needs: [good]\n\
             \x20   run: 'echo \"$BATON_GOOD_SHA256\"'\n"
        ))
        .await?;
    let doc = admin.wait_run(&run.id, |d| d.status.is_terminal()).await?;
    assert_eq!(doc.status, RunState::Failure, "{doc:#?}");
    assert_eq!(doc.nodes["good"].status, NodeState::Success);
    assert_eq!(
        admin.logs(&run.id, "good").await?,
        format!("sha256 {HELLO}\n")
    );
    // Its output reaches the node that needs it.
    assert_eq!(doc.nodes["good"].outputs["sha256"], HELLO);
    assert_eq!(doc.nodes["show"].status, NodeState::Success);
    assert_eq!(admin.logs(&run.id, "show").await?, format!("{HELLO}\n"));

    let wrong = &doc.nodes["wrong"].attempts[0];
    assert_eq!(wrong.status, AttemptState::Failure);
    assert_eq!(wrong.exit_code, Some(1));
    assert!(
        wrong
            .message
            .as_deref()
            .is_some_and(|m| m.contains("not beef")),
        "{wrong:?}"
    );

    let bad = &doc.nodes["bad"].attempts[0];
    assert_eq!(
        (bad.status, bad.reason),
        (AttemptState::Error, Some(Reason::Setup))
    );
    assert!(
        bad.message
            .as_deref()
            .is_some_and(|m| m.contains("with: {text: STRING}")),
        "{bad:?}"
    );
    agent.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn an_agent_refuses_to_start_when_a_function_takes_a_builtin_name() -> Result<()> {
    struct Shadow;

    #[baton_agent::async_trait]
    impl baton_agent::Function for Shadow {
        fn name(&self) -> &str {
            "noop"
        }

        async fn call(
            &self,
            _ctx: baton_agent::CallContext<'_>,
        ) -> Result<baton_agent::CallOutcome, baton_agent::FunctionError> {
            Ok(baton_agent::CallOutcome::Success)
        }
    }

    init_tracing();
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path(), 15_000).await?;
    let mut agent = TestAgent::spawn_with(vec![server.url.clone()], &server.enroll, "x", |c| {
        c.with_function(Shadow)
    });
    let err = agent.join().await.unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::Functions(FunctionsError::ShadowsBuiltin { ref name }) if name == "noop"
        ),
        "{err:?}"
    );
    // It never registered.
    assert!(server.admin().agents().await?.is_empty());
    Ok(())
}
