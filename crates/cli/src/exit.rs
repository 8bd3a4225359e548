//! Exit codes, and the errors of client commands with the code each one ends the process with.

use std::fmt;
use std::io;
use std::path::PathBuf;

use baton_core::Diagnostic;

/// How a command ends the process: the contract's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked (a run ended `success`).
    Success,
    /// 1: a run ended `failure`, `error` or `canceled`; the server refused an action on a
    /// finished thing (canceling a finished run); a server or agent stopped with an error.
    Failure,
    /// 2: invalid input: a workflow file, a flag, an unknown run.
    Invalid,
    /// 3: the server could not be reached, or refused the token.
    Unreachable,
    /// 130 (128 + SIGINT): the user interrupted a command before it finished.
    Interrupted,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Invalid => 2,
            Exit::Unreachable => 3,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// Where the token a client sent came from, for messages that must never show the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token`.
    Flag,
    /// The `BATON_TOKEN` environment variable.
    Env,
    /// An `admin.token` file.
    File(PathBuf),
    /// No token was found.
    None,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Flag => f.write_str("the token from --token"),
            TokenSource::Env => f.write_str("the token from BATON_TOKEN"),
            TokenSource::File(path) => write!(f, "the token from {}", path.display()),
            TokenSource::None => f.write_str("a request without a token"),
        }
    }
}

impl TokenSource {
    /// What to do about a refusal, when the source suggests something.
    fn hint(&self) -> &'static str {
        match self {
            TokenSource::None => {
                "; pass --token, set BATON_TOKEN, or run where the server's admin.token is readable"
            }
            _ => "",
        }
    }
}

/// Everything a client command can fail with. [`CliError::exit`] gives the exit code.
///
/// Each message is one line for people, complete on its own; sources are kept for logs.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The path as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A workflow file has problems; each diagnostic is printed on its own line.
    #[error("{file}: {} problem(s) found", diagnostics.len().max(1))]
    InvalidWorkflow {
        /// The file name as given.
        file: String,
        /// Every problem (possibly empty when the parser gave no detail).
        diagnostics: Vec<Diagnostic>,
    },
    /// A flag or argument is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached at all.
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// The innermost cause, for people (`Connection refused (os error 111)`).
        reason: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 401 or 403.
    #[error("the server at {url} refused {token} ({status}: {message}){}", token.hint())]
    Refused {
        /// The server's base URL.
        url: String,
        /// Where the token came from (never the token).
        token: TokenSource,
        /// 401 or 403.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server answered another non-2xx status with an error body.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body's `code` (`not_found`, `conflict`, `invalid_workflow`, ...).
        code: String,
        /// The server's message, possibly rephrased for the command at hand.
        message: String,
        /// For `invalid_workflow`: every problem.
        details: Vec<Diagnostic>,
    },
    /// The server answered something that is not the API's JSON.
    #[error("unexpected answer from the server at {url}: {reason}")]
    Protocol {
        /// The server's base URL.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// Standard output was closed early (`baton runs list | head -1`): not worth a message.
    #[error("standard output was closed")]
    ClosedOutput,
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Output(#[source] io::Error),
}

impl CliError {
    /// The exit code the process ends with after this error.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::ReadFile { .. } | CliError::InvalidWorkflow { .. } | CliError::Usage(_) => {
                Exit::Invalid
            }
            CliError::Unreachable { .. } | CliError::Refused { .. } | CliError::Protocol { .. } => {
                Exit::Unreachable
            }
            CliError::Api { status, .. } => match status {
                409 => Exit::Failure,
                s if *s >= 500 => Exit::Unreachable,
                _ => Exit::Invalid,
            },
            CliError::ClosedOutput => Exit::Success,
            CliError::Output(_) => Exit::Failure,
        }
    }

    /// The lines to print on stderr: `error: ...`, or every diagnostic of a workflow file.
    ///
    /// Nothing for [`CliError::ClosedOutput`], where the reader went away on purpose.
    pub fn report(&self) -> Vec<String> {
        let lines = self.report_lines();
        // Messages quote the server and the files it read: one line each, inert.
        lines
            .into_iter()
            .map(|l| crate::escape::one_line(&l).into_owned())
            .collect()
    }

    fn report_lines(&self) -> Vec<String> {
        match self {
            CliError::ClosedOutput => Vec::new(),
            CliError::InvalidWorkflow { diagnostics, .. } if !diagnostics.is_empty() => {
                diagnostics.iter().map(ToString::to_string).collect()
            }
            CliError::Api { details, .. } if !details.is_empty() => {
                let mut lines = vec![format!("error: {self}")];
                lines.extend(details.iter().map(ToString::to_string));
                lines
            }
            _ => vec![format!("error: {self}")],
        }
    }
}

impl From<io::Error> for CliError {
    /// Write errors on standard output.
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            CliError::ClosedOutput
        } else {
            CliError::Output(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> CliError {
        CliError::Api {
            status,
            code: code.into(),
            message: "m".into(),
            details: Vec::new(),
        }
    }

    #[test]
    fn maps_errors_to_the_contract_exit_codes() {
        let read = CliError::ReadFile {
            path: "x.yaml".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(read.exit().code(), 2);
        let invalid = CliError::InvalidWorkflow {
            file: "x.yaml".into(),
            diagnostics: Vec::new(),
        };
        assert_eq!(invalid.exit().code(), 2);
        assert_eq!(CliError::Usage("bad".into()).exit().code(), 2);
        let refused = CliError::Refused {
            url: "http://h".into(),
            token: TokenSource::Env,
            status: 401,
            message: "m".into(),
        };
        assert_eq!(refused.exit().code(), 3);
        let protocol = CliError::Protocol {
            url: "http://h".into(),
            reason: "r".into(),
        };
        assert_eq!(protocol.exit().code(), 3);
        assert_eq!(api(422, "invalid_workflow").exit().code(), 2);
        assert_eq!(api(404, "not_found").exit().code(), 2);
        assert_eq!(api(400, "bad_request").exit().code(), 2);
        assert_eq!(api(409, "conflict").exit().code(), 1);
        assert_eq!(api(503, "unavailable").exit().code(), 3);
        assert_eq!(api(500, "internal").exit().code(), 3);
        assert_eq!(
            CliError::from(io::Error::from(io::ErrorKind::BrokenPipe))
                .exit()
                .code(),
            0
        );
        assert_eq!(Exit::Interrupted.code(), 130);
    }

    #[test]
    fn refusal_names_the_token_source_never_the_token() {
        let err = CliError::Refused {
            url: "http://127.0.0.1:7070".into(),
            token: TokenSource::File("/data/admin.token".into()),
            status: 401,
            message: "unknown token".into(),
        };
        insta::assert_snapshot!(err.report().join("\n"), @"error: the server at http://127.0.0.1:7070 refused the token from /data/admin.token (401: unknown token)");
        let flag = CliError::Refused {
            url: "http://h".into(),
            token: TokenSource::Flag,
            status: 403,
            message: "forbidden".into(),
        };
        assert!(flag.to_string().contains("--token"), "{flag}");
        let none = CliError::Refused {
            url: "http://h".into(),
            token: TokenSource::None,
            status: 401,
            message: "missing bearer token".into(),
        };
        insta::assert_snapshot!(none, @"the server at http://h refused a request without a token (401: missing bearer token); pass --token, set BATON_TOKEN, or run where the server's admin.token is readable");
    }

    #[test]
    fn workflow_problems_print_one_per_line() {
        let diag = |line, msg: &str| Diagnostic {
            file: "wf.yaml".into(),
            line: Some(line),
            column: Some(3),
            node: Some("deploy".into()),
            message: msg.into(),
        };
        let err = CliError::InvalidWorkflow {
            file: "wf.yaml".into(),
            diagnostics: vec![
                diag(4, "needs unknown node \"tset\""),
                diag(9, "cycle: a -> b -> a"),
            ],
        };
        insta::assert_snapshot!(err.report().join("\n"), @r#"
        wf.yaml:4:3: node "deploy": needs unknown node "tset"
        wf.yaml:9:3: node "deploy": cycle: a -> b -> a
        "#);
        let closed = CliError::ClosedOutput;
        assert!(closed.report().is_empty());
    }
}
