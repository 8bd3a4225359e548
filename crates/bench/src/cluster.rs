//! A real `baton server` and real `baton agent` processes in one temp dir, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::api::Api;

/// How long a server or agent may take to come up (debug builds on a busy machine are slow).
const STARTUP: Duration = Duration::from_secs(60);

/// How the processes are started.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The `baton` binary.
    pub(crate) baton: PathBuf,
    /// The server's `--db`, when not its default SQLite file in the data dir.
    pub(crate) db: Option<String>,
    /// Each agent's `--slots`.
    pub(crate) slots: u32,
    /// `BATON_SECRETS_KEY` of every server on `db`.
    pub(crate) secrets_key: String,
}

/// The secrets key of servers on a `--db` the caller gave, unless `BATON_SECRETS_KEY` names
/// one: fixed, so that every harness run on that database agrees with the first (a server
/// refuses a database sealed with another key). A benchmark database holds no real secrets.
pub(crate) const BENCH_SECRETS_KEY: &str =
    "62656e6368206b657920666f72206120626174306e2062656e6368206f6e6c79";

/// A child killed (SIGKILL) and reaped on drop.
struct Proc {
    child: Child,
    log: PathBuf,
    // Kept open so the server never writes to a closed pipe.
    _stdout: Option<ChildStdout>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Processes log at `warn`: anything they logged is worth seeing beside the figures.
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let notable: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
            .collect();
        if !notable.is_empty() {
            let name = self.log.file_name().unwrap_or_default().to_string_lossy();
            eprintln!(
                "  {name}: {} warnings or errors; the first and last:",
                notable.len()
            );
            let first = notable.len().min(3);
            let last = notable.len().saturating_sub(3).max(first);
            for l in notable[..first].iter().chain(&notable[last..]) {
                eprintln!("    {l}");
            }
        }
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the process has exited, with the end of its log.
    fn check_alive(&mut self, what: &str) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("waiting on a child")? {
            bail!(
                "{what} exited ({status}); its log ends:\n{}",
                tail(&self.log)
            );
        }
        Ok(())
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A server and its agents.
pub(crate) struct Cluster {
    /// An admin client of the server.
    pub(crate) api: Api,
    // Fields drop in order: agents before the server, the temp dir last.
    agents: Vec<Proc>,
    server: Proc,
    url: String,
    opts: Options,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a server on a free loopback port and `agents` agents, and waits until the
    /// server lists every agent online.
    pub(crate) async fn start(opts: &Options, agents: usize) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("baton-bench-")
            .tempdir()
            .context("creating a temp dir")?;
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let mut cmd = baton(&opts.baton, dir.path());
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(log_file(&log)?);
        if let Some(db) = &opts.db {
            // Every workload's server shares the database, so they must share the key its
            // secrets are sealed with (a server refuses a database sealed with another).
            cmd.args(["--db", db])
                .env("BATON_SECRETS_KEY", &opts.secrets_key);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", opts.baton.display()))?;
        let stdout = child.stdout.take();
        let mut server = Proc {
            child,
            log,
            _stdout: None,
        };
        let (url, stdout) = match stdout {
            Some(out) => first_line(out).await?,
            None => bail!("the server's stdout was not piped"),
        };
        server._stdout = Some(stdout);
        let url = match url.as_deref().and_then(|l| l.strip_prefix("listening on ")) {
            Some(u) => u.trim().to_owned(),
            None => {
                server.check_alive("the server")?;
                bail!("the server printed {url:?} instead of its address");
            }
        };
        let token_path = data.join("admin.token");
        let token = std::fs::read_to_string(&token_path)
            .with_context(|| format!("reading {}", token_path.display()))?;
        let api = Api::new(&url, token.trim().to_owned())?;
        let mut cluster = Cluster {
            api,
            agents: Vec::new(),
            server,
            url,
            opts: opts.clone(),
            dir,
        };
        cluster.add_agents(agents).await?;
        Ok(cluster)
    }

    /// Starts `n` more agents and waits until the server lists all of them online.
    pub(crate) async fn add_agents(&mut self, n: usize) -> Result<()> {
        let data = self.dir.path().join("data");
        for _ in 0..n {
            let name = self.agent_name(self.agents.len());
            let log = self.dir.path().join(format!("{name}.log"));
            let child = baton(&self.opts.baton, self.dir.path())
                .args(["agent", "--server", &self.url, "--name", &name])
                .args(["--slots", &self.opts.slots.to_string(), "--token-file"])
                .arg(data.join("agent.token"))
                .arg("--work-dir")
                .arg(self.dir.path().join(format!("work-{name}")))
                .stdout(Stdio::null())
                .stderr(log_file(&log)?)
                .spawn()
                .context("starting an agent")?;
            self.agents.push(Proc {
                child,
                log,
                _stdout: None,
            });
        }
        let want = self.agents.len();
        let names: Vec<String> = (0..want).map(|i| self.agent_name(i)).collect();
        let deadline = Instant::now() + STARTUP;
        loop {
            self.server.check_alive("the server")?;
            for a in &mut self.agents {
                a.check_alive("an agent")?;
            }
            let online = self
                .api
                .agents()
                .await?
                .iter()
                .filter(|a| a.status == "online" && names.contains(&a.name))
                .count();
            if online >= want {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {online} of {want} agents came online");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The name of agent `i`: unique to this cluster, since a database passed with `--db`
    /// outlives it and still lists the agents of earlier clusters for a while.
    fn agent_name(&self, i: usize) -> String {
        let dir = self.dir.path().file_name().unwrap_or_default();
        format!("{}-agent-{}", dir.to_string_lossy(), i + 1)
    }

    /// The server's process id.
    pub(crate) fn server_pid(&self) -> u32 {
        self.server.pid()
    }

    /// The agents' process ids.
    pub(crate) fn agent_pids(&self) -> Vec<u32> {
        self.agents.iter().map(Proc::pid).collect()
    }

    /// The `baton` binary the cluster runs.
    pub(crate) fn baton(&self) -> Command {
        baton(&self.opts.baton, self.dir.path())
    }

    /// A folder for the harness's own files, removed with the cluster.
    pub(crate) fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// An error if the server or an agent died.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        self.server.check_alive("the server")?;
        for a in &mut self.agents {
            a.check_alive("an agent")?;
        }
        Ok(())
    }
}

/// A `baton` command with a clean environment: no inherited `BATON_*` variables, a HOME
/// inside the temp dir, and warnings-only logs (a log line per request would be measured too).
fn baton(path: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("BATON_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// Reads the first line of a child's stdout, giving up after [`STARTUP`]; returns the line
/// (`None` at end of file) and the pipe, to be kept open.
async fn first_line(stdout: ChildStdout) -> Result<(Option<String>, ChildStdout)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread, because a blocking read has no timeout of its own.
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let got = match reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        };
        let _ = tx.send((got, reader.into_inner()));
    });
    tokio::time::timeout(STARTUP, rx)
        .await
        .context("the server did not print its address in time")?
        .context("the server's stdout reader stopped")
}
