//! Errors of the agent and of its calls to the server.

use std::io;
use std::path::PathBuf;

/// The error type of parsing a server URL.
type UrlError = <reqwest::Url as std::str::FromStr>::Err;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config names no server.
    #[error("no server url given")]
    NoServers,
    /// A server URL does not parse or is not http(s).
    #[error("invalid server url {url:?}")]
    BadServerUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: Option<UrlError>,
    },
    /// The config offers no slot.
    #[error("slots must be at least 1")]
    NoSlots,
    /// What the agent would register with breaks the rules the server holds it to (a
    /// name with control characters, a label no selector can ask for, too many slots).
    #[error("cannot register")]
    BadRegistration(#[source] baton_api::BadRegistration),
    /// A `--pass-env` name the agent will not hand to steps.
    #[error("bad pass-env")]
    PassEnv(#[source] crate::step_env::PassEnvError),
    /// A token cannot be sent as an HTTP header.
    #[error("the token contains characters not allowed in an http header")]
    BadToken,
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the http client")]
    HttpClient(#[source] reqwest::Error),
    /// The work root could not be created.
    #[error("cannot create the work root {path}")]
    WorkRoot {
        /// The work root.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The functions or plugins cannot be set up: a name clash, a bad name, an unreadable
    /// plugins dir.
    #[error("cannot set up the agent's functions")]
    Functions(#[source] crate::registry::FunctionsError),
    /// The server refused the registration: a bad enrollment token (401, 403) or a bad
    /// request; the source has the status.
    #[error("registration refused")]
    Register(#[source] RequestError),
    /// A CA certificate file could not be read or holds no certificate.
    #[error("cannot use the CA certificate file {}: {reason}", path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The agent and the server could not agree on TLS: an untrusted certificate, or
    /// `https://` to a server that speaks plain HTTP.
    #[error("cannot talk to the server securely")]
    Tls(#[source] RequestError),
    /// The server stopped accepting the agent's own token (revoked, or the server forgot it).
    #[error("the server no longer accepts this agent's token")]
    Revoked(#[source] RequestError),
}

/// A failed call to the server.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No answer: connection refused, reset, or timed out, on every server tried.
    #[error("cannot reach {server}")]
    Unreachable {
        /// The last server tried.
        server: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// TLS failed: the server's certificate is not trusted, or it speaks plain HTTP.
    #[error("{server}: {reason}")]
    Tls {
        /// The server.
        server: String,
        /// What went wrong and what to do, for people.
        reason: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{server} answered {status} {code}: {message}")]
    Status {
        /// The server.
        server: String,
        /// HTTP status.
        status: u16,
        /// The error body's `code` (empty when the body was not an API error).
        code: String,
        /// The error body's `message`.
        message: String,
    },
    /// The server's answer could not be read.
    #[error("unreadable answer from {server}")]
    Decode {
        /// The server.
        server: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The request could not be built.
    #[error("cannot build the request")]
    Build(#[source] reqwest::Error),
}

impl RequestError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth trying again later: the server was unreachable or failed on its side.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            // A certificate may be fixed on the server while the agent runs; registration
            // refuses TLS failures at once instead (see `agent::register`).
            RequestError::Unreachable { .. }
            | RequestError::Tls { .. }
            | RequestError::Decode { .. } => true,
            RequestError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            RequestError::Build(_) => false,
        }
    }

    /// The token was refused (401) or is of the wrong kind (403).
    pub(crate) fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// The write was about an attempt that is no longer the agent's (409).
    pub(crate) fn is_stale(&self) -> bool {
        self.status() == Some(409)
    }
}
