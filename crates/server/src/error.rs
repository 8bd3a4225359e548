//! Errors: [`ServerError`] for starting and running the server, [`ApiError`] for answers.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_api::{ErrorBody, ErrorInfo};
use baton_core::Diagnostic;
use baton_store::StoreError;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory could not be created.
    #[error("cannot create data directory {}", .path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A token file could not be read or written.
    #[error("cannot use token file {}", .path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A token file holds something that is not a token of its kind.
    #[error("token file {} does not hold a {kind} token; delete it to make a new one", .path.display())]
    BadTokenFile {
        /// The file.
        path: PathBuf,
        /// `admin` or `enroll`.
        kind: &'static str,
    },
    /// The database could not be opened or prepared.
    #[error("cannot open the database")]
    Store(#[source] StoreError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The HTTP server failed while running.
    #[error("the http server failed")]
    Serve(#[source] io::Error),
}

/// An error answer: a status and the JSON body every non-2xx response carries.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<Diagnostic>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400: malformed JSON, query or path.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no token, or one nobody holds.
    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid token of the wrong kind for the route.
    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405.
    pub(crate) fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            "method not allowed on this route",
        )
    }

    /// 409 `conflict`.
    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413.
    pub(crate) fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 422 with every problem of the file.
    pub(crate) fn invalid_workflow(details: Vec<Diagnostic>) -> ApiError {
        let message = match details.first() {
            Some(first) if details.len() == 1 => format!("invalid workflow: {first}"),
            Some(first) => format!(
                "invalid workflow: {first} (and {} more problems)",
                details.len() - 1
            ),
            None => "invalid workflow".to_owned(),
        };
        ApiError {
            details,
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workflow",
                message,
            )
        }
    }

    /// 503 for a failure of storage the client may retry; the cause is logged, not sent.
    pub(crate) fn unavailable(what: &str, err: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::error!(error = %error_chain(err), "{what}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what}; retry later"),
        )
    }

    /// 500 for a bug; the cause is logged, not sent.
    pub(crate) fn internal(what: &str) -> ApiError {
        tracing::error!("internal error: {what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// The status this error answers with.
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound(_) => ApiError::not_found(err.to_string()),
            StoreError::Conflict(message) => ApiError::conflict(message),
            StoreError::Stale(_) => {
                ApiError::new(StatusCode::CONFLICT, "stale_attempt", err.to_string())
            }
            StoreError::Invalid(message) => ApiError::bad_request(message),
            StoreError::Backend { .. } => ApiError::unavailable("the database failed", &err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorInfo {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `outer: inner: innermost`, for logs.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let cases = [
            (StoreError::NotFound("run x".into()), StatusCode::NOT_FOUND),
            (StoreError::Conflict("done".into()), StatusCode::CONFLICT),
            (StoreError::Stale(3), StatusCode::CONFLICT),
            (StoreError::Invalid("bad".into()), StatusCode::BAD_REQUEST),
            (
                StoreError::backend("select", io::Error::other("disk")),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(ApiError::from(err).status(), status);
        }
    }

    #[test]
    fn backend_errors_keep_their_cause_out_of_the_answer() {
        let err = ApiError::from(StoreError::backend(
            "select",
            io::Error::other("SELECT * FROM secrets"),
        ));
        assert_eq!(err.code, "unavailable");
        assert!(!err.message.contains("SELECT"), "{}", err.message);
    }

    #[test]
    fn error_chain_lists_every_cause() {
        let err = StoreError::backend("insert run", io::Error::other("disk full"));
        assert_eq!(error_chain(&err), "database error: insert run: disk full");
    }
}
