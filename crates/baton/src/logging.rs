//! Log lines on stderr: level from `BATON_LOG`, format from `--log-format`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::cli_args::LogFormat;

/// Installs the global subscriber. `default` is the filter when `BATON_LOG` is unset; a bad
/// `BATON_LOG` is reported and replaced by `default` rather than silencing the logs.
pub(crate) fn init(default: &str, format: LogFormat) {
    let filter = match std::env::var("BATON_LOG") {
        Ok(text) if !text.trim().is_empty() => EnvFilter::try_new(&text).unwrap_or_else(|e| {
            eprintln!("warning: ignoring BATON_LOG={text:?}: {e}");
            EnvFilter::new(default)
        }),
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second subscriber can only come from a test harness; keeping the first is right.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
