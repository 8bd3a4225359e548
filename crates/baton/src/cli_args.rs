//! The command line of the `baton` binary: every subcommand and flag (clap derive).
//!
//! Client subcommands take their flags from `baton_cli::args`; the server, agent and `up`
//! flags live here because only the binary can start those. Each field's `///` doc is its
//! `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use baton_cli::args::AuditArgs;
use baton_cli::args::{
    AgentsCommand, ResourcesCommand, RunArgs, RunsCommand, SecretsCommand, TokensCommand,
    ValidateArgs, WorkflowsCommand, parse_duration_flag, parse_label,
};
use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};

/// Baton runs workflows (graphs of shell steps) on a fleet of agents through one control
/// plane.
///
/// Exit codes: 0 success; 1 the run ended failure, error or canceled; 2 invalid input (file,
/// flags); 3 server unreachable or refused the token.
#[derive(Debug, Parser)]
#[command(name = "baton", version, arg_required_else_help = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a workflow file and wait for it to end; self-contained without --server
    Run(RunArgs),
    /// Check a workflow file and print every problem
    Validate(ValidateArgs),
    /// Start the control plane
    Server(ServerArgs),
    /// Start an agent that runs nodes for a server
    Agent(AgentArgs),
    /// Start a server and one local agent in one process
    Up(UpArgs),
    /// List, show, follow and cancel runs
    #[command(subcommand)]
    Runs(RunsCommand),
    /// List agents
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// List resources held or waited for
    #[command(subcommand)]
    Resources(ResourcesCommand),
    /// Apply, list and show workflows
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Create, list and revoke named tokens with roles (admin)
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Set, list and remove secrets (admin); values are never printed
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// List the audit trail (who did what, when), newest first; admin only
    Audit(AuditArgs),
}

impl Command {
    /// The log level when `BATON_LOG` is unset: quiet for client commands.
    pub(crate) fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Server(_) | Command::Agent(_) | Command::Up(_) => "info",
            _ => "warn",
        }
    }

    /// The `--log-format` of commands that have one.
    pub(crate) fn log_format(&self) -> LogFormat {
        match self {
            Command::Server(a) => a.log.log_format,
            Command::Agent(a) => a.log.log_format,
            Command::Up(a) => a.server.log.log_format,
            _ => LogFormat::Text,
        }
    }
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people
    Text,
    /// One JSON object per line
    Json,
}

/// Logging flags of long-running commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct LogArgs {
    /// Log line format on stderr (the level comes from BATON_LOG, default info)
    #[arg(long, env = "BATON_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// SQLite durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SyncMode {
    /// Fast; a power loss may lose the last transactions (never corrupts)
    Normal,
    /// Every commit reaches the disk before it is acknowledged
    Full,
}

/// `baton server`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Address to listen on; port 0 picks a free port
    #[arg(
        long,
        env = "BATON_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:7070"
    )]
    pub(crate) listen: SocketAddr,
    /// Folder for admin.token, agent.token, the SQLite database and artifacts [default: $XDG_DATA_HOME/baton or ~/.local/share/baton]
    #[arg(long, env = "BATON_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH, or postgres://USER:PASSWORD@HOST:PORT/DB shared by several replicas [default: baton.db in the data dir]
    #[arg(long, env = "BATON_DB", value_name = "URL")]
    pub(crate) db: Option<String>,
    /// Lease of a claimed attempt: work whose agent is silent this long is retried elsewhere
    #[arg(long, env = "BATON_LEASE", value_name = "DURATION", default_value = "15s", value_parser = parse_duration_flag)]
    pub(crate) lease: Duration,
    /// SQLite durability
    #[arg(long, env = "BATON_SYNC", value_enum, default_value_t = SyncMode::Normal)]
    pub(crate) sync: SyncMode,
    /// How long a node may wait for an agent before it ends error (no_agent), unless its workflow sets queue_timeout; 0 for no limit
    #[arg(long, env = "BATON_QUEUE_TIMEOUT", value_name = "DURATION", default_value = "1h", value_parser = parse_queue_timeout)]
    pub(crate) queue_timeout: Duration,
    /// Serve HTTPS with this certificate chain (PEM: the server's certificate first); needs --tls-key
    #[arg(
        long,
        env = "BATON_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert (PEM)
    #[arg(
        long,
        env = "BATON_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// Parses `--queue-timeout`: a duration, or a bare `0` for no limit.
fn parse_queue_timeout(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration_flag(text)
}

/// `baton agent`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AgentArgs {
    /// Server URL; repeat (or separate with commas) to fail over between servers
    #[arg(
        long = "server",
        env = "BATON_SERVER",
        value_name = "URL",
        required = true,
        value_delimiter = ','
    )]
    pub(crate) servers: Vec<String>,
    /// Enrollment token (the server's agent.token) [env: BATON_AGENT_TOKEN; default: agent.token in the default data dir]
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub(crate) token: Option<String>,
    /// Read the enrollment token from this file
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) work: AgentWorkArgs,
    /// Agent name, unique among online agents [default: the host name]
    #[arg(long, env = "BATON_AGENT_NAME", value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// How long running work may go on after SIGTERM/SIGINT before it is killed
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration_flag)]
    pub(crate) shutdown_grace: Duration,
    /// PEM file of CA certificates to trust, besides the system's, for an https:// server
    #[arg(long, env = "BATON_CA_CERT", value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// What an agent offers: shared by `baton agent` and `baton up`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AgentWorkArgs {
    /// Label KEY=VALUE that node selectors can ask for; repeatable
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Attempts run at once [default: the number of CPUs]
    #[arg(long, env = "BATON_SLOTS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) slots: Option<u32>,
    /// Folder for the work dirs of attempts [default: baton-work in the temp dir; for up, work in the data dir]
    #[arg(long, env = "BATON_WORK_DIR", value_name = "DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// Folder of plugins: each executable file in it is a function named after the file without extension (read at start)
    #[arg(long, env = "BATON_PLUGINS", value_name = "DIR")]
    pub(crate) plugins: Option<PathBuf>,
    /// Also give steps this variable of the agent's environment (steps get only PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TERM and TMPDIR by default); repeatable; never a BATON_* name
    #[arg(
        long = "pass-env",
        env = "BATON_PASS_ENV",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub(crate) pass_env: Vec<String>,
}

/// `baton up`.
#[derive(Debug, Clone, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    #[command(flatten)]
    pub(crate) work: AgentWorkArgs,
}

/// Where the `--token` of the subcommand came from: the flag or `BATON_TOKEN`.
pub(crate) fn token_origin(matches: &ArgMatches) -> baton_cli::TokenOrigin {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let from_env = leaf.ids().any(|id| id == "token")
        && leaf.value_source("token") == Some(clap::parser::ValueSource::EnvVariable);
    if from_env {
        baton_cli::TokenOrigin::Env
    } else {
        baton_cli::TokenOrigin::Flag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("baton").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_bad_label_is_a_usage_error() {
        let err = parse(&["agent", "--server", "http://h", "--label", "linux"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("bad label \"linux\": expected key=value"),
            "{text}"
        );
        let err = parse(&["up", "--label", "a b=c"]).unwrap_err();
        assert!(err.to_string().contains("bad label key"), "{err}");
    }

    #[test]
    fn run_takes_a_priority_in_range_negative_included() {
        for (given, want) in [("7", 7), ("-5", -5), ("1000000", 1_000_000)] {
            let Command::Run(r) = parse(&["run", "wf.yaml", "--priority", given])
                .unwrap()
                .command
            else {
                panic!("not a run");
            };
            assert_eq!(r.priority, Some(want));
        }
        let Command::Run(r) = parse(&["run", "wf.yaml"]).unwrap().command else {
            panic!("not a run");
        };
        assert_eq!(r.priority, None, "the workflow's priority applies");
        for bad in ["1000001", "-1000001", "high", "1.5"] {
            let err = parse(&["run", "wf.yaml", "--priority", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("--priority"), "{err}");
        }
    }

    #[test]
    fn agents_and_up_take_a_plugins_dir() {
        let Command::Agent(a) = parse(&["agent", "--server", "h", "--plugins", "p"])
            .unwrap()
            .command
        else {
            panic!("not an agent command");
        };
        assert_eq!(a.work.plugins, Some(PathBuf::from("p")));
        let Command::Up(u) = parse(&["up", "--plugins", "q"]).unwrap().command else {
            panic!("not an up command");
        };
        assert_eq!(u.work.plugins, Some(PathBuf::from("q")));
    }

    #[test]
    fn agent_flags_parse() {
        let cli = parse(&[
            "agent",
            "--server",
            "http://a:7070",
            "--server",
            "http://b:7070,http://c:7070",
            "--label",
            "os=linux",
            "--label",
            "gpu=yes",
            "--slots",
            "3",
            "--shutdown-grace",
            "2s",
            "--token-file",
            "t",
        ])
        .unwrap();
        let Command::Agent(a) = cli.command else {
            panic!("not an agent command");
        };
        assert_eq!(
            a.servers,
            ["http://a:7070", "http://b:7070", "http://c:7070"]
        );
        assert_eq!(a.work.labels.len(), 2);
        assert_eq!(a.work.slots, Some(3));
        assert_eq!(a.shutdown_grace, Duration::from_secs(2));
        assert_eq!(a.token_file, Some(PathBuf::from("t")));
        assert!(
            parse(&[
                "agent",
                "--server",
                "h",
                "--token",
                "x",
                "--token-file",
                "t"
            ])
            .is_err(),
            "--token and --token-file conflict"
        );
        assert!(parse(&["agent", "--server", "h", "--slots", "0"]).is_err());
        assert!(parse(&["agent", "--server", "h", "--slots", "1025"]).is_err());
    }

    #[test]
    fn pass_env_is_repeatable_and_comma_separated() {
        let Command::Agent(a) = parse(&[
            "agent",
            "--server",
            "h",
            "--pass-env",
            "FOO",
            "--pass-env",
            "A,B",
        ])
        .unwrap()
        .command
        else {
            panic!("not an agent command");
        };
        assert_eq!(a.work.pass_env, ["FOO", "A", "B"]);
    }

    #[test]
    fn server_flags_parse_durations_and_sync() {
        let cli = parse(&[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--lease",
            "2s",
            "--sync",
            "full",
        ])
        .unwrap();
        let Command::Server(s) = cli.command else {
            panic!("not a server command");
        };
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.lease, Duration::from_secs(2));
        assert_eq!(s.sync, SyncMode::Full);
        let err = parse(&["server", "--lease", "15"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("missing unit"), "{err}");
        assert!(parse(&["server", "--sync", "sometimes"]).is_err());
    }

    #[test]
    fn queue_timeout_defaults_to_an_hour_and_zero_disables_it() {
        let queue = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(Command::Server(s)) => Ok(s.queue_timeout),
            Ok(_) => panic!("not a server command"),
            Err(e) => Err(e),
        };
        assert_eq!(queue(&["server"]).unwrap(), Duration::from_secs(3600));
        assert_eq!(
            queue(&["server", "--queue-timeout", "10m"]).unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(
            queue(&["server", "--queue-timeout", "0"]).unwrap(),
            Duration::ZERO
        );
        assert!(queue(&["server", "--queue-timeout", "10"]).is_err());
    }

    #[test]
    fn the_token_origin_is_the_flag_unless_clap_took_the_env() {
        let matches = Cli::command()
            .try_get_matches_from(["baton", "runs", "show", "r1", "--token", "t"])
            .unwrap();
        assert_eq!(token_origin(&matches), baton_cli::TokenOrigin::Flag);
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Command::Runs(RunsCommand::Show { conn, .. }) = cli.command else {
            panic!("not runs show");
        };
        assert_eq!(conn.token.as_deref(), Some("t"));
        let validate = Cli::command()
            .try_get_matches_from(["baton", "validate", "f.yaml"])
            .unwrap();
        assert_eq!(token_origin(&validate), baton_cli::TokenOrigin::Flag);
    }

    #[test]
    fn log_defaults_are_quiet_for_clients() {
        let run = parse(&["runs", "list"]).unwrap();
        assert_eq!(run.command.default_log_filter(), "warn");
        let server = parse(&["server", "--log-format", "json"]).unwrap();
        assert_eq!(server.command.default_log_filter(), "info");
        assert_eq!(server.command.log_format(), LogFormat::Json);
    }
}
