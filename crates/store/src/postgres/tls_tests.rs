//! `PgStore` over TLS against a real PostgreSQL cluster of the test's own, started with
//! `ssl = on` and a certificate made here.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::{PgOptions, PgStore};
use crate::Store;

/// How long the cluster and the store may take; generous for slow CI machines.
const PATIENCE: Duration = Duration::from_secs(60);

/// The folder with `initdb`, `pg_ctl` and `postgres`: `PATH` or a Debian versioned folder.
fn pg_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates.into_iter().find(|dir| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    })
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).is_some_and(|out| out.trim() == "0")
}

fn run(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command run as the cluster's owner: `postgres` when we are root (the server refuses
/// to run as root), else ourselves.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn check(what: &str, out: std::io::Result<Output>) {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running cluster in a temp dir; stopped at once (`-m immediate`) on drop.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The test's certificates: a CA, the server's certificate and key it signed (for
/// 127.0.0.1 and localhost), and another CA that signed nothing of the server's.
struct Certs {
    ca: String,
    cert: String,
    key: String,
    other_ca: String,
}

fn make_ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn make_certs() -> Certs {
    let (params, key, ca) = make_ca("Baton test CA");
    let issuer = Issuer::new(params, key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Certs {
        ca,
        cert: cert.pem(),
        key: key.serialize_pem(),
        other_ca: make_ca("Another CA").2,
    }
}

/// Starts a cluster with TLS on, or `None` (said on stderr) without PostgreSQL binaries;
/// under CI their absence fails the test instead.
fn start_cluster(certs: &Certs) -> Option<Cluster> {
    let Some(bin) = pg_bin() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) are not in PATH or \
             /usr/lib/postgresql/*/bin; install them (Debian: apt-get install -y postgresql)"
        );
        eprintln!(
            "SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl, postgres) in PATH or \
             /usr/lib/postgresql/*/bin; the TLS store test needs them"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = is_root();
    let ids = if root {
        let uid: u32 = run(Command::new("id").args(["-u", "postgres"]))
            .expect("a postgres user (useradd --system --user-group postgres)")
            .trim()
            .parse()
            .unwrap();
        let gid: u32 = run(Command::new("id").args(["-g", "postgres"]))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        Some((uid, gid))
    } else {
        None
    };
    let data = dir.path().join("data");
    check(
        "initdb",
        as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output(),
    );
    // The server reads its key only when the key's owner runs it and nobody else may.
    for (name, text, mode) in [
        ("server.crt", &certs.cert, 0o644),
        ("server.key", &certs.key, 0o600),
    ] {
        let path = data.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
    }
    // A free port can be taken by someone else before the server binds it: try a few.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            dir.path().display()
        );
        let conf_path = data.join("postgresql.auto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&conf_path, Some(uid), Some(gid)).unwrap();
        }
        let started = as_owner(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        if started.status.success() {
            return Some(Cluster {
                bin,
                data,
                port,
                _dir: dir,
            });
        }
    }
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    panic!("the PostgreSQL server did not start:\n{log}");
}

/// A plain connection (TLS is not required of it) for looking at the server's views.
async fn observer(port: u16) -> tokio_postgres::Client {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("observer connection");
    tokio::spawn(conn);
    client
}

/// `(encrypted, plain)` counts of the connections named `application_name`.
async fn ssl_counts(db: &tokio_postgres::Client, application_name: &str) -> (i64, i64) {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn wait_for_counts(
    db: &tokio_postgres::Client,
    name: &str,
    want: impl Fn((i64, i64)) -> bool,
) -> (i64, i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = ssl_counts(db, name).await;
        if want(counts) {
            return counts;
        }
        assert!(Instant::now() < deadline, "connections {name}: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn options(schema: &str) -> PgOptions {
    PgOptions {
        schema: Some(schema.to_owned()),
        pool_size: 2,
        connect_timeout: PATIENCE,
    }
}

#[tokio::test]
async fn verify_full_encrypts_the_pool_and_the_listener_and_refuses_a_wrong_ca() {
    let certs = make_certs();
    let Some(cluster) = start_cluster(&certs) else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let ca = write(files.path(), "ca.pem", &certs.ca);
    let other_ca = write(files.path(), "other-ca.pem", &certs.other_ca);
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let db = observer(cluster.port).await;

    let url = format!(
        "{base}?application_name=baton-tls&sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    let store = PgStore::connect(&url, options("tls_full"))
        .await
        .expect("verify-full connects");
    assert!(store.list_workflows().await.unwrap().is_empty());
    let _events = store.events().expect("a listener");
    let (encrypted, plain) = wait_for_counts(&db, "baton-tls", |(e, _)| e >= 1).await;
    assert_eq!(
        plain, 0,
        "every pooled connection is encrypted ({encrypted} are)"
    );
    let (_, plain) = wait_for_counts(&db, "baton-tls-listen", |(e, _)| e == 1).await;
    assert_eq!(plain, 0, "the LISTEN connection is encrypted");

    // A CA that did not sign the server's certificate.
    let url = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    );
    let err = PgStore::connect(&url, options("tls_wrong"))
        .await
        .expect_err("verify-full with the wrong CA fails");
    let text = crate_error_chain(&err);
    assert!(text.contains("certificate"), "{text}");

    // `require` encrypts without checking; `disable` does not encrypt.
    let url = format!("{base}?application_name=baton-req&sslmode=require");
    let store = PgStore::connect(&url, options("tls_req"))
        .await
        .expect("require connects");
    store.list_workflows().await.unwrap();
    let (_, plain) = wait_for_counts(&db, "baton-req", |(e, _)| e >= 1).await;
    assert_eq!(plain, 0);
    let url = format!("{base}?application_name=baton-plain&sslmode=disable");
    let store = PgStore::connect(&url, options("tls_plain"))
        .await
        .expect("disable connects");
    store.list_workflows().await.unwrap();
    let (encrypted, _) = wait_for_counts(&db, "baton-plain", |(_, p)| p >= 1).await;
    assert_eq!(encrypted, 0);
}

/// The error and its causes, as one line.
fn crate_error_chain(err: &crate::StoreError) -> String {
    let mut text = err.to_string();
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}
