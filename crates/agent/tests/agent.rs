//! End to end: a real server on 127.0.0.1 port 0 and real agent tasks running real shells.

mod support;

use std::time::Duration;

use anyhow::Result;
use baton_core::{AttemptState, NodeState, Reason, RunState};
use support::{TestAgent, TestServer, alive, init_tracing, read_pid, wait_for};

const GRACE: Duration = Duration::from_secs(10);

fn finished(doc: &baton_api::RunDoc) -> bool {
    doc.status.is_terminal()
}

#[tokio::test]
async fn a_diamond_runs_to_success_with_logs_and_artifacts() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path(), 15_000).await?;
    let agent = TestAgent::spawn(
        vec![server.url.clone()],
        &server.enroll,
        "diamond",
        2,
        GRACE,
    );
    let admin = server.admin();
    let run = admin
        .start_run(
            "name: diamond\n\
             env: {GREETING: hi}\n\
             nodes:\n\
             \x20 a:\n\
             \x20   run: echo \"$GREETING from $BATON_NODE\"\n\
             \x20 b:\n\
             \x20   needs: [a]\n\
             \x20   uses: noop\n\
             \x20 c:\n\
             \x20   needs: [a]\n\
             \x20   run: [\"echo to-stderr >&2\", \"true\"]\n\
             \x20 d:\n\
             \x20   needs: [b, c]\n\
             \x20   run: [\"mkdir -p dist/sub\", \"echo built > dist/sub/out.txt\", \"echo skip > other.txt\"]\n\
             \x20   artifacts: [\"dist/**\"]\n",
        )
        .await?;
    let doc = admin.wait_run(&run.id, finished).await?;
    assert_eq!(doc.status, RunState::Success, "{doc:#?}");
    for (id, node) in &doc.nodes {
        assert_eq!(node.status, NodeState::Success, "node {id}");
        assert_eq!(node.attempts.len(), 1);
        assert_eq!(node.attempts[0].agent, "diamond");
    }
    assert_eq!(admin.logs(&run.id, "a").await?, "hi from a\n");
    assert_eq!(admin.logs(&run.id, "c").await?, "to-stderr\n");
    let artifacts = admin.artifacts(&run.id).await?;
    let paths: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["dist/sub/out.txt"]);
    assert_eq!(
        admin.artifact(&run.id, "d", 1, "dist/sub/out.txt").await?,
        "built\n"
    );
    // Every work dir is gone once its attempt ended; the last one is removed just after
    // its report, so it may still be going when the run is seen finished.
    let root = agent.work_root.path().join("work");
    wait_for("every work dir removed", || {
        std::fs::read_dir(&root).is_ok_and(|mut d| d.next().is_none())
    })
    .await?;
    agent.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn a_canceled_run_kills_its_running_node() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let pids = tempfile::tempdir()?;
    let pid_file = pids.path().join("pid");
    let server = TestServer::start(data.path(), 15_000).await?;
    let agent = TestAgent::spawn(
        vec![server.url.clone()],
        &server.enroll,
        "canceler",
        1,
        GRACE,
    );
    let admin = server.admin();
    let source = format!(
        "name: cancel-me\nnodes:\n  long:\n    run: echo $$ > {}; exec sleep 30\n  after:\n    needs: [long]\n    uses: noop\n",
        pid_file.display()
    );
    let run = admin.start_run(&source).await?;
    let pid = read_pid(&pid_file).await?;
    admin
        .wait_run(&run.id, |d| d.nodes["long"].status == NodeState::Running)
        .await?;
    admin.cancel(&run.id).await?;
    let doc = admin.wait_run(&run.id, finished).await?;
    assert_eq!(doc.status, RunState::Canceled);
    let attempt = &doc.nodes["long"].attempts[0];
    assert_eq!(attempt.status, AttemptState::Canceled);
    assert_eq!(attempt.reason, Some(Reason::Canceled));
    wait_for("the killed process to go", || !alive(pid)).await?;
    agent.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_past_the_grace_reports_shutdown_and_deregisters() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let pids = tempfile::tempdir()?;
    let pid_file = pids.path().join("pid");
    let server = TestServer::start(data.path(), 15_000).await?;
    let grace = Duration::from_millis(200);
    let agent = TestAgent::spawn(vec![server.url.clone()], &server.enroll, "leaver", 1, grace);
    let admin = server.admin();
    let source = format!(
        "name: outlive\nnodes:\n  long:\n    run: echo $$ > {}; sleep 30\n",
        pid_file.display()
    );
    let run = admin.start_run(&source).await?;
    let pid = read_pid(&pid_file).await?;
    admin
        .wait_run(&run.id, |d| d.nodes["long"].status == NodeState::Running)
        .await?;
    agent.shut_down().await?;
    assert!(!alive(pid), "the process outlived the agent");
    let doc = admin
        .wait_run(&run.id, |d| {
            d.nodes["long"].attempts[0].status.is_terminal()
        })
        .await?;
    let attempt = &doc.nodes["long"].attempts[0];
    assert_eq!(attempt.status, AttemptState::Canceled);
    assert_eq!(attempt.reason, Some(Reason::Shutdown));
    let agents = admin.agents().await?;
    let me = agents.iter().find(|a| a.name == "leaver").expect("listed");
    assert_eq!(me.status, "gone");
    Ok(())
}

#[tokio::test]
async fn an_agent_started_before_its_server_registers_once_it_is_up() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    // A first start makes the token files; the agent needs the enrollment token.
    let mut first = TestServer::start(data.path(), 15_000).await?;
    let enroll = first.enroll.clone();
    first.shut_down().await?;
    // Hold a port and take (and drop) the agent's first try to reach it, so the agent has
    // provably failed once before the server is there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let agent = TestAgent::spawn(vec![format!("http://{addr}")], &enroll, "early", 1, GRACE);
    let (socket, _) = tokio::time::timeout(support::DEADLINE, listener.accept()).await??;
    drop(socket);
    drop(listener);
    let server = TestServer::start_on(data.path(), 15_000, addr).await?;
    let admin = server.admin();
    admin
        .wait_agents(|agents| {
            agents
                .iter()
                .any(|a| a.name == "early" && a.status == "online")
        })
        .await?;
    let run = admin
        .start_run("name: early\nnodes:\n  one:\n    uses: noop\n")
        .await?;
    let doc = admin.wait_run(&run.id, finished).await?;
    assert_eq!(doc.status, RunState::Success);
    agent.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn a_bad_enrollment_token_fails_registration_at_once() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path(), 15_000).await?;
    let mut agent = TestAgent::spawn(
        vec![server.url.clone()],
        "baton_agent_nope",
        "intruder",
        1,
        GRACE,
    );
    match agent.join().await {
        Err(baton_agent::AgentError::Register(e)) => {
            assert_eq!(e.status(), Some(401), "{e}")
        }
        other => panic!("expected a refused registration, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn an_unreachable_first_server_fails_over_to_the_next() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path(), 15_000).await?;
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let servers = vec![format!("http://{dead}"), server.url.clone()];
    let agent = TestAgent::spawn(servers, &server.enroll, "failover", 1, GRACE);
    let admin = server.admin();
    let run = admin
        .start_run("name: failover\nnodes:\n  one:\n    run: echo via the second server\n")
        .await?;
    let doc = admin.wait_run(&run.id, finished).await?;
    assert_eq!(doc.status, RunState::Success);
    assert_eq!(admin.logs(&run.id, "one").await?, "via the second server\n");
    agent.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn a_node_timeout_is_reported_as_a_timeout_error() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path(), 15_000).await?;
    let agent = TestAgent::spawn(vec![server.url.clone()], &server.enroll, "timer", 1, GRACE);
    let admin = server.admin();
    let run = admin
        .start_run("name: slow\nnodes:\n  slow:\n    run: sleep 30\n    timeout: 200ms\n")
        .await?;
    let doc = admin.wait_run(&run.id, finished).await?;
    assert_eq!(doc.status, RunState::Error);
    let attempt = &doc.nodes["slow"].attempts[0];
    assert_eq!(attempt.status, AttemptState::Error);
    assert_eq!(attempt.reason, Some(Reason::Timeout));
    agent.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn work_whose_lease_cannot_be_renewed_is_killed() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let pids = tempfile::tempdir()?;
    let pid_file = pids.path().join("pid");
    let mut server = TestServer::start(data.path(), 1_000).await?;
    let agent = TestAgent::spawn(
        vec![server.url.clone()],
        &server.enroll,
        "partitioned",
        1,
        GRACE,
    );
    let admin = server.admin();
    let source = format!(
        "name: partition\nnodes:\n  long:\n    run: echo $$ > {}; sleep 30\n",
        pid_file.display()
    );
    let run = admin.start_run(&source).await?;
    let pid = read_pid(&pid_file).await?;
    admin
        .wait_run(&run.id, |d| d.nodes["long"].status == NodeState::Running)
        .await?;
    // The server goes away: heartbeats fail, and after a lease the agent kills the work.
    server.shut_down().await?;
    wait_for("the unrenewed work to be killed", || !alive(pid)).await?;
    agent.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn a_finished_result_survives_a_server_outage() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let flags = tempfile::tempdir()?;
    let go = flags.path().join("go");
    let running = flags.path().join("running");
    let mut server = TestServer::start(data.path(), 15_000).await?;
    let addr = server.addr;
    let agent = TestAgent::spawn(
        vec![server.url.clone()],
        &server.enroll,
        "patient",
        1,
        GRACE,
    );
    let admin = server.admin();
    let source = format!(
        "name: outage\nnodes:\n  step:\n    run: touch {}; while [ ! -e {} ]; do sleep 0.02; done\n",
        running.display(),
        go.display()
    );
    let run = admin.start_run(&source).await?;
    wait_for("the step to run", || running.exists()).await?;
    admin
        .wait_run(&run.id, |d| d.nodes["step"].status == NodeState::Running)
        .await?;
    server.shut_down().await?;
    // While no server answers on the address, the step ends; the agent's report must fail
    // (seen here: a stand-in takes the request and hangs up) and wait for a real server.
    let stand_in = tokio::net::TcpListener::bind(addr).await?;
    std::fs::write(&go, "")?;
    tokio::time::timeout(support::DEADLINE, refuse_until(&stand_in, "/report")).await??;
    drop(stand_in);
    let server = TestServer::start_on(data.path(), 15_000, addr).await?;
    let admin = server.admin();
    let doc = admin.wait_run(&run.id, finished).await?;
    assert_eq!(doc.status, RunState::Success, "{doc:#?}");
    assert_eq!(doc.nodes["step"].attempts.len(), 1);
    agent.shut_down().await?;
    Ok(())
}

/// Accepts connections and hangs up on each, until one carries a request for `path_part`.
async fn refuse_until(listener: &tokio::net::TcpListener, path_part: &str) -> Result<()> {
    use tokio::io::AsyncReadExt;
    loop {
        let (mut socket, _) = listener.accept().await?;
        let mut head = vec![0u8; 4096];
        let n = socket.read(&mut head).await.unwrap_or(0);
        let line = String::from_utf8_lossy(&head[..n]);
        let first = line.lines().next().unwrap_or_default().to_owned();
        drop(socket);
        if first.contains(path_part) {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn a_full_agent_takes_the_next_node_when_a_slot_frees() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path(), 15_000).await?;
    let agent = TestAgent::spawn(vec![server.url.clone()], &server.enroll, "single", 1, GRACE);
    let admin = server.admin();
    let run = admin
        .start_run(
            "name: two\nnodes:\n  x:\n    run: sleep 0.2\n  y:\n    run: sleep 0.2\n  z:\n    needs: [x, y]\n    run: exit 4\n",
        )
        .await?;
    let doc = admin.wait_run(&run.id, finished).await?;
    assert_eq!(doc.status, RunState::Failure);
    let (x, y) = (&doc.nodes["x"].attempts[0], &doc.nodes["y"].attempts[0]);
    assert_eq!(
        (x.status, y.status),
        (AttemptState::Success, AttemptState::Success)
    );
    // One slot: the second node started only after the first one was reported.
    let (first, second) = if x.started_at <= y.started_at {
        (x, y)
    } else {
        (y, x)
    };
    assert!(second.started_at >= first.finished_at, "{doc:#?}");
    let z = &doc.nodes["z"].attempts[0];
    assert_eq!((z.status, z.exit_code), (AttemptState::Failure, Some(4)));
    agent.shut_down().await?;
    Ok(())
}
