//! One clear `error: ...` line on stderr for every way a command can fail.

use baton_cli::{CliError, Exit};

/// Prints a client error the way the contract asks and gives its exit code.
pub(crate) fn client_error(err: &CliError) -> Exit {
    tracing::debug!(error = ?err, "command failed");
    for line in err.report() {
        eprintln!("{line}");
    }
    err.exit()
}

/// The exit code of a client command's result, printing the error if there is one.
pub(crate) fn client_result(result: Result<Exit, CliError>) -> Exit {
    result.unwrap_or_else(|e| client_error(&e))
}

/// Prints `error: <what>: <cause>: <cause>` and gives `exit`.
pub(crate) fn failure(what: &str, err: &(dyn std::error::Error + 'static), exit: Exit) -> Exit {
    eprintln!("error: {what}: {}", chain(err));
    exit
}

/// `outer: inner: innermost`: our errors keep causes out of their own message.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
