//! The database file and its companions are private (0600) whatever the umask and however
//! the data dir came to exist: they hold every run's logs, outputs and token hashes.
//!
//! SQLite creates a new database 0644 less the umask, and gives its `-wal`, `-shm` and
//! `-journal` files the mode of the database file. So the database file is made (or
//! tightened) 0600 before SQLite opens it, and companions an older server left behind are
//! tightened too; the ones SQLite makes afterwards follow the database file.

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Suffixes SQLite adds to the database path for its other files.
const COMPANIONS: &[&str] = &["-wal", "-shm", "-journal"];

/// Makes the database file at `path` (0600) when it is missing, and takes group and other
/// access off it and off any companion file that exists.
pub(crate) fn make_private(path: &Path) -> io::Result<()> {
    // A URI or an in-memory database names no file of ours.
    let text = path.to_string_lossy();
    if text.starts_with("file:") || text == ":memory:" || text.is_empty() {
        return Ok(());
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path)?,
        Err(e) => return Err(e),
    }
    for suffix in COMPANIONS {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        match tighten(&PathBuf::from(companion)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Takes group and other access off the file at `path`.
fn tighten(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_and_its_companions_are_private() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("baton.db");
        let store =
            crate::sqlite::SqliteStore::open(&crate::sqlite::SqliteOptions::new(&path)).unwrap();
        for name in ["baton.db", "baton.db-wal", "baton.db-shm"] {
            let file = dir.path().join(name);
            assert!(file.exists(), "{name} exists once the store is open");
            assert_eq!(mode(&file), 0o600, "{name}");
        }
        drop(store);
    }

    #[test]
    fn an_existing_database_left_readable_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baton.db");
        drop(crate::sqlite::SqliteStore::open(&crate::sqlite::SqliteOptions::new(&path)).unwrap());
        let wal = dir.path().join("baton.db-wal");
        fs::write(&wal, b"").unwrap();
        for file in [&path, &wal] {
            fs::set_permissions(file, Permissions::from_mode(0o644)).unwrap();
        }
        let store =
            crate::sqlite::SqliteStore::open(&crate::sqlite::SqliteOptions::new(&path)).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&wal), 0o600);
        assert_eq!(mode(&dir.path().join("baton.db-shm")), 0o600);
        drop(store);
    }

    #[test]
    fn uris_and_memory_are_left_alone() {
        assert!(make_private(Path::new(":memory:")).is_ok());
        assert!(make_private(Path::new("file:x?mode=memory")).is_ok());
        assert!(!Path::new("file:x?mode=memory").exists());
    }
}
