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
    /// Database URL, `sqlite://PATH`; `None` means `baton.db` in the data dir.
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
}

impl ServerConfig {
    /// Defaults: listen on 127.0.0.1:7070, SQLite in `data_dir`, 15 s leases, 100 MiB
    /// artifacts, a one-hour queue timeout.
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            data_dir,
            db: None,
            lease_ms: DEFAULT_LEASE_MS,
            synchronous: Synchronous::Normal,
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            queue_timeout_ms: DEFAULT_QUEUE_TIMEOUT_MS,
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
        self.sqlite_path().map(|_| ())
    }

    /// The SQLite file the database URL names.
    pub(crate) fn sqlite_path(&self) -> Result<PathBuf, ServerError> {
        let Some(url) = &self.db else {
            return Ok(self.data_dir.join("baton.db"));
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
            return Ok(PathBuf::from(path));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(ServerError::Config(
                "postgres is not supported yet".to_owned(),
            ));
        }
        Err(ServerError::Config(format!(
            "unsupported database url {url:?}: expected sqlite://PATH"
        )))
    }
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

    #[test]
    fn database_url_names_the_sqlite_file() {
        let default = ServerConfig::new(PathBuf::from("data"));
        assert_eq!(
            default.sqlite_path().unwrap(),
            PathBuf::from("data/baton.db")
        );
        assert_eq!(
            with_db("sqlite://x/y.db").sqlite_path().unwrap(),
            PathBuf::from("x/y.db")
        );
        assert_eq!(
            with_db("sqlite:///abs/y.db").sqlite_path().unwrap(),
            PathBuf::from("/abs/y.db")
        );
    }

    #[test]
    fn postgres_and_unknown_urls_are_refused_clearly() {
        let err = with_db("postgres://u@h/db").validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: postgres is not supported yet"
        );
        let err = with_db("mysql://h/db").validate().unwrap_err();
        assert!(
            err.to_string().contains("unsupported database url"),
            "{err}"
        );
        assert!(with_db("sqlite://").validate().is_err());
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
