//! A router on a real SQLite store in a temp dir, and helpers to call it.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use baton_server::{AppState, ServerConfig, ServerTokens, router};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Two nodes, `b` after `a`.
pub(crate) const CHAIN: &str =
    "name: chain\nnodes:\n  a:\n    run: echo a\n  b:\n    needs: [a]\n    run: echo b\n";

/// Generous bound for waits that should end at once.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A router on a fresh data dir.
pub(crate) struct App {
    pub(crate) dir: TempDir,
    pub(crate) tokens: ServerTokens,
    pub(crate) shutdown: CancellationToken,
    router: Router,
}

/// A registered agent.
pub(crate) struct TestAgent {
    pub(crate) id: String,
    pub(crate) token: String,
}

impl App {
    pub(crate) async fn new() -> App {
        App::with(|_| {}).await
    }

    pub(crate) async fn with(adjust: impl FnOnce(&mut ServerConfig)) -> App {
        App::open(tempfile::tempdir().unwrap(), adjust)
            .await
            .unwrap()
    }

    /// A new server on this app's data dir (a restart); `prepare` runs on the data dir
    /// in between, while no server has it open.
    pub(crate) async fn restart(
        self,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Result<App, baton_server::ServerError> {
        self.shutdown.cancel();
        let App { dir, router, .. } = self;
        drop(router);
        prepare(&dir.path().join("data"));
        App::open(dir, |_| {}).await
    }

    async fn open(
        dir: TempDir,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<App, baton_server::ServerError> {
        let mut config = ServerConfig::new(dir.path().join("data"));
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let (state, tokens) = AppState::open(&config, shutdown.clone()).await?;
        let router = router(state.clone());
        Ok(App {
            dir,
            tokens,
            shutdown,
            router,
        })
    }

    pub(crate) fn admin(&self) -> &str {
        self.tokens.admin()
    }

    pub(crate) fn enroll(&self) -> &str {
        self.tokens.enroll()
    }

    /// The raw answer to a request.
    pub(crate) async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        send(self.router.clone(), req).await
    }

    /// A JSON call; the answer body parsed as JSON (`null` when empty).
    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = json_request(method, uri, token, body);
        let (status, _, bytes) = self.send(req).await;
        (status, parse(&bytes))
    }

    /// A router to move into a spawned task.
    pub(crate) fn router(&self) -> Router {
        self.router.clone()
    }

    pub(crate) async fn apply(&self, source: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/workflows",
            Some(self.admin()),
            Some(json!({"filename": "wf.yaml", "source": source})),
        )
        .await
    }

    pub(crate) async fn create_run(&self, workflow: &str) -> Value {
        let (status, run) = self
            .call(
                Method::POST,
                "/api/v1/runs",
                Some(self.admin()),
                Some(json!({"workflow": workflow})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        run
    }

    pub(crate) async fn run(&self, id: &str) -> Value {
        let (status, run) = self
            .call(
                Method::GET,
                &format!("/api/v1/runs/{id}"),
                Some(self.admin()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }

    pub(crate) async fn register(&self, name: &str) -> TestAgent {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/agent/register",
                Some(self.enroll()),
                Some(json!({"name": name, "slots": 4, "functions": ["shell"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestAgent {
            id: body["agent_id"].as_str().unwrap().to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    pub(crate) async fn claim(&self, agent: &TestAgent, max: u32, wait_ms: u64) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/agent/claim",
                Some(&agent.token),
                Some(json!({"max": max, "wait_ms": wait_ms})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Claims exactly one assignment, right away.
    pub(crate) async fn claim_one(&self, agent: &TestAgent) -> Value {
        let body = self.claim(agent, 1, 0).await;
        let assignments = body["assignments"].as_array().unwrap();
        assert_eq!(assignments.len(), 1, "{body}");
        assignments[0].clone()
    }

    pub(crate) async fn start(&self, agent: &TestAgent, assignment: &Value) -> StatusCode {
        let (status, _) = self
            .call(
                Method::POST,
                &format!("/api/v1/agent/attempts/{}/start", assignment["attempt_id"]),
                Some(&agent.token),
                Some(json!({"fence": assignment["fence"]})),
            )
            .await;
        status
    }

    pub(crate) async fn report(
        &self,
        agent: &TestAgent,
        attempt_id: &Value,
        fence: &Value,
        exit_code: i32,
    ) -> (StatusCode, Value) {
        let state = if exit_code == 0 { "success" } else { "failure" };
        self.call(
            Method::POST,
            &format!("/api/v1/agent/attempts/{attempt_id}/report"),
            Some(&agent.token),
            Some(json!({
                "fence": fence,
                "outcome": {"state": state, "reason": "exit", "exit_code": exit_code},
            })),
        )
        .await
    }
}

pub(crate) async fn send(router: Router, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = router.oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}

pub(crate) fn json_request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|err| panic!("not json ({err}): {}", String::from_utf8_lossy(bytes)))
    }
}

/// The error code of an error body.
pub(crate) fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The status of node `node` in a run document.
pub(crate) fn node_status<'a>(run: &'a Value, node: &str) -> &'a str {
    run["nodes"][node]["status"].as_str().unwrap_or("")
}
