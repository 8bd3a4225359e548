//! What a server is started with, and the checks it must pass first.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use baton_store::Synchronous;

use crate::ServerError;

/// Address a server listens on unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
/// Port of [`DEFAULT_LISTEN`].
pub const DEFAULT_PORT: u16 = 7070;
/// Lease of a claimed attempt unless told otherwise, in milliseconds.
pub const DEFAULT_LEASE_MS: u64 = 15_000;
/// How long a node may wait in `ready` for an agent unless its workflow says otherwise, in
/// milliseconds (one hour).
pub const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 3_600_000;
/// Largest artifact file accepted unless told otherwise, in bytes (100 MiB).
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 100 * 1024 * 1024;

/// Shortest lease accepted: a heartbeat every third of it must still be practical.
const MIN_LEASE_MS: u64 = 100;

/// How a control plane is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Folder for the token files, the default database and artifacts.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH`, or `postgres://USER:PASSWORD@HOST:PORT/DB` for
    /// several replicas on one database; `None` means `baton.db` in the data dir.
    pub db: Option<String>,
    /// Lease term of a claimed attempt, in milliseconds.
    pub lease_ms: u64,
    /// SQLite durability: `Normal` may lose the last transactions on power loss, `Full` not.
    pub synchronous: Synchronous,
    /// Largest artifact file accepted, in bytes.
    pub max_artifact_bytes: u64,
    /// How long a node whose workflow sets no `queue_timeout` may wait in `ready` before it
    /// ends `error` (`no_agent`), in milliseconds; 0 for no limit.
    pub queue_timeout_ms: u64,
    /// The key secrets are sealed with, as 64 hex digits (`BATON_SECRETS_KEY`); `None`
    /// reads `secrets.key` in the data dir, made there on first start.
    pub secrets_key: Option<String>,
    /// The previous secrets key during a rotation (`BATON_SECRETS_OLD_KEY`); `None` reads
    /// `secrets.key.old` in the data dir when it exists.
    pub secrets_old_key: Option<String>,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// The PEM files a server serves HTTPS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// The private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ServerConfig {
    /// Defaults: listen on 127.0.0.1:7070 over plain HTTP, SQLite in `data_dir`, 15 s
    /// leases, 100 MiB artifacts, a one-hour queue timeout.
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            data_dir,
            db: None,
            lease_ms: DEFAULT_LEASE_MS,
            synchronous: Synchronous::Normal,
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            queue_timeout_ms: DEFAULT_QUEUE_TIMEOUT_MS,
            secrets_key: None,
            secrets_old_key: None,
            tls: None,
        }
    }

    /// Checks the values no store or socket would catch.
    pub(crate) fn validate(&self) -> Result<(), ServerError> {
        if self.lease_ms < MIN_LEASE_MS {
            return Err(ServerError::Config(format!(
                "lease must be at least {MIN_LEASE_MS} ms, got {} ms",
                self.lease_ms
            )));
        }
        if self.max_artifact_bytes == 0 {
            return Err(ServerError::Config(
                "the artifact size limit must be above 0".to_owned(),
            ));
        }
        self.database().map(|_| ())
    }

    /// The database the URL names.
    pub(crate) fn database(&self) -> Result<Database, ServerError> {
        let Some(url) = &self.db else {
            return Ok(Database::Sqlite(self.data_dir.join("baton.db")));
        };
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ServerError::Config(format!(
                    "database url {url:?} names no file"
                )));
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.clone()));
        }
        Err(ServerError::Config(format!(
            "unsupported database url {:?}: expected sqlite://PATH or postgres://USER@HOST/DB",
            redact_url(url)
        )))
    }
}

/// Where a server keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Database {
    /// A SQLite file: one server.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL: any number of replicas. The URL may hold a password;
    /// show it only through [`redact_url`].
    Postgres(String),
}

impl Database {
    /// The database as it may appear in logs: a SQLite path, or the URL without its password.
    pub(crate) fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite://{}", path.display()),
            Database::Postgres(url) => redact_url(url),
        }
    }
}

/// `url` with any password (in its user info or a `password=` parameter) replaced by `***`.
///
/// Over-redacting is harmless, leaking is not: the user info is taken to end at the last `@`
/// before any query string, so a password holding an unescaped `@` or `/` is still hidden.
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_db(db: &str) -> ServerConfig {
        ServerConfig {
            db: Some(db.to_owned()),
            ..ServerConfig::new(PathBuf::from("data"))
        }
    }

    fn sqlite_path(config: &ServerConfig) -> PathBuf {
        match config.database().unwrap() {
            Database::Sqlite(path) => path,
            other => panic!("not sqlite: {other:?}"),
        }
    }

    #[test]
    fn database_url_names_the_sqlite_file() {
        let default = ServerConfig::new(PathBuf::from("data"));
        assert_eq!(sqlite_path(&default), PathBuf::from("data/baton.db"));
        assert_eq!(
            sqlite_path(&with_db("sqlite://x/y.db")),
            PathBuf::from("x/y.db")
        );
        assert_eq!(
            sqlite_path(&with_db("sqlite:///abs/y.db")),
            PathBuf::from("/abs/y.db")
        );
    }

    #[test]
    fn postgres_urls_name_a_postgres_database() {
        for url in [
            "postgres://u:p@h:5432/db",
            "postgresql://u@h/db?sslmode=require",
        ] {
            assert_eq!(
                with_db(url).database().unwrap(),
                Database::Postgres(url.to_owned())
            );
            assert!(with_db(url).validate().is_ok());
        }
    }

    #[test]
    fn unknown_urls_are_refused_clearly_without_their_password() {
        let err = with_db("mysql://root:hunter2@h/db").validate().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unsupported database url"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(with_db("sqlite://").validate().is_err());
    }

    #[test]
    fn passwords_never_reach_a_log() {
        let cases = [
            (
                "postgres://baton:s3cret@db:5432/baton",
                "postgres://baton:***@db:5432/baton",
            ),
            ("postgres://baton@db/baton", "postgres://baton@db/baton"),
            ("postgres://db/baton", "postgres://db/baton"),
            ("postgres://u:p@ss/w@rd@db/x", "postgres://u:***@db/x"),
            (
                "postgres://db/x?user=u&password=s3cret&sslmode=require",
                "postgres://db/x?user=u&password=***&sslmode=require",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert_eq!(
            Database::Postgres("postgres://u:pw@h/d".to_owned()).describe(),
            "postgres://u:***@h/d"
        );
    }

    #[test]
    fn tiny_leases_are_refused() {
        let config = ServerConfig {
            lease_ms: 10,
            ..ServerConfig::new(PathBuf::from("data"))
        };
        assert!(config.validate().is_err());
        assert!(ServerConfig::new(PathBuf::from("data")).validate().is_ok());
    }
}
