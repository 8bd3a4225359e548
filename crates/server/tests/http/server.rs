//! A started server on 127.0.0.1 port 0, called over real HTTP.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use baton_server::{Server, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{CHAIN, PATIENCE};

struct Running {
    server: Server,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Running {
    async fn start(data_dir: &Path, lease_ms: u64) -> Result<Running> {
        Running::start_with(data_dir, |c| c.lease_ms = lease_ms).await
    }

    async fn start_with(
        data_dir: &Path,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<Running> {
        let mut config = ServerConfig::new(data_dir.to_path_buf());
        config.listen = "127.0.0.1:0".parse()?;
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let server = Server::start(config, shutdown.clone()).await?;
        Ok(Running {
            server,
            shutdown,
            http: reqwest::Client::new(),
        })
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Result<(StatusCode, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.server.url()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, value))
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        let response = self
            .http
            .get(format!("{}{path}", self.server.url()))
            .bearer_auth(self.server.admin_token())
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.server.wait())
            .await
            .context("the server drains promptly")??;
        Ok(())
    }
}

#[tokio::test]
async fn a_started_server_serves_keeps_its_tokens_and_stops_promptly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let running = Running::start(&data, 15_000).await?;
    let server = &running.server;
    assert_ne!(server.addr().port(), 0);
    assert_eq!(server.url(), format!("http://{}", server.addr()));

    let health: Value = reqwest::get(format!("{}/healthz", server.url()))
        .await?
        .json()
        .await?;
    assert_eq!(health, json!({"status": "ok"}));

    for (path, token) in [
        (server.admin_token_path(), server.admin_token()),
        (server.enroll_token_path(), server.enroll_token()),
    ] {
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        assert_eq!(std::fs::read_to_string(path)?.trim(), token);
    }
    assert_eq!(server.admin_token_path(), data.join("admin.token"));
    assert_eq!(server.enroll_token_path(), data.join("agent.token"));
    let admin = server.admin_token().to_owned();
    let enroll = server.enroll_token().to_owned();

    let (status, body) = running
        .post(
            "/api/v1/workflows",
            &admin,
            json!({"filename": "c.yaml", "source": CHAIN}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, agent) = running
        .post(
            "/api/v1/agent/register",
            &enroll,
            json!({"name": "n", "slots": 1, "functions": ["shell"]}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent_token = agent["token"].as_str().unwrap().to_owned();

    // A claim held over real HTTP ends when the server shuts down.
    let claim = {
        let http = running.http.clone();
        let url = format!("{}/api/v1/agent/claim", server.url());
        let token = agent_token.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"max": 1, "wait_ms": 60_000}))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.stop().await?;
    let answer = tokio::time::timeout(PATIENCE, claim).await??;
    let answer: Value = answer?.json().await?;
    assert_eq!(answer["assignments"], json!([]));

    // A restart on the same data dir reuses the tokens and the data.
    let again = Running::start(&data, 15_000).await?;
    assert_eq!(again.server.admin_token(), admin);
    assert_eq!(again.server.enroll_token(), enroll);
    let (status, doc) = again.get("/api/v1/workflows/chain").await?;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let (status, _) = again
        .post(
            "/api/v1/agent/heartbeat",
            &agent_token,
            json!({"attempts": []}),
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "the agent's token survives a restart"
    );
    again.stop().await
}

#[tokio::test]
async fn an_attempt_whose_lease_runs_out_is_lost_and_its_node_retried() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let running = Running::start(&dir.path().join("data"), 300).await?;
    let admin = running.server.admin_token().to_owned();
    let enroll = running.server.enroll_token().to_owned();
    running
        .post(
            "/api/v1/workflows",
            &admin,
            json!({"filename": "c.yaml", "source": CHAIN}),
        )
        .await?;
    let (_, run) = running
        .post("/api/v1/runs", &admin, json!({"workflow": "chain"}))
        .await?;
    let id = run["id"].as_str().unwrap().to_owned();
    let (_, agent) = running
        .post(
            "/api/v1/agent/register",
            &enroll,
            json!({"name": "flaky", "slots": 1, "functions": ["shell"]}),
        )
        .await?;
    let token = agent["token"].as_str().unwrap();
    let (_, claimed) = running
        .post(
            "/api/v1/agent/claim",
            token,
            json!({"max": 1, "wait_ms": 0}),
        )
        .await?;
    assert_eq!(claimed["assignments"][0]["node"], "a", "{claimed}");

    // No heartbeat: follow the run until the reaper has ended the attempt.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut rev = 0;
    loop {
        let (status, doc) = running
            .get(&format!("/api/v1/runs/{id}?wait_after={rev}&wait_ms=5000"))
            .await?;
        assert_eq!(status, StatusCode::OK, "{doc}");
        let first = &doc["nodes"]["a"]["attempts"][0];
        if first["status"] == "error" {
            assert_eq!(first["reason"], "lost", "{doc}");
            assert_eq!(
                doc["nodes"]["a"]["status"], "ready",
                "retried after a loss: {doc}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reaped: {doc}"
        );
        rev = doc["rev"].as_i64().unwrap();
    }
    running.stop().await
}

impl Running {
    /// Follows a run with held reads until `done` holds for its document.
    async fn wait_run(&self, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut rev = 0;
        loop {
            let (status, doc) = self
                .get(&format!("/api/v1/runs/{id}?wait_after={rev}&wait_ms=5000"))
                .await?;
            assert_eq!(status, StatusCode::OK, "{doc}");
            if done(&doc) {
                return Ok(doc);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run never got there: {doc}"
            );
            rev = doc["rev"].as_i64().unwrap_or(0);
        }
    }

    /// Applies `source` and starts a run of workflow `name`; returns the run id.
    async fn start_run(&self, name: &str, source: &str) -> Result<String> {
        let admin = self.server.admin_token().to_owned();
        let (status, body) = self
            .post(
                "/api/v1/workflows",
                &admin,
                json!({"filename": "w.yaml", "source": source}),
            )
            .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, run) = self
            .post("/api/v1/runs", &admin, json!({"workflow": name}))
            .await?;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        Ok(run["id"].as_str().unwrap_or_default().to_owned())
    }
}

#[tokio::test]
async fn a_run_past_its_timeout_ends_error_and_a_held_claim_learns_of_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let running = Running::start(&dir.path().join("data"), 15_000).await?;
    let id = running
        .start_run(
            "slow",
            "name: slow\ntimeout: 1s\nnodes:\n  a: {run: sleep 60}\n  b: {run: x, needs: [a]}\n",
        )
        .await?;
    let enroll = running.server.enroll_token().to_owned();
    let (_, agent) = running
        .post(
            "/api/v1/agent/register",
            &enroll,
            json!({"name": "w", "slots": 1, "functions": ["shell"]}),
        )
        .await?;
    let token = agent["token"].as_str().unwrap_or_default().to_owned();
    let (_, claimed) = running
        .post(
            "/api/v1/agent/claim",
            &token,
            json!({"max": 1, "wait_ms": 0}),
        )
        .await?;
    let work = claimed["assignments"][0].clone();
    assert_eq!(work["node"], "a", "{claimed}");

    // A claim with no free slot is held until something concerns the agent: here, the
    // run's timeout.
    let (status, held) = running
        .post(
            "/api/v1/agent/claim",
            &token,
            json!({"max": 0, "wait_ms": 30_000}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["cancel"], json!([work["attempt_id"]]), "{held}");
    let doc = running.wait_run(&id, |d| d["reason"] == "timeout").await?;
    assert_eq!(doc["nodes"]["b"]["status"], "canceled", "{doc}");

    let (status, answer) = running
        .post(
            &format!("/api/v1/agent/attempts/{}/report", work["attempt_id"]),
            &token,
            json!({"fence": work["fence"], "outcome": {"state": "canceled", "reason": "canceled"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"]["state"], "error", "{answer}");
    assert_eq!(answer["outcome"]["reason"], "timeout", "{answer}");
    let doc = running.wait_run(&id, |d| d["status"] == "error").await?;
    assert_eq!(doc["reason"], "timeout", "{doc}");
    assert_eq!(
        doc["nodes"]["a"]["attempts"][0]["reason"], "timeout",
        "{doc}"
    );
    running.stop().await
}

#[tokio::test]
async fn a_node_nobody_claims_ends_error_after_the_servers_queue_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let running =
        Running::start_with(&dir.path().join("data"), |c| c.queue_timeout_ms = 300).await?;
    let id = running
        .start_run(
            "gpu",
            "name: gpu\nnodes:\n  train: {run: x, selector: {gpu: 'yes'}}\n  \
             report: {run: x, needs: [train]}\n",
        )
        .await?;
    let doc = running.wait_run(&id, |d| d["status"] == "error").await?;
    let train = &doc["nodes"]["train"];
    assert_eq!(train["status"], "error", "{doc}");
    assert_eq!(train["reason"], "no_agent", "{doc}");
    let message = train["message"].as_str().unwrap_or_default();
    assert!(message.contains("300ms"), "{message}");
    assert_eq!(doc["nodes"]["report"]["status"], "skipped", "{doc}");
    running.stop().await
}
