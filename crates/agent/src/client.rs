//! HTTP calls to the control plane, with fail-over across the configured servers.
//!
//! One `reqwest::Client` (and so one keep-alive pool) serves every call of the agent. A call
//! goes to the current server; when that one is unreachable it is tried on the next ones in
//! order, and the first that answers becomes current. Retrying later is left to callers,
//! which know whether a call is worth repeating.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton_api::{
    API_PREFIX, AppendLogs, ClaimRequest, ClaimResponse, ErrorBody, Heartbeat, HeartbeatResponse,
    RegisterAgent, Registered, ReportBatch, ReportBatchResponse, StartAttempt,
};
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ServerTrust;
use crate::error::{AgentError, RequestError};
use crate::tls;

/// Time allowed for an ordinary call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time a claim long poll is given beyond the wait it asks the server for.
const CLAIM_SLACK: Duration = Duration::from_secs(10);
/// Time allowed for one artifact upload (up to 100 MiB).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle for calls with one token; cheap to clone.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    servers: Arc<[Url]>,
    current: Arc<AtomicUsize>,
    auth: HeaderValue,
}

impl Client {
    /// A client for `servers` that authenticates with `token` and trusts `https://` servers
    /// as `trust` says.
    pub(crate) fn new(
        servers: &[String],
        token: &str,
        trust: &ServerTrust,
    ) -> Result<Client, AgentError> {
        if servers.is_empty() {
            return Err(AgentError::NoServers);
        }
        let servers = servers
            .iter()
            .map(|s| parse_server(s))
            .collect::<Result<Arc<[Url]>, _>>()?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        builder = match trust {
            ServerTrust::System => builder,
            ServerTrust::WithCa(path) => builder.tls_certs_merge(tls::read_ca_file(path)?),
            ServerTrust::Pinned(path) => builder.tls_backend_preconfigured(tls::pinned(path)?),
        };
        let http = builder.build().map_err(AgentError::HttpClient)?;
        Ok(Client {
            http,
            servers,
            current: Arc::new(AtomicUsize::new(0)),
            auth: bearer(token)?,
        })
    }

    /// The same servers and connection pool with another token.
    pub(crate) fn with_token(&self, token: &str) -> Result<Client, AgentError> {
        Ok(Client {
            auth: bearer(token)?,
            ..self.clone()
        })
    }

    /// `POST /agent/register`.
    pub(crate) async fn register(&self, body: &RegisterAgent) -> Result<Registered, RequestError> {
        self.json(Method::POST, &["register"], body, CALL_TIMEOUT)
            .await
    }

    /// `POST /agent/claim`, held by the server up to `wait_ms`.
    pub(crate) async fn claim(&self, body: &ClaimRequest) -> Result<ClaimResponse, RequestError> {
        let timeout = Duration::from_millis(body.wait_ms) + CLAIM_SLACK;
        self.json(Method::POST, &["claim"], body, timeout).await
    }

    /// `POST /agent/heartbeat`.
    pub(crate) async fn heartbeat(
        &self,
        body: &Heartbeat,
        timeout: Duration,
    ) -> Result<HeartbeatResponse, RequestError> {
        self.json(Method::POST, &["heartbeat"], body, timeout).await
    }

    /// `POST /agent/attempts/{id}/start`.
    pub(crate) async fn start(&self, attempt: i64, fence: i64) -> Result<(), RequestError> {
        let id = attempt.to_string();
        let body = Body::json(&StartAttempt { fence });
        let path = ["attempts", id.as_str(), "start"];
        self.call(Method::POST, &path, None, Some(body), CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// `POST /agent/reports`.
    pub(crate) async fn report_batch(
        &self,
        body: &ReportBatch,
    ) -> Result<ReportBatchResponse, RequestError> {
        self.json(Method::POST, &["reports"], body, CALL_TIMEOUT)
            .await
    }

    /// `POST /agent/attempts/{id}/logs`.
    pub(crate) async fn append_logs(
        &self,
        attempt: i64,
        body: &AppendLogs,
    ) -> Result<(), RequestError> {
        let id = attempt.to_string();
        let body = Body::json(body);
        let path = ["attempts", id.as_str(), "logs"];
        self.call(Method::POST, &path, None, Some(body), CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// `PUT /agent/attempts/{id}/artifacts/{path…}?fence=F`; `path` is `/`-separated.
    pub(crate) async fn upload_artifact(
        &self,
        attempt: i64,
        fence: i64,
        path: &str,
        content: Vec<u8>,
    ) -> Result<(), RequestError> {
        let id = attempt.to_string();
        let mut segments = vec!["attempts", id.as_str(), "artifacts"];
        segments.extend(path.split('/'));
        let fence = fence.to_string();
        let query = Some(("fence", fence.as_str()));
        self.call(
            Method::PUT,
            &segments,
            query,
            Some(Body::octets(content)),
            UPLOAD_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// `POST /agent/deregister`.
    pub(crate) async fn deregister(&self) -> Result<(), RequestError> {
        self.call(Method::POST, &["deregister"], None, None, CALL_TIMEOUT)
            .await
            .map(drop)
    }

    async fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: &B,
        timeout: Duration,
    ) -> Result<T, RequestError> {
        let body = Body::json(body);
        let (server, response) = self
            .call_raw(method, path, None, Some(body), timeout)
            .await?;
        response
            .json()
            .await
            .map_err(|source| RequestError::Decode { server, source })
    }

    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: Option<(&str, &str)>,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<Response, RequestError> {
        self.call_raw(method, path, query, body, timeout)
            .await
            .map(|(_, response)| response)
    }

    /// Sends to the current server, then to the others in order while they are unreachable;
    /// answers the server that answered and its successful response.
    async fn call_raw(
        &self,
        method: Method,
        path: &[&str],
        query: Option<(&str, &str)>,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<(String, Response), RequestError> {
        let count = self.servers.len();
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut tried = 0;
        loop {
            let idx = (first + tried) % count;
            let base = &self.servers[idx];
            let mut request = self
                .http
                .request(method.clone(), endpoint(base, path, query))
                .header(AUTHORIZATION, self.auth.clone())
                .timeout(timeout);
            if let Some(body) = &body {
                // `Bytes` clones share the buffer, so a fail-over does not copy an upload.
                request = request
                    .header(CONTENT_TYPE, HeaderValue::from_static(body.content_type))
                    .body(body.bytes.clone());
            }
            tried += 1;
            match request.send().await {
                Ok(response) => {
                    if idx != first {
                        tracing::warn!(server = %base, "failed over to another server");
                        self.current.store(idx, Ordering::Relaxed);
                    }
                    return check(base.as_str(), response).await;
                }
                Err(source) if tried < count => {
                    tracing::debug!(server = %base, error = %source, "server unreachable");
                }
                Err(source) => {
                    let server = base.to_string();
                    return Err(match tls::failure(&source) {
                        Some(reason) => RequestError::Tls {
                            server,
                            reason,
                            source,
                        },
                        None => RequestError::Unreachable { server, source },
                    });
                }
            }
        }
    }
}

/// A request body and its media type.
struct Body {
    bytes: Bytes,
    content_type: &'static str,
}

impl Body {
    fn json<B: Serialize>(body: &B) -> Body {
        Body {
            // Our request types are plain structs with string keys: serializing cannot fail.
            bytes: serde_json::to_vec(body).unwrap_or_default().into(),
            content_type: "application/json",
        }
    }

    fn octets(bytes: Vec<u8>) -> Body {
        Body {
            bytes: bytes.into(),
            content_type: "application/octet-stream",
        }
    }
}

fn parse_server(s: &str) -> Result<Url, AgentError> {
    let bad = |source| AgentError::BadServerUrl {
        url: s.to_owned(),
        source,
    };
    let url = Url::parse(s).map_err(|e| bad(Some(e)))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(bad(None));
    }
    Ok(url)
}

fn bearer(token: &str) -> Result<HeaderValue, AgentError> {
    let mut value =
        HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| AgentError::BadToken)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `base` + `/api/v1/agent/` + `path`, each segment percent-encoded as needed.
fn endpoint(base: &Url, path: &[&str], query: Option<(&str, &str)>) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
        segments.extend(API_PREFIX.split('/').filter(|s| !s.is_empty()));
        segments.push("agent");
        segments.extend(path);
    }
    url.set_query(None);
    if let Some((key, value)) = query {
        url.query_pairs_mut().append_pair(key, value);
    }
    url
}

async fn check(server: &str, response: Response) -> Result<(String, Response), RequestError> {
    let status = response.status();
    if status.is_success() {
        return Ok((server.to_owned(), response));
    }
    let bytes = response.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => (
            String::new(),
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
    };
    Err(RequestError::Status {
        server: server.to_owned(),
        status: status.as_u16(),
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_a_base_path_and_encode_segments() {
        let base = parse_server("http://h:1/baton/").unwrap();
        let url = endpoint(&base, &["attempts", "7", "artifacts", "a b", "c%d#"], None);
        assert_eq!(
            url.as_str(),
            "http://h:1/baton/api/v1/agent/attempts/7/artifacts/a%20b/c%25d%23"
        );
        let base = parse_server("http://h:1").unwrap();
        let url = endpoint(&base, &["claim"], Some(("fence", "3")));
        assert_eq!(url.as_str(), "http://h:1/api/v1/agent/claim?fence=3");
    }

    #[test]
    fn rejects_urls_that_are_not_http() {
        assert!(parse_server("ftp://h").is_err());
        assert!(parse_server("not a url").is_err());
        assert!(parse_server("https://h:8443").is_ok());
    }
}
