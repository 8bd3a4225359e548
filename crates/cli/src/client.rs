//! The HTTP client of the API: typed calls, and every failure mapped to a [`CliError`].

use std::path::Path;
use std::time::Duration;

use baton_api::{
    AgentDoc, ApplyWorkflow, CreateRun, CreateToken, CreatedToken, ErrorBody, LogPage, LogQuery,
    PutSecret, ResourceDoc, RetryRun, RunDoc, RunFilter, RunSummary, SecretDoc, TokenDoc,
    WorkflowDoc, WorkflowSummary, WorkflowVersion, WorkflowVersionDoc,
};
use baton_api::{AuditPage, AuditQuery};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::connection::Connection;
use crate::exit::{CliError, TokenSource};

/// How long establishing a connection may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit of an ordinary request, well above anything the server should need.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time a long poll may take beyond the wait it asked the server for.
const LONG_POLL_SLACK: Duration = Duration::from_secs(30);

/// A client of one server's API, holding its token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    display: String,
    token: Option<String>,
    source: TokenSource,
}

impl Client {
    /// A client for `conn`; an `https://` server's certificate must be signed by a system
    /// root or by a CA in the connection's CA file.
    pub fn new(conn: Connection) -> Result<Client, CliError> {
        let display = conn.server.as_str().trim_end_matches('/').to_owned();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &conn.ca_cert {
            builder = builder.tls_certs_merge(read_ca_file(path)?);
        }
        let http = builder.build().map_err(|source| CliError::Unreachable {
            url: display.clone(),
            reason: "cannot set up the HTTP client".into(),
            source,
        })?;
        Ok(Client {
            http,
            base: conn.server,
            display,
            token: conn.token,
            source: conn.source,
        })
    }

    /// The server's base URL, for messages.
    pub fn server(&self) -> &str {
        &self.display
    }

    /// `POST /api/v1/workflows`.
    pub async fn apply_workflow(&self, body: &ApplyWorkflow) -> Result<WorkflowVersion, CliError> {
        let req = self.request(Method::POST, &["workflows"], &[])?.json(body);
        self.send(req).await
    }

    /// `GET /api/v1/workflows`.
    pub async fn workflows(&self) -> Result<Vec<WorkflowSummary>, CliError> {
        self.send(self.request(Method::GET, &["workflows"], &[])?)
            .await
    }

    /// `GET /api/v1/workflows/{name}`.
    pub async fn workflow(&self, name: &str) -> Result<WorkflowDoc, CliError> {
        self.send(self.request(Method::GET, &["workflows", name], &[])?)
            .await
    }

    /// `GET /api/v1/workflows/{name}/versions/{version}`.
    pub async fn workflow_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<WorkflowVersionDoc, CliError> {
        let v = version.to_string();
        self.send(self.request(Method::GET, &["workflows", name, "versions", &v], &[])?)
            .await
    }

    /// `POST /api/v1/runs`.
    pub async fn create_run(&self, body: &CreateRun) -> Result<RunDoc, CliError> {
        let req = self.request(Method::POST, &["runs"], &[])?.json(body);
        self.send(req).await
    }

    /// `GET /api/v1/runs`.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, CliError> {
        let mut query = Vec::new();
        if let Some(w) = &filter.workflow {
            query.push(("workflow", w.clone()));
        }
        if let Some(s) = filter.status {
            query.push(("status", s.as_str().to_owned()));
        }
        if let Some(l) = filter.limit {
            query.push(("limit", l.to_string()));
        }
        self.send(self.request(Method::GET, &["runs"], &query)?)
            .await
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn run(&self, id: &str) -> Result<RunDoc, CliError> {
        self.send(self.request(Method::GET, &["runs", id], &[])?)
            .await
    }

    /// `GET /api/v1/runs/{id}?wait_after=REV&wait_ms=N`: the run once its `rev` is above
    /// `after_rev`, or as it is after `wait`.
    pub async fn wait_run(
        &self,
        id: &str,
        after_rev: i64,
        wait: Duration,
    ) -> Result<RunDoc, CliError> {
        let query = [
            ("wait_after", after_rev.to_string()),
            ("wait_ms", wait.as_millis().to_string()),
        ];
        let req = self
            .request(Method::GET, &["runs", id], &query)?
            .timeout(wait + LONG_POLL_SLACK);
        self.send(req).await
    }

    /// `POST /api/v1/runs/{id}/cancel`.
    pub async fn cancel_run(&self, id: &str) -> Result<RunDoc, CliError> {
        self.send(self.request(Method::POST, &["runs", id, "cancel"], &[])?)
            .await
    }

    /// `POST /api/v1/runs/{id}/retry`: the new run.
    pub async fn retry_run(&self, id: &str, body: &RetryRun) -> Result<RunDoc, CliError> {
        let req = self
            .request(Method::POST, &["runs", id, "retry"], &[])?
            .json(body);
        self.send(req).await
    }

    /// `GET /api/v1/runs/{id}/logs`.
    pub async fn logs(&self, id: &str, q: &LogQuery) -> Result<LogPage, CliError> {
        let mut query = Vec::new();
        if let Some(n) = &q.node {
            query.push(("node", n.clone()));
        }
        if let Some(a) = q.after {
            query.push(("after", a.to_string()));
        }
        if let Some(l) = q.limit {
            query.push(("limit", l.to_string()));
        }
        self.send(self.request(Method::GET, &["runs", id, "logs"], &query)?)
            .await
    }

    /// `GET /api/v1/agents`.
    pub async fn agents(&self) -> Result<Vec<AgentDoc>, CliError> {
        self.send(self.request(Method::GET, &["agents"], &[])?)
            .await
    }

    /// `GET /api/v1/resources`.
    pub async fn resources(&self) -> Result<Vec<ResourceDoc>, CliError> {
        self.send(self.request(Method::GET, &["resources"], &[])?)
            .await
    }

    /// `POST /api/v1/tokens`: the new token, shown this once.
    pub async fn create_token(&self, body: &CreateToken) -> Result<CreatedToken, CliError> {
        let req = self.request(Method::POST, &["tokens"], &[])?.json(body);
        self.send(req).await
    }

    /// `GET /api/v1/tokens`.
    pub async fn tokens(&self) -> Result<Vec<TokenDoc>, CliError> {
        self.send(self.request(Method::GET, &["tokens"], &[])?)
            .await
    }

    /// `POST /api/v1/tokens/{name}/revoke`.
    pub async fn revoke_token(&self, name: &str) -> Result<TokenDoc, CliError> {
        self.send(self.request(Method::POST, &["tokens", name, "revoke"], &[])?)
            .await
    }

    /// `PUT /api/v1/secrets/{name}`.
    pub async fn put_secret(&self, name: &str, body: &PutSecret) -> Result<SecretDoc, CliError> {
        let req = self
            .request(Method::PUT, &["secrets", name], &[])?
            .json(body);
        self.send(req).await
    }

    /// `GET /api/v1/secrets`.
    pub async fn secrets(&self) -> Result<Vec<SecretDoc>, CliError> {
        self.send(self.request(Method::GET, &["secrets"], &[])?)
            .await
    }

    /// `DELETE /api/v1/secrets/{name}`.
    pub async fn delete_secret(&self, name: &str) -> Result<(), CliError> {
        let req = self.request(Method::DELETE, &["secrets", name], &[])?;
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        Err(self.refusal(status, &body))
    }

    /// `GET /api/v1/audit`.
    pub async fn audit(&self, q: &AuditQuery) -> Result<AuditPage, CliError> {
        let mut query = Vec::new();
        if let Some(l) = q.limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(b) = q.before {
            query.push(("before", b.to_string()));
        }
        if let Some(a) = &q.actor {
            query.push(("actor", a.clone()));
        }
        if let Some(a) = &q.action {
            query.push(("action", a.clone()));
        }
        self.send(self.request(Method::GET, &["audit"], &query)?)
            .await
    }

    /// A request to `/api/v1/<segments>` with the query and the token.
    fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<RequestBuilder, CliError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                CliError::Usage(format!(
                    "bad server URL {:?}: cannot hold a path",
                    self.display
                ))
            })?;
            // Segments are percent-encoded here, so a node or run id can never change the route.
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let mut req = self
            .http
            .request(method, url)
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        Ok(req)
    }

    /// Sends a request and decodes a 2xx JSON answer; maps every failure to a [`CliError`].
    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, CliError> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| CliError::Protocol {
                url: self.display.clone(),
                reason: format!("bad JSON in a {status} answer: {e}"),
            });
        }
        Err(self.refusal(status, &body))
    }

    /// The error for a non-2xx answer.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> CliError {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let code = status.as_u16();
        if matches!(code, 401 | 403) {
            let message = parsed.map_or_else(
                || status.canonical_reason().unwrap_or("refused").to_owned(),
                |b| b.error.message,
            );
            return CliError::Refused {
                url: self.display.clone(),
                token: self.source.clone(),
                status: code,
                message,
            };
        }
        match parsed {
            Some(b) => CliError::Api {
                status: code,
                code: b.error.code,
                message: b.error.message,
                details: b.error.details,
            },
            None => CliError::Api {
                status: code,
                code: format!("http_{code}"),
                message: format!("the server at {} answered {status}", self.display),
                details: Vec::new(),
            },
        }
    }

    /// The error for a request that got no answer.
    fn unreachable(&self, source: reqwest::Error) -> CliError {
        let reason = if source.is_timeout() {
            "no answer in time".to_owned()
        } else if let Some(tls) = tls_failure(&source) {
            tls
        } else {
            innermost(&source)
        };
        CliError::Unreachable {
            url: self.display.clone(),
            reason,
            source,
        }
    }
}

/// The certificates of a PEM file of CA certificates (`--ca-cert`).
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, CliError> {
    let pem = std::fs::read(path).map_err(|source| CliError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let bad = |why: String| {
        CliError::Usage(format!(
            "the CA certificate file {} (--ca-cert, BATON_CA_CERT) {why}",
            path.display()
        ))
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

/// What to tell people when a request failed in TLS: an untrusted certificate (with the
/// flag that fixes it), or a server that answered `https://` in plain HTTP. `None` for any
/// other failure.
fn tls_failure(err: &reqwest::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = rustls_error(e) {
            return Some(match tls {
                // A plain-HTTP answer read as a TLS record: `H` is no content type.
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    "the server speaks plain HTTP, not HTTPS: use an http:// URL".to_owned()
                }
                rustls::Error::InvalidCertificate(_) => format!(
                    "the server's TLS certificate is not trusted ({tls}): pass --ca-cert FILE or set BATON_CA_CERT to the CA certificate that signed it"
                ),
                other => format!(
                    "TLS with the server failed ({other}); if its certificate comes from a private CA, pass --ca-cert FILE or set BATON_CA_CERT"
                ),
            });
        }
        cur = e.source();
    }
    None
}

/// The rustls error `e` is or wraps. Connectors hand it up inside `io::Error`s (nested),
/// whose `source()` skips what they wrap, so look inside each.
fn rustls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

/// The deepest cause of an error: the one people understand (`Connection refused`).
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::parse_server_url;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn client(url: &str, source: TokenSource) -> Client {
        Client::new(Connection {
            server: parse_server_url(url).unwrap(),
            token: Some("secret-token".into()),
            source,
            ca_cert: None,
        })
        .unwrap()
    }

    /// A one-shot HTTP server on 127.0.0.1 that answers `status` with `body` and hands back
    /// the request it read.
    async fn answer_once(status: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            sock.write_all(reply.as_bytes()).await.unwrap();
            sock.shutdown().await.unwrap();
            String::from_utf8_lossy(&seen).into_owned()
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_named() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = client(&url, TokenSource::Flag).agents().await.unwrap_err();
        assert_eq!(err.exit().code(), 3);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot reach the server at {url}: ")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_refused_token_exits_3_and_names_its_source_only() {
        let (url, server) = answer_once(
            "401 Unauthorized",
            r#"{"error":{"code":"unauthorized","message":"unknown token"}}"#,
        )
        .await;
        let err = client(&url, TokenSource::Env).agents().await.unwrap_err();
        let request = server.await.unwrap();
        assert!(
            request.contains("authorization: Bearer secret-token"),
            "{request}"
        );
        assert_eq!(err.exit().code(), 3);
        let text = err.to_string();
        assert!(
            text.contains("BATON_TOKEN") && text.contains("unknown token"),
            "{text}"
        );
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[tokio::test]
    async fn an_invalid_workflow_answer_keeps_every_detail() {
        let body = r#"{"error":{"code":"invalid_workflow","message":"wf.yaml has 1 problem","details":[{"file":"wf.yaml","line":3,"column":5,"node":"a","message":"cycle: a -> a"}]}}"#;
        let (url, server) = answer_once("422 Unprocessable Entity", body).await;
        let apply = ApplyWorkflow {
            filename: "wf.yaml".into(),
            source: "name: x".into(),
        };
        let err = client(&url, TokenSource::Flag)
            .apply_workflow(&apply)
            .await
            .unwrap_err();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /api/v1/workflows HTTP/1.1"),
            "{request}"
        );
        assert_eq!(err.exit().code(), 2);
        insta::assert_snapshot!(err.report().join("\n"), @r#"
        error: wf.yaml has 1 problem
        wf.yaml:3:5: node "a": cycle: a -> a
        "#);
    }

    #[tokio::test]
    async fn path_segments_and_queries_are_encoded() {
        let (url, server) = answer_once("200 OK", r#"{"chunks":[],"next":7}"#).await;
        let query = LogQuery {
            node: Some("a b".into()),
            after: Some(7),
            limit: None,
        };
        let page = client(&url, TokenSource::Flag)
            .logs("../x", &query)
            .await
            .unwrap();
        assert_eq!(page.next, 7);
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /api/v1/runs/..%2Fx/logs?node=a+b&after=7 HTTP/1.1"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_non_api_answer_is_a_protocol_error() {
        let (url, server) = answer_once("200 OK", "<html>hello</html>").await;
        let err = client(&url, TokenSource::Flag).agents().await.unwrap_err();
        server.await.unwrap();
        assert_eq!(err.exit().code(), 3);
        assert!(err.to_string().contains("bad JSON"), "{err}");
    }
}
