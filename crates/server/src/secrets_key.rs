//! The key that seals secrets: where it comes from, and sealing and opening with it.
//!
//! Secrets are sealed with AES-256-GCM under a 256-bit key the database never sees: the
//! `secrets.key` file in the data dir (made on first start, mode 0600) or `BATON_SECRETS_KEY`.
//! Each value gets a fresh random nonce, and the secret's name is bound in as associated
//! data, so a sealed value copied onto another name does not open. The database keeps a
//! check value sealed under the key, so a server started with another key (a replica given
//! the wrong file) refuses to start instead of handing out garbage.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::ServerError;

/// File name of the secrets key in the data dir.
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// File name of the previous secrets key during a rotation.
pub const OLD_SECRETS_KEY_FILE: &str = "secrets.key.old";

/// Name under which the database keeps the key check value.
pub(crate) const KEY_CHECK_SETTING: &str = "secrets_key_check";
const KEY_CHECK_NAME: &str = "baton:key-check";
const KEY_CHECK_VALUE: &[u8] = b"baton secrets key";

/// The secrets key. `Debug` never shows it.
pub(crate) struct SecretsKey {
    key: LessSafeKey,
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

/// A sealed value: the nonce and the ciphertext with its tag.
pub(crate) type Sealed = (Vec<u8>, Vec<u8>);

impl SecretsKey {
    /// The key from `hex` (`BATON_SECRETS_KEY`) when given, else from `secrets.key` in
    /// `data_dir`, made there (mode 0600) when absent.
    pub(crate) fn load_or_create(
        data_dir: &Path,
        hex_key: Option<&str>,
    ) -> Result<SecretsKey, ServerError> {
        if let Some(text) = hex_key {
            return SecretsKey::from_hex(text).ok_or_else(|| {
                ServerError::Config(
                    "BATON_SECRETS_KEY must be 64 hexadecimal digits (256 bits)".into(),
                )
            });
        }
        let path = data_dir.join(SECRETS_KEY_FILE);
        let file_err = |source| ServerError::TokenFile {
            path: path.clone(),
            source,
        };
        let mut bytes = [0u8; 32];
        // The thread RNG is a CSPRNG seeded from the OS.
        rand::fill(&mut bytes);
        let fresh = hex::encode(bytes);
        // `create_new`: a key another process made in between is read, never replaced.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(format!("{fresh}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(file_err)?;
                SecretsKey::from_hex(&fresh).ok_or_else(|| ServerError::Config("key".into()))
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(&path).map_err(file_err)?;
                SecretsKey::from_hex(text.trim()).ok_or_else(|| {
                    ServerError::Config(format!(
                        "{} does not hold a secrets key (64 hexadecimal digits)",
                        path.display()
                    ))
                })
            }
            Err(err) => Err(file_err(err)),
        }
    }

    /// The previous key during a rotation: `hex_key` (`BATON_SECRETS_OLD_KEY`) when given,
    /// else `secrets.key.old` in `data_dir` when it exists; never made.
    pub(crate) fn load_old(
        data_dir: &Path,
        hex_key: Option<&str>,
    ) -> Result<Option<SecretsKey>, ServerError> {
        let bad =
            |what: String| ServerError::Config(format!("{what} must be 64 hexadecimal digits"));
        if let Some(text) = hex_key {
            return SecretsKey::from_hex(text)
                .map(Some)
                .ok_or_else(|| bad("BATON_SECRETS_OLD_KEY".into()));
        }
        let path = data_dir.join(OLD_SECRETS_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => SecretsKey::from_hex(&text)
                .map(Some)
                .ok_or_else(|| bad(path.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ServerError::TokenFile { path, source }),
        }
    }

    /// A key from 64 hex digits.
    pub(crate) fn from_hex(text: &str) -> Option<SecretsKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        if bytes.len() != 32 {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        Some(SecretsKey {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals `value` for the secret `name`.
    pub(crate) fn seal(&self, name: &str, value: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut data = value.to_vec();
        // Sealing only fails for inputs over AES-GCM's 64 GiB limit, far above the 64 KiB
        // a secret may hold.
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .expect("a secret is far below AES-GCM's size limit");
        (nonce.to_vec(), data)
    }

    /// Opens a value sealed for `name`; `None` when it was sealed under another key or
    /// name, or was altered.
    pub(crate) fn open(&self, name: &str, nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
            .ok()?;
        Some(plain.to_vec())
    }

    /// A check value to keep in the database: nonce and sealed text, joined.
    pub(crate) fn check_value(&self) -> Vec<u8> {
        let (mut nonce, sealed) = self.seal(KEY_CHECK_NAME, KEY_CHECK_VALUE);
        nonce.extend(sealed);
        nonce
    }

    /// Whether a stored check value was made with this key.
    pub(crate) fn matches_check(&self, check: &[u8]) -> bool {
        check.len() > NONCE_LEN
            && self
                .open(KEY_CHECK_NAME, &check[..NONCE_LEN], &check[NONCE_LEN..])
                .is_some_and(|v| v == KEY_CHECK_VALUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_key_file_is_made_private_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretsKey::load_or_create(dir.path(), None).unwrap();
        let path = dir.path().join(SECRETS_KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = SecretsKey::load_or_create(dir.path(), None).unwrap();
        let (nonce, sealed) = first.seal("A", b"value");
        assert_eq!(again.open("A", &nonce, &sealed).unwrap(), b"value");
        assert!(again.matches_check(&first.check_value()));
    }

    #[test]
    fn sealed_values_open_only_under_their_key_and_name() {
        let key = SecretsKey::from_hex(&"ab".repeat(32)).unwrap();
        let other = SecretsKey::from_hex(&"cd".repeat(32)).unwrap();
        let (nonce, sealed) = key.seal("API_KEY", b"hunter2-value");
        assert!(
            !sealed.windows(6).any(|w| w == b"hunter"),
            "not stored in clear"
        );
        assert_eq!(
            key.open("API_KEY", &nonce, &sealed).unwrap(),
            b"hunter2-value"
        );
        assert_eq!(
            key.open("OTHER", &nonce, &sealed),
            None,
            "bound to its name"
        );
        assert_eq!(other.open("API_KEY", &nonce, &sealed), None);
        let mut altered = sealed.clone();
        altered[0] ^= 1;
        assert_eq!(key.open("API_KEY", &nonce, &altered), None);
        assert!(!other.matches_check(&key.check_value()));
        assert!(!key.matches_check(b"short"));
    }

    #[test]
    fn keys_from_the_environment_must_be_256_bits_of_hex() {
        assert!(SecretsKey::from_hex(&"0f".repeat(32)).is_some());
        assert!(SecretsKey::from_hex("abcd").is_none());
        assert!(SecretsKey::from_hex(&"zz".repeat(32)).is_none());
        let dir = tempfile::tempdir().unwrap();
        let err = SecretsKey::load_or_create(dir.path(), Some("nope")).unwrap_err();
        assert!(err.to_string().contains("BATON_SECRETS_KEY"), "{err}");
        assert!(!dir.path().join(SECRETS_KEY_FILE).exists());
    }
}
