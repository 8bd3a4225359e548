//! Hermetic helpers: real `baton` processes (server, agents, CLI) on loopback,
//! killed when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// How long any single condition may take before a test fails. Generous: CI machines are slow.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A `baton` command with a clean environment: no inherited BATON_* variables, and a HOME
/// inside `home` so nothing reads or writes the developer's own data dir.
pub(crate) fn baton(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("BATON_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Polls `probe` until it returns `Some`, panicking with `what` after [`PATIENCE`].
pub(crate) fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server and its agents, each a real process, in one temp dir.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) url: String,
    pub(crate) admin: String,
    // Fields drop in order: agents go before the server, so they never see it vanish.
    pub(crate) agents: BTreeMap<String, Proc>,
    /// The server's flags besides listen and data dir, kept for a restart.
    server_flags: Vec<String>,
    // Held so the server lives as long as the cluster; killed on drop.
    _server: Proc,
}

impl Cluster {
    /// Starts `baton server` on a free port with a short lease (so lost agents are noticed fast).
    pub(crate) fn start(lease: &str) -> Cluster {
        Cluster::start_with(&["--lease", lease])
    }

    /// Starts `baton server` on a free port with these flags (besides listen and data dir).
    pub(crate) fn start_with(flags: &[&str]) -> Cluster {
        Cluster::start_logging(flags, false)
    }

    /// [`start_with`](Self::start_with), the server logging at debug level into
    /// [`server_log`](Self::server_log) when `debug_log` (tests that read its log).
    pub(crate) fn start_logging(flags: &[&str], debug_log: bool) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let server_flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let log = debug_log.then(|| dir.path().join("server.log"));
        let (server, url) = spawn_server(dir.path(), "127.0.0.1:0", &server_flags, log.as_deref());
        let mut cluster = Cluster {
            admin: String::new(),
            url,
            server_flags,
            _server: server,
            agents: BTreeMap::new(),
            dir,
        };
        cluster.wait_healthy();
        cluster.admin = std::fs::read_to_string(cluster.data_dir().join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string();
        cluster
    }

    fn wait_healthy(&self) {
        wait_for("healthz", || {
            matches!(self.http("GET", "/healthz", None, None), Ok((200, _))).then_some(())
        });
    }

    /// Where a server started with a debug log writes it.
    pub(crate) fn server_log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server's data dir.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts an agent process and waits until the server lists it online.
    pub(crate) fn add_agent(&mut self, name: &str, slots: u32, labels: &[&str]) {
        let mut cmd = baton(self.dir.path());
        cmd.args(["agent", "--server", &self.url, "--name", name])
            .args(["--slots", &slots.to_string(), "--token-file"])
            .arg(self.data_dir().join("agent.token"))
            .arg("--work-dir")
            .arg(self.work_dir(name))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for l in labels {
            cmd.args(["--label", l]);
        }
        let child = cmd.spawn().expect("spawn baton agent");
        self.agents.insert(name.to_string(), Proc(child));
        wait_for(&format!("agent {name} online"), || {
            let agents = self.agents_json();
            agents
                .as_array()?
                .iter()
                .any(|a| a["name"] == name && a["status"] == "online")
                .then_some(())
        });
    }

    /// Where an agent keeps its attempts' work dirs.
    pub(crate) fn work_dir(&self, agent: &str) -> PathBuf {
        self.dir.path().join(format!("work-{agent}"))
    }

    /// Runs the CLI against this server with the admin token.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        baton(self.dir.path())
            .args(args)
            .env("BATON_SERVER", &self.url)
            .env("BATON_TOKEN", &self.admin)
            .output()
            .expect("run baton cli")
    }

    /// `baton run FILE --json`: the exit code and the final run document.
    pub(crate) fn run_file(&self, file: &Path) -> (i32, Value) {
        let out = self.cli(&["run", &file.to_string_lossy(), "--json"]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run --json printed no document ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), doc)
    }

    /// `baton agents list --json`.
    pub(crate) fn agents_json(&self) -> Value {
        let out = self.cli(&["agents", "list", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `baton runs show RUN --json`.
    pub(crate) fn run_doc(&self, id: &str) -> Value {
        let out = self.cli(&["runs", "show", id, "--json"]);
        assert!(
            out.status.success(),
            "runs show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("run document")
    }

    /// A raw HTTP/1.1 request to the server; `(status, body)`.
    pub(crate) fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        let body = body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream.write_all(req.as_bytes())?;
        let mut resp = String::new();
        stream.read_to_string(&mut resp)?;
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Kills an agent with SIGKILL.
    pub(crate) fn kill_agent(&mut self, name: &str) {
        if let Some(mut p) = self.agents.remove(name) {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }
}

/// Starts `baton server` with its data dir in `home`, listening on `listen`; returns it and
/// its URL once it printed its address.
fn spawn_server(
    home: &Path,
    listen: &str,
    flags: &[String],
    debug_log: Option<&Path>,
) -> (Proc, String) {
    let mut cmd = baton(home);
    cmd.args(["server", "--listen", listen])
        .args(flags)
        .arg("--data-dir")
        .arg(home.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if flags.iter().any(|f| f == "--db") {
        // Replicas of one database share the secrets key, as deployments must.
        cmd.env("BATON_SECRETS_KEY", "5e".repeat(32));
    }
    if let Some(log) = debug_log {
        let file = std::fs::File::create(log).expect("server log file");
        cmd.env("BATON_LOG", "debug").stderr(file);
    }
    let mut child = cmd.spawn().expect("spawn baton server");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Proc(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(PATIENCE)
        .expect("server printed its address");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .trim()
        .to_string();
    (server, url)
}

/// Writes a workflow file into `dir` and returns its path.
pub(crate) fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write workflow");
    path
}

/// Node states of a run document, by node id.
pub(crate) fn node_states(doc: &Value) -> BTreeMap<String, String> {
    doc["nodes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["status"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// How an agent process is started, beyond its name and slots.
#[derive(Default)]
pub(crate) struct AgentSpec<'a> {
    /// Extra flags, such as `["--shutdown-grace", "2s"]`.
    pub(crate) flags: &'a [&'a str],
    /// A command the agent runs under, such as `["faketime", "-f", "+1h"]`. The wrapper and
    /// the agent get a process group of their own: kill them with [`GroupKill`].
    pub(crate) wrapper: &'a [&'a str],
    /// Extra environment variables.
    pub(crate) env: &'a [(&'a str, &'a str)],
    /// Where its stderr goes, logged at `info`; inherited (at `warn`) when `None`.
    pub(crate) log: Option<&'a Path>,
}

impl Cluster {
    /// Starts an agent as `spec` says, without waiting for it to register.
    pub(crate) fn spawn_agent(&mut self, name: &str, slots: u32, spec: &AgentSpec<'_>) {
        let mut cmd = match spec.wrapper.split_first() {
            None => baton(self.dir.path()),
            Some((program, args)) => {
                let mut cmd = baton(self.dir.path());
                // The same clean environment, around another program.
                let envs: Vec<_> = cmd
                    .get_envs()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
                    .collect();
                cmd = Command::new(program);
                cmd.env_clear().envs(envs).stdin(Stdio::null());
                cmd.args(args)
                    .arg(env!("CARGO_BIN_EXE_baton"))
                    .process_group(0);
                cmd
            }
        };
        cmd.args(["agent", "--server", &self.url, "--name", name])
            .args(["--slots", &slots.to_string(), "--token-file"])
            .arg(self.data_dir().join("agent.token"))
            .arg("--work-dir")
            .arg(self.work_dir(name))
            .args(spec.flags)
            .stdout(Stdio::null());
        for (k, v) in spec.env {
            cmd.env(k, v);
        }
        match spec.log {
            Some(path) => {
                let file = std::fs::File::create(path).expect("agent log file");
                cmd.env("BATON_LOG", "info").stderr(file);
            }
            None => {
                cmd.stderr(Stdio::inherit());
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn agent {name} ({:?}): {e}", spec.wrapper.first()));
        self.agents.insert(name.to_string(), Proc(child));
    }

    /// Starts an agent as `spec` says and waits until the server lists it online.
    pub(crate) fn start_agent(&mut self, name: &str, slots: u32, spec: &AgentSpec<'_>) {
        self.spawn_agent(name, slots, spec);
        wait_for(&format!("agent {name} online"), || {
            (self.agent_status(name).as_deref() == Some("online")).then_some(())
        });
    }

    /// The status (`online`, `offline`, `gone`) of the newest agent named `name`, from the
    /// API; `None` when it is not listed or the server does not answer.
    pub(crate) fn agent_status(&self, name: &str) -> Option<String> {
        let agents = self.api_get("/api/v1/agents")?;
        agents
            .as_array()?
            .iter()
            .filter(|a| a["name"] == name)
            .max_by(|a, b| {
                let at = |v: &Value| v["registered_at"].as_str().unwrap_or("").to_string();
                at(a).cmp(&at(b))
            })
            .and_then(|a| a["status"].as_str().map(str::to_string))
    }

    /// The process id of a running agent (of its wrapper, when it has one).
    pub(crate) fn agent_pid(&self, name: &str) -> i32 {
        let pid = self.agents.get(name).expect("agent is running").0.id();
        i32::try_from(pid).expect("pid fits in i32")
    }

    /// Sends `signal` to an agent process.
    pub(crate) fn signal_agent(&self, name: &str, signal: Signal) {
        kill(Pid::from_raw(self.agent_pid(name)), signal).expect("signal the agent");
    }

    /// Waits for an agent process to exit by itself and forgets it.
    pub(crate) fn wait_agent_exit(&mut self, name: &str) -> std::process::ExitStatus {
        let status = wait_for(&format!("agent {name} to exit"), || {
            self.agents
                .get_mut(name)
                .expect("agent is running")
                .0
                .try_wait()
                .expect("try_wait")
        });
        self.agents.remove(name);
        status
    }

    /// Kills the server with SIGKILL and reaps it.
    pub(crate) fn kill_server(&mut self) {
        let _ = self._server.0.kill();
        let _ = self._server.0.wait();
    }

    /// Starts the server again on the same data dir, port and flags (the old one must be
    /// dead) and waits until it answers.
    pub(crate) fn restart_server(&mut self) {
        let listen = self.url.trim_start_matches("http://").to_string();
        let (server, url) = spawn_server(self.dir.path(), &listen, &self.server_flags, None);
        assert_eq!(url, self.url, "the server came back on another address");
        self._server = server;
        self.wait_healthy();
    }

    /// `GET path` with the admin token: the JSON body of a 200, else `None` (including
    /// when the server does not answer).
    pub(crate) fn api_get(&self, path: &str) -> Option<Value> {
        match self.http("GET", path, Some(&self.admin), None) {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// The run document from the API; `None` when the server does not answer.
    pub(crate) fn run_api(&self, id: &str) -> Option<Value> {
        self.api_get(&format!("/api/v1/runs/{id}"))
    }

    /// Waits until a run is in a terminal state and returns its document.
    pub(crate) fn wait_run_done(&self, id: &str) -> Value {
        wait_for(&format!("run {id} to finish"), || {
            let doc = self.run_api(id)?;
            is_terminal_run(&doc).then_some(doc)
        })
    }

    /// `POST /api/v1/runs`: the new run's id when the server acknowledged it (201).
    pub(crate) fn create_run_api(&self, workflow: &str) -> Option<String> {
        let body = serde_json::json!({ "workflow": workflow }).to_string();
        match self.http("POST", "/api/v1/runs", Some(&self.admin), Some(&body)) {
            Ok((201, body)) => {
                let doc: Value = serde_json::from_str(&body).ok()?;
                doc["id"].as_str().map(str::to_string)
            }
            _ => None,
        }
    }

    /// `baton run FILE --detach --json`: the new run's id.
    pub(crate) fn start_run(&self, file: &Path) -> String {
        let out = self.cli(&["run", &file.to_string_lossy(), "--detach", "--json"]);
        assert!(
            out.status.success(),
            "run --detach: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).expect("run document");
        doc["id"].as_str().expect("run id").to_string()
    }
}

/// Whether a run document shows a finished run.
pub(crate) fn is_terminal_run(doc: &Value) -> bool {
    matches!(
        doc["status"].as_str(),
        Some("success" | "failure" | "error" | "canceled")
    )
}

/// Kills a whole process group (SIGKILL) on drop: for agents started under a wrapper.
pub(crate) struct GroupKill(pub(crate) i32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// Whether a process lives: it exists and is not a zombie waiting to be reaped.
pub(crate) fn pid_alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Reads a pid a node wrote into `path`, waiting for it to appear.
pub(crate) fn read_pid(path: &Path) -> i32 {
    wait_for(&format!("pid file {}", path.display()), || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time as the API writes it
/// (`2026-11-22T23:00:00.000Z`).
pub(crate) fn parse_time_ms(s: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| -> i64 {
        s.get(range)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("bad time {s:?}"))
    };
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, sec) = (num(11..13), num(14..16), num(17..19));
    let ms = if s.as_bytes().get(19) == Some(&b'.') {
        num(20..23)
    } else {
        0
    };
    // Days from civil (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_millis()).expect("millis fit in i64")
}

/// A number from the environment (for the long fault loops of `scripts/faults.sh`), else
/// `default`.
pub(crate) fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        Err(_) => default,
    }
}

/// A small deterministic random generator (xorshift64*), seeded from `BATON_FAULT_SEED` or
/// the clock; the seed is printed so a failing sequence can be replayed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env(test: &str) -> Rng {
        let seed = std::env::var("BATON_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_ms().unsigned_abs() | 1);
        println!("{test}: BATON_FAULT_SEED={seed}");
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// The `q` quantile (0..=1) of `values`, which it sorts.
pub(crate) fn quantile(values: &mut [i64], q: f64) -> i64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i]
}
