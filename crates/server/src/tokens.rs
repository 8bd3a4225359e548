//! Bearer tokens: the server's two token files, new agent tokens, and hashing.
//!
//! A token is 32 random bytes shown as `baton_<kind>_<64 hex>`. Only its SHA-256 is
//! stored: tokens carry 256 bits of entropy, so a fast hash is as good as a slow KDF here
//! and costs nothing per request.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::ServerError;

/// File name of the admin token in the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// File name of the enrollment token in the data dir.
pub const ENROLL_TOKEN_FILE: &str = "agent.token";

const ADMIN_PREFIX: &str = "baton_admin_";
const ENROLL_PREFIX: &str = "baton_enroll_";
const AGENT_PREFIX: &str = "baton_agent_";
const USER_PREFIX: &str = "baton_user_";
/// Characters of a named token kept to recognise it (`baton_user_` and 6 hex digits).
const SHOWN_PREFIX: usize = USER_PREFIX.len() + 6;

/// The admin and enrollment tokens of a server and where they are kept.
///
/// `Debug` shows the paths only, so the tokens never reach a log by accident.
#[derive(Clone)]
pub struct ServerTokens {
    admin: String,
    enroll: String,
    admin_path: PathBuf,
    enroll_path: PathBuf,
}

impl ServerTokens {
    /// Reads `admin.token` and `agent.token` from `data_dir`, making each one that is absent
    /// (mode 0600, never overwriting an existing file). Creates `data_dir` (mode 0700).
    pub fn load_or_create(data_dir: &Path) -> Result<ServerTokens, ServerError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|source| ServerError::DataDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
        let admin_path = data_dir.join(ADMIN_TOKEN_FILE);
        let enroll_path = data_dir.join(ENROLL_TOKEN_FILE);
        Ok(ServerTokens {
            admin: load_or_create(&admin_path, ADMIN_PREFIX, "admin")?,
            enroll: load_or_create(&enroll_path, ENROLL_PREFIX, "enroll")?,
            admin_path,
            enroll_path,
        })
    }

    /// The admin token: full API access.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// The enrollment token: agents register with it.
    pub fn enroll(&self) -> &str {
        &self.enroll
    }

    /// Where the admin token is kept.
    pub fn admin_path(&self) -> &Path {
        &self.admin_path
    }

    /// Where the enrollment token is kept.
    pub fn enroll_path(&self) -> &Path {
        &self.enroll_path
    }
}

impl fmt::Debug for ServerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTokens")
            .field("admin_path", &self.admin_path)
            .field("enroll_path", &self.enroll_path)
            .finish_non_exhaustive()
    }
}

fn load_or_create(path: &Path, prefix: &str, kind: &'static str) -> Result<String, ServerError> {
    let file_err = |source| ServerError::TokenFile {
        path: path.to_path_buf(),
        source,
    };
    let token = new_token(prefix);
    // `create_new` makes creation atomic: a file someone else made in between is read,
    // never replaced.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(file_err)?;
            Ok(token)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            // A token file someone made readable (copied in, an old umask) is made private.
            private_file(path).map_err(file_err)?;
            let text = fs::read_to_string(path).map_err(file_err)?;
            let token = text.trim();
            if is_token(token, prefix) {
                Ok(token.to_owned())
            } else {
                Err(ServerError::BadTokenFile {
                    path: path.to_path_buf(),
                    kind,
                })
            }
        }
        Err(err) => Err(file_err(err)),
    }
}

/// Takes group and other access off the file at `path`.
pub(crate) fn private_file(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Makes the dir at `path` (0700) when it is missing, and takes group and other access off
/// it when it exists; refuses anything but a real directory.
pub(crate) fn private_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))?;
            }
            Ok(())
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path),
        Err(e) => Err(e),
    }
}

/// A fresh agent token.
pub(crate) fn new_agent_token() -> String {
    new_token(AGENT_PREFIX)
}

/// A fresh named token and the prefix shown of it in lists.
pub(crate) fn new_user_token() -> (String, String) {
    let token = new_token(USER_PREFIX);
    let shown = token[..SHOWN_PREFIX].to_owned();
    (token, shown)
}

fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    // The thread RNG is a CSPRNG seeded from the OS.
    rand::fill(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

fn is_token(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// SHA-256 of a token, lowercase hex: the only form a token is stored in.
pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two token hashes in constant time.
pub(crate) fn hashes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_made_once_with_private_modes_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = ServerTokens::load_or_create(&data).unwrap();
        assert!(is_token(first.admin(), ADMIN_PREFIX), "{}", first.admin());
        assert!(is_token(first.enroll(), ENROLL_PREFIX));
        assert_ne!(first.admin(), first.enroll());
        for path in [first.admin_path(), first.enroll_path()] {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let dir_mode = fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);

        let again = ServerTokens::load_or_create(&data).unwrap();
        assert_eq!(again.admin(), first.admin());
        assert_eq!(again.enroll(), first.enroll());
    }

    #[test]
    fn token_files_left_readable_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerTokens::load_or_create(dir.path()).unwrap();
        for path in [first.admin_path(), first.enroll_path()] {
            fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let again = ServerTokens::load_or_create(dir.path()).unwrap();
        assert_eq!(again.admin(), first.admin());
        for path in [again.admin_path(), again.enroll_path()] {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }

    #[test]
    fn private_dirs_are_made_or_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("artifacts");
        private_dir(&made).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&made), 0o700);
        fs::set_permissions(&made, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&made).unwrap();
        assert_eq!(mode(&made), 0o700);
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(private_dir(&file).is_err());
    }

    #[test]
    fn a_token_file_with_garbage_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ADMIN_TOKEN_FILE), "hunter2\n").unwrap();
        let err = ServerTokens::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            ServerError::BadTokenFile { kind: "admin", .. }
        ));
        assert_eq!(
            fs::read_to_string(dir.path().join(ADMIN_TOKEN_FILE)).unwrap(),
            "hunter2\n"
        );
    }

    #[test]
    fn debug_output_hides_the_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = ServerTokens::load_or_create(dir.path()).unwrap();
        let shown = format!("{tokens:?}");
        assert!(!shown.contains(tokens.admin()));
        assert!(!shown.contains(tokens.enroll()));
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hashes_equal(&hash_token("x"), &hash_token("x")));
        assert!(!hashes_equal(&hash_token("x"), &hash_token("y")));
        assert!(is_token(&new_agent_token(), AGENT_PREFIX));
    }
}
