//! Finding the server and the token: flags, then environment, then local defaults.

use std::path::{Path, PathBuf};

use reqwest::Url;

use crate::args::ConnectionArgs;
use crate::exit::{CliError, TokenSource};

/// Server a client talks to when neither `--server` nor `BATON_SERVER` says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Name of the admin token file in a server's data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Name of the enrollment token file in a server's data dir.
pub const AGENT_TOKEN_FILE: &str = "agent.token";

/// The data dir of a server started without `--data-dir`, where clients also look for
/// `admin.token`: `BATON_DATA_DIR`, else `$XDG_DATA_HOME/baton`, else
/// `$HOME/.local/share/baton`. `None` when none of them is set.
pub fn default_data_dir() -> Option<PathBuf> {
    data_dir_from(|name| std::env::var_os(name))
}

/// [`default_data_dir`] over any environment, for tests.
fn data_dir_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("BATON_DATA_DIR")
        .or_else(|| set("XDG_DATA_HOME").map(|d| d.join("baton")))
        .or_else(|| set("HOME").map(|h| h.join(".local/share/baton")))
}

/// Where `--token` came from after clap merged the flag and its environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Given as `--token`.
    Flag,
    /// Taken from `BATON_TOKEN`.
    Env,
}

/// A resolved server address and token.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Base URL, without a trailing slash in its path.
    pub server: Url,
    /// Bearer token, if any was found.
    pub token: Option<String>,
    /// Where the token came from.
    pub source: TokenSource,
    /// A PEM file of CA certificates trusted besides the system's for `https://`.
    pub ca_cert: Option<PathBuf>,
}

impl Connection {
    /// Resolves `--server`/`--token`/`--ca-cert` (already merged with `BATON_SERVER`,
    /// `BATON_TOKEN` and `BATON_CA_CERT` by clap; `origin` says which one the token came
    /// from), else the defaults: the local server and the `admin.token` file in the default
    /// data dir, if readable.
    pub fn resolve(args: &ConnectionArgs, origin: TokenOrigin) -> Result<Connection, CliError> {
        let named = args.server.as_deref().filter(|s| !s.trim().is_empty());
        let server = parse_server_url(named.unwrap_or(DEFAULT_SERVER))?;
        if let Some(token) = args
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let source = match origin {
                TokenOrigin::Flag => TokenSource::Flag,
                TokenOrigin::Env => TokenSource::Env,
            };
            return Ok(Connection {
                server,
                token: Some(token.to_owned()),
                source,
                ca_cert: args.ca_cert.clone(),
            });
        }
        let file = default_data_dir().map(|d| d.join(ADMIN_TOKEN_FILE));
        match file.as_deref().and_then(read_token_file) {
            Some(token) => Ok(Connection {
                server,
                token: Some(token),
                source: TokenSource::File(file.unwrap_or_default()),
                ca_cert: args.ca_cert.clone(),
            }),
            None => Ok(Connection {
                server,
                token: None,
                source: TokenSource::None,
                ca_cert: args.ca_cert.clone(),
            }),
        }
    }

    /// A connection to a server this process started, with the token it made.
    pub fn local(server: &str, token: String, token_file: PathBuf) -> Result<Connection, CliError> {
        Ok(Connection {
            server: parse_server_url(server)?,
            token: Some(token),
            source: TokenSource::File(token_file),
            ca_cert: None,
        })
    }
}

/// Reads a token file, trimmed; `None` when it is missing, unreadable or empty.
pub fn read_token_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Parses a server URL, accepting `host:port` without a scheme as `http://host:port`.
pub fn parse_server_url(text: &str) -> Result<Url, CliError> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let bad = |why: String| CliError::Usage(format!("bad server URL {text:?}: {why}"));
    let url = Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("use http:// or https://".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed".into()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn data_dir_prefers_baton_then_xdg_then_home() {
        let all = [
            ("BATON_DATA_DIR", "/b"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(data_dir_from(env(&all)), Some(PathBuf::from("/b")));
        assert_eq!(
            data_dir_from(env(&all[1..])),
            Some(PathBuf::from("/x/baton"))
        );
        assert_eq!(
            data_dir_from(env(&all[2..])),
            Some(PathBuf::from("/h/.local/share/baton"))
        );
        assert_eq!(
            data_dir_from(env(&[("BATON_DATA_DIR", ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/share/baton"))
        );
        assert_eq!(data_dir_from(env(&[])), None);
    }

    #[test]
    fn server_urls_get_a_scheme_and_bad_ones_are_usage_errors() {
        assert_eq!(
            parse_server_url("127.0.0.1:7070")
                .map(|u| u.to_string())
                .ok(),
            Some("http://127.0.0.1:7070/".to_owned())
        );
        assert_eq!(
            parse_server_url("https://baton.example/prefix")
                .map(|u| u.to_string())
                .ok(),
            Some("https://baton.example/prefix".to_owned())
        );
        for bad in ["ftp://h", "http://", "http://h?x=1", "http://[::1"] {
            let err = parse_server_url(bad).unwrap_err();
            assert_eq!(err.exit().code(), 2, "{bad}: {err}");
        }
    }

    #[test]
    fn flag_token_wins_and_names_its_origin() {
        let args = ConnectionArgs {
            server: Some("http://h:1".into()),
            token: Some(" t0k \n".into()),
            ca_cert: None,
        };
        let conn = Connection::resolve(&args, TokenOrigin::Env).unwrap();
        assert_eq!(conn.token.as_deref(), Some("t0k"));
        assert_eq!(conn.source, TokenSource::Env);
        let conn = Connection::resolve(&args, TokenOrigin::Flag).unwrap();
        assert_eq!(conn.source, TokenSource::Flag);
    }

    #[test]
    fn token_files_are_trimmed_and_empty_ones_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        std::fs::write(&path, "baton_admin_abc\n").unwrap();
        assert_eq!(read_token_file(&path).as_deref(), Some("baton_admin_abc"));
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(read_token_file(&path), None);
        assert_eq!(read_token_file(&dir.path().join("missing")), None);
    }
}
