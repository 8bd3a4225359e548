//! An attempt's work dir: created empty, removed afterwards whatever happened; beside it,
//! the file the attempt's process writes its outputs to (`$BATON_OUTPUT`).

use std::io;
use std::path::{Path, PathBuf};

use baton_api::Assignment;

/// A fresh, empty directory owned by one attempt.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    /// Outside the dir, so neither the step (`rm -rf ./*`) nor an artifact glob meets it.
    output: PathBuf,
    removed: bool,
}

impl WorkDir {
    /// Creates `<root>/<run>-<node>-<attempt>`, emptying what a crashed agent left there,
    /// and the empty output file `<root>/<run>-<node>-<attempt>.output`.
    pub(crate) fn create(root: &Path, a: &Assignment) -> io::Result<WorkDir> {
        let name = format!(
            "{}-{}-{}",
            sanitize(&a.run_id),
            sanitize(&a.node),
            a.attempt
        );
        let path = root.join(&name);
        let output = root.join(name + ".output");
        remove(&path)?;
        std::fs::create_dir_all(&path)?;
        // Truncated: a crashed agent's leftover must not pass as this attempt's outputs.
        if let Err(e) = std::fs::File::create(&output) {
            let _ = remove(&path);
            return Err(e);
        }
        Ok(WorkDir {
            path,
            output,
            removed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file named by `$BATON_OUTPUT`, where the process writes `key=value` lines.
    pub(crate) fn output_file(&self) -> &Path {
        &self.output
    }

    /// Removes the dir off the async threads (it may hold a big tree).
    pub(crate) async fn remove(mut self) {
        self.removed = true;
        let path = std::mem::take(&mut self.path);
        let output = std::mem::take(&mut self.output);
        let result = tokio::task::spawn_blocking(move || {
            let r = remove_file(&output).and(remove(&path));
            (path, r)
        })
        .await;
        if let Ok((path, Err(e))) = result {
            tracing::warn!(dir = %path.display(), error = %e, "cannot remove a work dir");
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_file(&self.output);
            let _ = remove(&self.path);
        }
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Keeps `[A-Za-z0-9_-]`, replaces the rest, so an id can never name another path.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_leaves_no_path_separators() {
        assert_eq!(sanitize("../etc/x y"), "___etc_x_y");
        assert_eq!(sanitize("01J-abc_D"), "01J-abc_D");
    }
}
