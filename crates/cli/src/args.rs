//! Flags and arguments of the client commands, and the value parsers the binary shares.
//!
//! Every field's `///` doc is its `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use baton_api::Role;
use baton_core::RunState;
use clap::{Args, Subcommand};

/// Where the server is and which token to send.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// Base URL of the Baton server [default: http://127.0.0.1:7070]
    #[arg(long, env = "BATON_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Admin token [default: admin.token in the default data dir, if readable]
    #[arg(
        long,
        env = "BATON_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust, besides the system's, for an https:// server
    #[arg(long, env = "BATON_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// The server and token flags of `baton run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunConnectionArgs {
    /// Base URL of the Baton server [default: none: a self-contained run with an embedded server and local agents]
    #[arg(long, env = "BATON_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Admin token, with --server [default: admin.token in the default data dir, if readable]
    #[arg(
        long,
        env = "BATON_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust, besides the system's, for an https:// server
    #[arg(long, env = "BATON_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl RunConnectionArgs {
    /// As the connection flags of the other client commands.
    pub fn to_connection_args(&self) -> ConnectionArgs {
        ConnectionArgs {
            server: self.server.clone(),
            token: self.token.clone(),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

/// `baton run FILE`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Workflow file (YAML or JSON)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Server and token. `baton run` has its own copy of the flags because their defaults
    /// differ: without a server the run is self-contained (embedded server and agents).
    #[command(flatten)]
    pub conn: RunConnectionArgs,
    /// Print the final run document as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Start the run, print its id (with --json, its document) and return at once; needs a server
    #[arg(long)]
    pub detach: bool,
    /// The run's priority, a whole number from -1000000 to 1000000: among ready nodes an agent can run, higher goes first [default: the workflow's `priority`]
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i32).range(
            i64::from(*baton_core::PRIORITY_RANGE.start())..=i64::from(*baton_core::PRIORITY_RANGE.end())
        )
    )]
    pub priority: Option<i32>,
    /// Self-contained run: keep the embedded server's data here [default: a temporary dir, removed afterwards]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Self-contained run: number of local agents [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub agents: Option<u32>,
    /// Self-contained run: slots of each local agent [default: the number of CPUs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub slots: Option<u32>,
    /// Self-contained run: the local agents offer each executable file in DIR as a function named after the file without extension
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
}

impl RunArgs {
    /// True for a self-contained run: no server named (an empty `BATON_SERVER` names none).
    pub fn is_embedded(&self) -> bool {
        self.conn
            .server
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
    }

    /// Checks the flag combinations clap cannot: `--detach` and the embedded-only flags.
    pub fn check(&self) -> Result<(), crate::CliError> {
        let embedded = self.is_embedded();
        if embedded && self.detach {
            return Err(crate::CliError::Usage(
                "--detach needs a server (--server or BATON_SERVER): a self-contained run \
                 ends with the command"
                    .into(),
            ));
        }
        if !embedded {
            let given: Vec<&str> = [
                ("--data-dir", self.data_dir.is_some()),
                ("--agents", self.agents.is_some()),
                ("--slots", self.slots.is_some()),
                ("--plugins", self.plugins.is_some()),
            ]
            .into_iter()
            .filter_map(|(flag, set)| set.then_some(flag))
            .collect();
            if !given.is_empty() {
                return Err(crate::CliError::Usage(format!(
                    "only a self-contained run (without --server or BATON_SERVER) takes {}",
                    given.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// `baton validate FILE`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Workflow file (YAML or JSON)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `baton runs ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first
    List {
        /// Only runs of this workflow
        #[arg(long, value_name = "NAME")]
        workflow: Option<String>,
        /// Only runs in this state (created, pending, running, success, failure, error, canceled)
        #[arg(long, value_name = "STATE", value_parser = parse_run_state)]
        status: Option<RunState>,
        /// At most this many runs
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Show a run: its state and every node's state, attempts, agent, exit code and duration
    Show {
        /// Run id
        #[arg(value_name = "RUN")]
        run: String,
        /// Print the API's JSON (the run document)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Print the stored output of a run's nodes
    Logs {
        /// Run id
        #[arg(value_name = "RUN")]
        run: String,
        /// Only this node (otherwise every node, each line prefixed with its node id)
        #[arg(value_name = "NODE")]
        node: Option<String>,
        /// Keep printing new output until the run ends
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Cancel a run; exits 1 when it had already finished
    Cancel {
        /// Run id
        #[arg(value_name = "RUN")]
        run: String,
        /// Print the run document as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Re-run a finished run: a new run of the same workflow version that keeps the successful nodes and runs the others; follows it like `baton run`
    Retry {
        /// Run id of a finished run
        #[arg(value_name = "RUN")]
        run: String,
        /// Run this node and everything downstream of it again, even the ones that succeeded
        #[arg(long, value_name = "NODE")]
        from: Option<String>,
        /// Print the final run document as JSON on stdout
        #[arg(long)]
        json: bool,
        /// Start the new run, print its id (with --json, its document) and return at once
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

impl RunsCommand {
    /// The connection flags of the subcommand.
    pub fn conn(&self) -> &ConnectionArgs {
        match self {
            RunsCommand::List { conn, .. }
            | RunsCommand::Show { conn, .. }
            | RunsCommand::Logs { conn, .. }
            | RunsCommand::Cancel { conn, .. }
            | RunsCommand::Retry { conn, .. } => conn,
        }
    }

    /// True for the subcommands that follow a run until it ends (and so want Ctrl-C to
    /// stop following rather than kill the process).
    pub fn follows_a_run(&self) -> bool {
        matches!(self, RunsCommand::Retry { detach: false, .. })
    }
}

/// `baton agents ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AgentsCommand {
    /// List agents: name, status, slots used/total, labels, last seen
    List {
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

impl AgentsCommand {
    /// The connection flags of the subcommand.
    pub fn conn(&self) -> &ConnectionArgs {
        match self {
            AgentsCommand::List { conn, .. } => conn,
        }
    }
}

/// `baton resources ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ResourcesCommand {
    /// List resources held or waited for: holders (run, node, count, agent, since), then waiters in the order they would get it
    List {
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

impl ResourcesCommand {
    /// The connection flags of the subcommand.
    pub fn conn(&self) -> &ConnectionArgs {
        match self {
            ResourcesCommand::List { conn, .. } => conn,
        }
    }
}

/// `baton tokens ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TokensCommand {
    /// Create a named token and print it (it is shown only this once)
    Create {
        /// Its name: lowercase letters, digits, "_", "." and "-"
        #[arg(value_name = "NAME")]
        name: String,
        /// What it may do: viewer reads; operator also runs, cancels and re-runs; admin also applies workflows and manages tokens and secrets
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Lifetime (30d, 12h, 90m); none for a token that does not expire
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
        expires: Option<Duration>,
        /// Print the API's JSON (with the token)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// List named tokens: name, role, prefix, status, creator, dates (never the tokens)
    List {
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Revoke a named token: its next request is refused
    Revoke {
        /// The token's name
        #[arg(value_name = "NAME")]
        name: String,
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

impl TokensCommand {
    /// The connection flags of the subcommand.
    pub fn conn(&self) -> &ConnectionArgs {
        match self {
            TokensCommand::Create { conn, .. }
            | TokensCommand::List { conn, .. }
            | TokensCommand::Revoke { conn, .. } => conn,
        }
    }
}

/// Parses `--role`.
pub fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}; use viewer, operator or admin"))
}

/// `baton secrets ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum SecretsCommand {
    /// Set a secret from standard input (one trailing newline is dropped); never from a flag, so it stays out of shell history
    Set {
        /// Its name: letters, digits and "_", not starting with a digit
        #[arg(value_name = "NAME")]
        name: String,
        /// A workflow that may use it (repeatable); none for every workflow
        #[arg(long = "workflow", value_name = "WORKFLOW")]
        workflows: Vec<String>,
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// List secrets: names, scopes and dates, never values
    List {
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Remove a secret
    Rm {
        /// Its name
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

impl SecretsCommand {
    /// The connection flags of the subcommand.
    pub fn conn(&self) -> &ConnectionArgs {
        match self {
            SecretsCommand::Set { conn, .. }
            | SecretsCommand::List { conn, .. }
            | SecretsCommand::Rm { conn, .. } => conn,
        }
    }
}

/// `baton workflows ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum WorkflowsCommand {
    /// Validate a workflow file and store it as a new version (unchanged files keep their version)
    Apply {
        /// Workflow file (YAML or JSON)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the API's JSON (the stored version)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// List workflows with their latest version
    List {
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Show a workflow's versions, or with --version the file text of one version
    Show {
        /// Workflow name
        #[arg(value_name = "NAME")]
        name: String,
        /// Print this version's file text as applied
        #[arg(long, value_name = "V")]
        version: Option<i64>,
        /// Print the API's JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

impl WorkflowsCommand {
    /// The connection flags of the subcommand.
    pub fn conn(&self) -> &ConnectionArgs {
        match self {
            WorkflowsCommand::Apply { conn, .. }
            | WorkflowsCommand::List { conn, .. }
            | WorkflowsCommand::Show { conn, .. } => conn,
        }
    }
}

/// `baton audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// At most this many entries, newest first [default: 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Only entries older than this id (the id the previous page says to pass)
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub before: Option<i64>,
    /// Only entries by this actor (a token's name; `admin` for the admin token file)
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Only entries of this action (workflow.apply, run.create, run.cancel, run.retry, run.approve, run.reject, run.pause, run.resume, run.delete, token.create, token.revoke, secret.set, secret.delete)
    #[arg(long, value_name = "ACTION", value_parser = parse_audit_action)]
    pub action: Option<baton_api::AuditAction>,
    /// Print the API's JSON (the page: entries and next_before)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnectionArgs,
}

/// Parses an audit action name for `--action`.
pub fn parse_audit_action(text: &str) -> Result<baton_api::AuditAction, String> {
    text.parse()
        .map_err(|e: baton_api::UnknownAction| e.to_string())
}

/// Parses a run state name for `--status`.
pub fn parse_run_state(text: &str) -> Result<RunState, String> {
    text.parse().map_err(|_| {
        let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown run state {text:?}; use one of {}",
            names.join(", ")
        )
    })
}

/// Parses a human duration (`500ms`, `15s`, `1m30s`) for flags such as `--lease`.
pub fn parse_duration_flag(text: &str) -> Result<Duration, String> {
    baton_core::parse_duration(text).map(Duration::from_millis)
}

/// Longest label value accepted on the command line.
const MAX_LABEL_VALUE: usize = 256;

/// Parses one `--label key=value`.
///
/// Keys use letters, digits, `_`, `.`, `/` and `-` (the rule of `selector:` keys in workflow
/// files, so every label can be selected); values are any text without control characters.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("bad label {text:?}: expected key=value"));
    };
    if key.is_empty() {
        return Err(format!("bad label {text:?}: the key is empty"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')))
    {
        return Err(format!(
            "bad label key {key:?}: {c:?} is not allowed; use letters, digits, \"_\", \".\", \"/\" and \"-\""
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "bad label value for {key:?}: control characters are not allowed"
        ));
    }
    if value.chars().count() > MAX_LABEL_VALUE {
        return Err(format!(
            "bad label value for {key:?}: longer than {MAX_LABEL_VALUE} characters"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_key_value() {
        assert_eq!(parse_label("os=linux"), Ok(("os".into(), "linux".into())));
        assert_eq!(
            parse_label("kubernetes.io/arch=arm64"),
            Ok(("kubernetes.io/arch".into(), "arm64".into()))
        );
        assert_eq!(parse_label("gpu="), Ok(("gpu".into(), String::new())));
        assert_eq!(parse_label("k=a=b"), Ok(("k".into(), "a=b".into())));
    }

    #[test]
    fn bad_labels_say_what_is_wrong() {
        insta::assert_snapshot!(parse_label("linux").unwrap_err(), @r#"bad label "linux": expected key=value"#);
        insta::assert_snapshot!(parse_label("=x").unwrap_err(), @r#"bad label "=x": the key is empty"#);
        insta::assert_snapshot!(parse_label("my key=x").unwrap_err(), @r#"bad label key "my key": ' ' is not allowed; use letters, digits, "_", ".", "/" and "-""#);
        assert!(parse_label("k=a\nb").unwrap_err().contains("control"));
        assert!(
            parse_label(&format!("k={}", "v".repeat(300)))
                .unwrap_err()
                .contains("longer")
        );
    }

    #[test]
    fn run_states_and_durations_parse_for_flags() {
        assert_eq!(parse_run_state("failure"), Ok(RunState::Failure));
        assert!(
            parse_run_state("failed")
                .unwrap_err()
                .contains("success, failure")
        );
        assert_eq!(parse_duration_flag("1m30s"), Ok(Duration::from_secs(90)));
        assert!(
            parse_duration_flag("15")
                .unwrap_err()
                .contains("missing unit")
        );
    }

    fn run_args(server: Option<&str>) -> RunArgs {
        RunArgs {
            file: "wf.yaml".into(),
            conn: RunConnectionArgs {
                server: server.map(Into::into),
                token: None,
                ca_cert: None,
            },
            json: false,
            detach: false,
            priority: None,
            data_dir: None,
            agents: None,
            slots: None,
            plugins: None,
        }
    }

    #[test]
    fn run_flags_that_need_a_mode_are_refused_in_the_other() {
        let mut detached = run_args(None);
        detached.detach = true;
        assert!(
            detached
                .check()
                .unwrap_err()
                .to_string()
                .contains("--detach needs a server")
        );
        let mut agents = run_args(Some("http://h"));
        agents.agents = Some(2);
        agents.slots = Some(2);
        agents.plugins = Some("plugins".into());
        insta::assert_snapshot!(agents.check().unwrap_err(), @"only a self-contained run (without --server or BATON_SERVER) takes --agents, --slots, --plugins");
        let mut fine = run_args(Some("http://h"));
        fine.detach = true;
        assert!(fine.check().is_ok());
        assert!(run_args(None).check().is_ok());
        assert!(run_args(Some(" ")).is_embedded());
    }
}
