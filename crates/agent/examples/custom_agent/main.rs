//! An agent with a function written in Rust.
//!
//! ```text
//! BATON_SERVER=http://127.0.0.1:8080 BATON_AGENT_TOKEN=$(cat agent.token) \
//!     cargo run -p baton-agent --example custom_agent
//! ```
//!
//! It offers the built-ins and `checksum`, so it claims nodes such as
//!
//! ```yaml
//! nodes:
//!   hash:
//!     uses: checksum
//!     with: {text: hello}
//!   show:
//!     needs: [hash]
//!     run: echo "$BATON_HASH_SHA256"
//! ```
//!
//! and runs until Ctrl-C, then drains like `baton agent`.

mod checksum;

use anyhow::Context as _;
use baton_agent::AgentConfig;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let server = std::env::var("BATON_SERVER").context("set BATON_SERVER to the server's URL")?;
    let token = std::env::var("BATON_AGENT_TOKEN")
        .context("set BATON_AGENT_TOKEN to the server's enrollment token (agent.token)")?;
    let config = AgentConfig::new(vec![server], token, "custom-agent".into())
        .with_function(checksum::Checksum);
    let shutdown = CancellationToken::new();
    let agent = baton_agent::run(config, shutdown.clone());
    tokio::pin!(agent);
    tokio::select! {
        result = &mut agent => result?,
        _ = tokio::signal::ctrl_c() => {
            shutdown.cancel();
            agent.await?;
        }
    }
    Ok(())
}
