//! The few admin routes of the HTTP API the harness drives, with the admin token.

use anyhow::{Context, Result, bail};
use baton_api::{
    API_PREFIX, AgentDoc, ApplyWorkflow, CreateRun, RunDoc, RunSummary, WorkflowVersion,
};
use baton_core::RunState;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An admin client of one server. Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client of the server at `url` (`http://HOST:PORT`).
    pub(crate) fn new(url: &str, token: String) -> Result<Api> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            http,
            base: format!("{}{API_PREFIX}", url.trim_end_matches('/')),
            token,
        })
    }

    /// `POST /workflows`.
    pub(crate) async fn apply(&self, filename: &str, source: String) -> Result<WorkflowVersion> {
        let body = ApplyWorkflow {
            filename: filename.to_owned(),
            source,
        };
        self.post("/workflows", &body).await
    }

    /// `POST /runs` of the latest version of `workflow`.
    pub(crate) async fn create_run(&self, workflow: &str) -> Result<RunDoc> {
        let body = CreateRun::latest(workflow);
        self.post("/runs", &body).await
    }

    /// `GET /runs/{id}`.
    pub(crate) async fn run(&self, id: &str) -> Result<RunDoc> {
        self.get(&format!("/runs/{id}")).await
    }

    /// `GET /runs/{id}?wait_after=REV`: held until the run changes past `rev`.
    pub(crate) async fn run_after(&self, id: &str, rev: i64, wait_ms: u64) -> Result<RunDoc> {
        self.get(&format!("/runs/{id}?wait_after={rev}&wait_ms={wait_ms}"))
            .await
    }

    /// `GET /runs?workflow=…&status=…&limit=…`: newest first.
    pub(crate) async fn runs(
        &self,
        workflow: &str,
        status: Option<RunState>,
        limit: u32,
    ) -> Result<Vec<RunSummary>> {
        let mut path = format!("/runs?workflow={workflow}&limit={limit}");
        if let Some(s) = status {
            path.push_str("&status=");
            path.push_str(s.as_str());
        }
        self.get(&path).await
    }

    /// `GET /agents`.
    pub(crate) async fn agents(&self) -> Result<Vec<AgentDoc>> {
        self.get("/agents").await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req, "GET", path).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(req, "POST", path).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> Result<T> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading the answer"))?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(2000)
                    .collect::<String>()
            );
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{method} {path}: decoding the answer"))
    }
}
