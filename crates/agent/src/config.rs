//! What an agent is told at start: where the servers are, who it is, what it offers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::function::Function;

/// How an agent connects to the control plane and what it offers.
#[derive(Clone)]
pub struct AgentConfig {
    /// Base URLs of the servers, tried in order; the agent moves to the next one when the
    /// current one is unreachable.
    pub servers: Vec<String>,
    /// The enrollment token the agent registers with (the server's `agent.token`).
    pub token: String,
    /// The agent's name, unique among online agents.
    pub name: String,
    /// `key=value` labels a node's `selector` can ask for.
    pub labels: BTreeMap<String, String>,
    /// How many attempts run at once.
    pub slots: u32,
    /// Where attempts get their work dirs; created (mode 0700) when missing. Keep it out
    /// of any server's data dir, which a step could otherwise reach by relative paths.
    pub work_root: PathBuf,
    /// How long running attempts may go on after a shutdown is asked for before they are
    /// killed and reported canceled.
    pub shutdown_grace: Duration,
    /// Functions written in Rust that the agent offers besides the built-ins (none by
    /// default); see [`AgentConfig::with_function`].
    pub functions: Vec<Arc<dyn Function>>,
    /// A folder whose executable files the agent offers as functions, each named after its
    /// file name without extension (none by default); read once at start.
    pub plugins: Option<PathBuf>,
    /// Which certificates of `https://` servers the agent trusts (the system's roots by
    /// default).
    pub trust: ServerTrust,
    /// Names of the agent's environment variables that steps get besides the allow-list
    /// (`PATH`, `HOME`, `LC_*` …); never a `BATON_*` name, which [`run`](crate::run)
    /// refuses.
    pub pass_env: Vec<String>,
}

/// Which certificates an agent accepts from `https://` servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ServerTrust {
    /// Certificates signed by the system's root CAs, for the name in the server URL.
    #[default]
    System,
    /// Also certificates signed by a CA in this PEM file (a private CA).
    WithCa(PathBuf),
    /// Exactly the certificate in this PEM file (its first), whatever name it is for: for
    /// an agent beside its own server (`baton up`), which has read the same file.
    Pinned(PathBuf),
}

impl AgentConfig {
    /// A config with one slot per CPU, work dirs under the system temp dir and a 10 s
    /// shutdown grace.
    pub fn new(servers: Vec<String>, token: String, name: String) -> Self {
        let slots = std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .min(baton_api::MAX_AGENT_SLOTS);
        AgentConfig {
            servers,
            token,
            name,
            labels: BTreeMap::new(),
            slots,
            work_root: std::env::temp_dir().join("baton-work"),
            shutdown_grace: Duration::from_secs(10),
            functions: Vec::new(),
            plugins: None,
            trust: ServerTrust::System,
            pass_env: Vec::new(),
        }
    }

    /// Adds a function written in Rust; [`run`](crate::run) refuses to start when its name
    /// is taken (by a built-in, another function or a plugin) or breaks the rule of `uses:`.
    #[must_use]
    pub fn with_function(mut self, function: impl Function + 'static) -> Self {
        self.functions.push(Arc::new(function));
        self
    }
}

// By hand so the token never reaches a log line.
impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("servers", &self.servers)
            .field("token", &"<redacted>")
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("slots", &self.slots)
            .field("work_root", &self.work_root)
            .field("shutdown_grace", &self.shutdown_grace)
            .field(
                "functions",
                &self.functions.iter().map(|f| f.name()).collect::<Vec<_>>(),
            )
            .field("plugins", &self.plugins)
            .field("trust", &self.trust)
            .field("pass_env", &self.pass_env)
            .finish()
    }
}
