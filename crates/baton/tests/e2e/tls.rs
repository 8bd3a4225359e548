//! HTTPS: a server with a certificate from a private CA, agents and the CLI that trust it
//! with `--ca-cert`/`BATON_CA_CERT`, and clear errors for every way of getting it wrong.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::Value;

use crate::util::{Cluster, PATIENCE, Proc, baton, wait_for, write_file};

/// PEM files made for one test: a CA, a server certificate it signed for 127.0.0.1 and
/// localhost with its key, and a second CA that signed nothing the server shows.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_ca: PathBuf,
}

fn make_ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("ca key");
    let pem = params.self_signed(&key).expect("self-signed ca").pem();
    (params, key, pem)
}

fn make_pki(dir: &Path) -> Pki {
    let (ca_params, ca_key, ca_pem) = make_ca("Baton test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "baton test server");
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let (_, _, other_pem) = make_ca("Some other CA");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    Pki {
        ca: write("ca.pem", &ca_pem),
        cert: write("server.pem", &cert.pem()),
        key: write("server.key", &key.serialize_pem()),
        other_ca: write("other-ca.pem", &other_pem),
    }
}

/// Spawns `baton ARGS` (server or up) and returns it with the URL of its first line.
fn spawn_listening(home: &Path, args: &[&str]) -> (Proc, String) {
    let mut child = baton(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn baton");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(PATIENCE)
        .expect("baton printed its address");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .trim()
        .to_owned();
    (Proc(child), url)
}

/// An HTTPS server in its own temp dir, and the admin token it made.
struct TlsServer {
    dir: tempfile::TempDir,
    pki: Pki,
    url: String,
    admin: String,
    agents: Vec<Proc>,
    server: Proc,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = make_pki(dir.path());
        let data = dir.path().join("data");
        let (server, url) = spawn_listening(
            dir.path(),
            &[
                "server",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &data.to_string_lossy(),
                "--tls-cert",
                &pki.cert.to_string_lossy(),
                "--tls-key",
                &pki.key.to_string_lossy(),
            ],
        );
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let admin = std::fs::read_to_string(data.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_owned();
        let s = TlsServer {
            dir,
            pki,
            url,
            admin,
            agents: Vec::new(),
            server,
        };
        wait_for("the https server answers", || {
            s.cli(&["agents", "list", "--json"], Some(&s.pki.ca))
                .status
                .success()
                .then_some(())
        });
        s
    }

    /// The CLI against this server with the admin token, trusting `ca` if given.
    fn cli(&self, args: &[&str], ca: Option<&Path>) -> Output {
        let mut cmd = baton(self.dir.path());
        cmd.args(args)
            .env("BATON_SERVER", &self.url)
            .env("BATON_TOKEN", &self.admin);
        if let Some(ca) = ca {
            cmd.env("BATON_CA_CERT", ca);
        }
        cmd.output().expect("run baton cli")
    }

    /// `baton agent` against this server with these extra flags.
    fn agent(&self, name: &str, flags: &[&str]) -> Child {
        baton(self.dir.path())
            .args(["agent", "--server", &self.url, "--name", name])
            .arg("--token-file")
            .arg(self.dir.path().join("data/agent.token"))
            .arg("--work-dir")
            .arg(self.dir.path().join(format!("work-{name}")))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton agent")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits for a child that is expected to end on its own, and gives its output.
fn wait_exit(mut child: Child) -> Output {
    wait_for("the process to exit", || child.try_wait().ok().flatten());
    child.wait_with_output().expect("collect output")
}

#[test]
fn an_agent_and_the_cli_that_trust_the_ca_run_a_workflow_over_https() {
    let mut s = TlsServer::start();
    let ca = s.pki.ca.to_string_lossy().into_owned();
    s.agents.push(Proc(s.agent("a1", &["--ca-cert", &ca])));
    wait_for("agent a1 online", || {
        let out = s.cli(&["agents", "list", "--json"], Some(&s.pki.ca));
        let agents: Value = serde_json::from_slice(&out.stdout).ok()?;
        agents
            .as_array()?
            .iter()
            .any(|a| a["name"] == "a1" && a["status"] == "online")
            .then_some(())
    });

    let wf = write_file(
        s.dir.path(),
        "hello.yaml",
        "name: hello\nnodes:\n  greet: {run: \"echo hello over tls\"}\n",
    );
    let out = s.cli(&["run", &wf.to_string_lossy(), "--json"], Some(&s.pki.ca));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("run document");
    assert_eq!(doc["status"], "success", "{doc}");
    let run_id = doc["id"].as_str().expect("run id").to_owned();

    let out = s.cli(&["runs", "list", "--json"], Some(&s.pki.ca));
    assert!(out.status.success(), "{}", stderr(&out));
    let runs: Value = serde_json::from_slice(&out.stdout).expect("runs json");
    assert!(
        runs.as_array()
            .expect("a list")
            .iter()
            .any(|r| r["id"] == run_id.as_str()),
        "{runs}"
    );
    let out = s.cli(&["runs", "logs", &run_id, "greet"], Some(&s.pki.ca));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello over tls"),
        "{}",
        stderr(&out)
    );

    // The first signal drains: the agent leaves, the server answers what it holds and exits 0.
    drop(s.agents.pop());
    let pid = Pid::from_raw(i32::try_from(s.server.0.id()).expect("pid"));
    kill(pid, Signal::SIGTERM).expect("signal the server");
    let status = wait_for("the server to stop", || {
        s.server.0.try_wait().ok().flatten()
    });
    assert!(status.success(), "server exit status {status:?}");
}

#[test]
fn clients_without_the_ca_are_told_to_pass_ca_cert() {
    let s = TlsServer::start();

    let out = s.cli(&["runs", "list"], None);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not trusted") && err.contains("--ca-cert"),
        "{err}"
    );

    // A CA that signed something else is no better.
    let out = s.cli(&["runs", "list"], Some(&s.pki.other_ca));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca-cert"), "{}", stderr(&out));

    let out = wait_exit(s.agent("untrusting", &[]));
    assert!(!out.status.success(), "the agent should stop");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not trusted") && err.contains("--ca-cert"),
        "{err}"
    );

    // A CA file that is not one is refused up front, by name.
    let junk = write_file(s.dir.path(), "junk.pem", "not a certificate\n");
    let out = s.cli(&["runs", "list"], Some(&junk));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("junk.pem"), "{}", stderr(&out));
    let out = wait_exit(s.agent("junk", &["--ca-cert", &junk.to_string_lossy()]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.pem"));
}

#[test]
fn plain_http_and_https_mixed_up_are_named() {
    // http:// to the HTTPS server: it answers in plain HTTP to say so.
    let s = TlsServer::start();
    let plain_url = s.url.replacen("https://", "http://", 1);
    let out = baton(s.dir.path())
        .args(["runs", "list", "--server", &plain_url, "--token", &s.admin])
        .output()
        .expect("run baton cli");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("speaks HTTPS"), "{}", stderr(&out));

    // https:// to a plain-HTTP server.
    let c = Cluster::start("5s");
    let tls_url = c.url.replacen("http://", "https://", 1);
    let out = baton(c.dir.path())
        .args(["runs", "list", "--server", &tls_url, "--token", &c.admin])
        .output()
        .expect("run baton cli");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("plain HTTP"), "{}", stderr(&out));
    let out = wait_exit(
        baton(c.dir.path())
            .args(["agent", "--server", &tls_url, "--name", "confused"])
            .arg("--token-file")
            .arg(c.data_dir().join("agent.token"))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn agent"),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plain HTTP"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_tls_flags_and_files_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = make_pki(dir.path());
    let server = |flags: &[&str], env: &[(&str, &Path)]| {
        let mut cmd = baton(dir.path());
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(flags);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run baton server")
    };
    let cert = pki.cert.to_string_lossy().into_owned();
    let key = pki.key.to_string_lossy().into_owned();

    let out = server(&["--tls-cert", &cert], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));
    let out = server(&[], &[("BATON_TLS_KEY", &pki.key)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tls-cert"), "{}", stderr(&out));

    let missing = dir.path().join("missing.pem");
    let out = server(
        &["--tls-cert", &missing.to_string_lossy(), "--tls-key", &key],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.pem"), "{}", stderr(&out));

    // A key that is not the certificate's.
    let other_key = write_file(
        dir.path(),
        "other.key",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let out = server(
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &other_key.to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("other.key"), "{}", stderr(&out));

    // The key where the certificate should be.
    let out = server(&["--tls-cert", &key, "--tls-key", &key], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("server.key") && stderr(&out).contains("no PEM certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn up_serves_https_and_its_own_agent_trusts_its_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A certificate for `localhost` only, while the local agent dials 127.0.0.1: a name
    // check would refuse it, so it passes only because the agent trusts exactly this one.
    let (ca_params, ca_key, ca_pem) = make_ca("Baton up CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    let cert_path = write_file(dir.path(), "up.pem", &cert.pem());
    let key_path = write_file(dir.path(), "up.key", &key.serialize_pem());
    let ca_path = write_file(dir.path(), "up-ca.pem", &ca_pem);
    let data = dir.path().join("data");
    let (_up, url) = spawn_listening(
        dir.path(),
        &[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.to_string_lossy(),
            "--tls-cert",
            &cert_path.to_string_lossy(),
            "--tls-key",
            &key_path.to_string_lossy(),
        ],
    );
    let port = url
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("not an https url on 127.0.0.1: {url}"));
    let by_name = format!("https://localhost:{port}");
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .expect("admin.token")
        .trim()
        .to_owned();
    let cli = |server: &str, args: &[&str]| {
        baton(dir.path())
            .args(args)
            .env("BATON_SERVER", server)
            .env("BATON_TOKEN", &admin)
            .env("BATON_CA_CERT", &ca_path)
            .output()
            .expect("run baton cli")
    };
    // The CLI does check names: by address the certificate does not fit.
    let out = cli(&url, &["agents", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));

    let wf = write_file(
        dir.path(),
        "up.yaml",
        "name: up-tls\nnodes:\n  a: {run: \"echo from up\"}\n",
    );
    let out = cli(&by_name, &["run", &wf.to_string_lossy(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("run document");
    assert_eq!(doc["status"], "success", "{doc}");
}
