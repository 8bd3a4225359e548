//! A real server on 127.0.0.1 port 0, real agents, and an admin client to drive them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use baton_agent::{AgentConfig, AgentError};
use baton_api::{AgentDoc, ApplyWorkflow, ArtifactDoc, CreateRun, LogPage, RunDoc};
use baton_server::{Server, ServerConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any awaited condition may take before a test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A server and the token that stops it; stopped on drop.
pub(crate) struct TestServer {
    pub(crate) server: Option<Server>,
    pub(crate) stop: CancellationToken,
    pub(crate) url: String,
    pub(crate) admin: String,
    pub(crate) enroll: String,
    pub(crate) addr: SocketAddr,
}

impl TestServer {
    pub(crate) async fn start(data_dir: &Path, lease_ms: u64) -> Result<TestServer> {
        Self::start_on(data_dir, lease_ms, "127.0.0.1:0".parse()?).await
    }

    pub(crate) async fn start_on(
        data_dir: &Path,
        lease_ms: u64,
        listen: SocketAddr,
    ) -> Result<TestServer> {
        let mut config = ServerConfig::new(data_dir.to_owned());
        config.listen = listen;
        config.lease_ms = lease_ms;
        let stop = CancellationToken::new();
        let server = Server::start(config, stop.clone()).await?;
        Ok(TestServer {
            url: server.url(),
            admin: server.admin_token().to_owned(),
            enroll: server.enroll_token().to_owned(),
            addr: server.addr(),
            server: Some(server),
            stop,
        })
    }

    /// Stops the server and waits until it is down.
    pub(crate) async fn shut_down(&mut self) -> Result<()> {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.wait().await?;
        }
        Ok(())
    }

    pub(crate) fn admin(&self) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            token: self.admin.clone(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A running agent task.
pub(crate) struct TestAgent {
    pub(crate) stop: CancellationToken,
    pub(crate) task: JoinHandle<Result<(), AgentError>>,
    pub(crate) work_root: tempfile::TempDir,
}

impl TestAgent {
    pub(crate) fn spawn(
        servers: Vec<String>,
        token: &str,
        name: &str,
        slots: u32,
        grace: Duration,
    ) -> TestAgent {
        Self::spawn_with(servers, token, name, |mut config| {
            config.slots = slots;
            config.shutdown_grace = grace;
            config
        })
    }

    /// An agent with a test work root and labels, and whatever else `adjust` sets.
    pub(crate) fn spawn_with(
        servers: Vec<String>,
        token: &str,
        name: &str,
        adjust: impl FnOnce(AgentConfig) -> AgentConfig,
    ) -> TestAgent {
        let work_root = tempfile::tempdir().expect("work root");
        let mut config = AgentConfig::new(servers, token.to_owned(), name.to_owned());
        config.work_root = work_root.path().join("work");
        config.labels = BTreeMap::from([("test".to_owned(), "yes".to_owned())]);
        let config = adjust(config);
        let stop = CancellationToken::new();
        let task = tokio::spawn(baton_agent::run(config, stop.clone()));
        TestAgent {
            stop,
            task,
            work_root,
        }
    }

    /// Asks the agent to shut down and waits for `run` to return.
    pub(crate) async fn shut_down(mut self) -> Result<(), AgentError> {
        self.stop.cancel();
        self.join().await
    }

    /// Waits for `run` to return.
    pub(crate) async fn join(&mut self) -> Result<(), AgentError> {
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("agent did not stop")
            .expect("agent task panicked")
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The admin side of the API.
pub(crate) struct Admin {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Admin {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
    }

    async fn json<T: serde::de::DeserializeOwned>(rb: reqwest::RequestBuilder) -> Result<T> {
        let response = rb.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("parsing {text}"))
    }

    /// Applies a workflow file and starts a run of it.
    pub(crate) async fn start_run(&self, source: &str) -> Result<RunDoc> {
        let name = source
            .lines()
            .find_map(|l| l.strip_prefix("name: "))
            .context("workflow without a name line")?
            .trim()
            .to_owned();
        let apply = ApplyWorkflow {
            filename: "test.yaml".into(),
            source: source.into(),
        };
        let _: serde_json::Value = Self::json(self.post("/workflows").json(&apply)).await?;
        let create = CreateRun::latest(name);
        Self::json(self.post("/runs").json(&create)).await
    }

    pub(crate) async fn run(&self, id: &str) -> Result<RunDoc> {
        Self::json(self.get(&format!("/runs/{id}"))).await
    }

    /// Waits, through `wait_after`, until `done` holds for the run document.
    pub(crate) async fn wait_run(
        &self,
        id: &str,
        done: impl Fn(&RunDoc) -> bool,
    ) -> Result<RunDoc> {
        let deadline = Instant::now() + DEADLINE;
        let mut doc = self.run(id).await?;
        while !done(&doc) {
            if Instant::now() > deadline {
                bail!("run never got there: {doc:#?}");
            }
            let path = format!("/runs/{id}?wait_after={}&wait_ms=5000", doc.rev);
            doc = Self::json(self.get(&path)).await?;
        }
        Ok(doc)
    }

    pub(crate) async fn cancel(&self, id: &str) -> Result<RunDoc> {
        Self::json(self.post(&format!("/runs/{id}/cancel"))).await
    }

    pub(crate) async fn logs(&self, id: &str, node: &str) -> Result<String> {
        let page: LogPage = Self::json(self.get(&format!("/runs/{id}/logs?node={node}"))).await?;
        Ok(page.chunks.iter().map(|c| c.data.as_str()).collect())
    }

    pub(crate) async fn artifacts(&self, id: &str) -> Result<Vec<ArtifactDoc>> {
        Self::json(self.get(&format!("/runs/{id}/artifacts"))).await
    }

    pub(crate) async fn artifact(
        &self,
        id: &str,
        node: &str,
        attempt: u32,
        path: &str,
    ) -> Result<String> {
        let response = self
            .get(&format!("/runs/{id}/artifacts/{node}/{attempt}/{path}"))
            .send()
            .await?
            .error_for_status()?;
        Ok(response.text().await?)
    }

    pub(crate) async fn agents(&self) -> Result<Vec<AgentDoc>> {
        Self::json(self.get("/agents")).await
    }

    /// Waits until `done` holds for the agents list.
    pub(crate) async fn wait_agents(
        &self,
        done: impl Fn(&[AgentDoc]) -> bool,
    ) -> Result<Vec<AgentDoc>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let agents = self.agents().await?;
            if done(&agents) {
                return Ok(agents);
            }
            if Instant::now() > deadline {
                bail!("agents never got there: {agents:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until `cond` holds, checking every few milliseconds.
pub(crate) async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Alive and not a zombie waiting for a reaper.
pub(crate) fn alive(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// The pid written to `path`, once it is there.
pub(crate) async fn read_pid(path: &Path) -> Result<i32> {
    let mut pid = None;
    wait_for("a pid file", || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    })
    .await?;
    pid.context("pid")
}
