//! Hermetic helpers: real `baton` processes (server, agents, CLI) on loopback,
//! killed when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    // Held so the server lives as long as the cluster; killed on drop.
    _server: Proc,
}

impl Cluster {
    /// Starts `baton server` on a free port with a short lease (so lost agents are noticed fast).
    pub(crate) fn start(lease: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut child = baton(dir.path())
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--lease",
                lease,
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn baton server");
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
        let mut cluster = Cluster {
            admin: String::new(),
            url,
            _server: server,
            agents: BTreeMap::new(),
            dir,
        };
        wait_for("healthz", || {
            matches!(cluster.http("GET", "/healthz", None, None), Ok((200, _))).then_some(())
        });
        cluster.admin = std::fs::read_to_string(data.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string();
        cluster
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
