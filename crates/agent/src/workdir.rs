//! An attempt's work dir: created empty, removed afterwards whatever happened; beside it,
//! the file the attempt's process writes its outputs to (`$BATON_OUTPUT`) and the one it
//! reads its inputs from (`$BATON_INPUTS`).

use std::io;
use std::path::{Path, PathBuf};

use baton_api::Assignment;

use crate::outputs;

/// Where an agent's attempts run: the root of their work dirs, and the names of the
/// agent's variables their processes get besides the allow-list (see `step_env`).
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    /// Absolute; holds the attempts' work dirs.
    pub(crate) root: PathBuf,
    /// `--pass-env` names, already checked.
    pub(crate) pass_env: Vec<String>,
}

/// A fresh, empty directory owned by one attempt.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    /// Outside the dir, so neither the step (`rm -rf ./*`) nor an artifact glob meets it.
    output: PathBuf,
    /// Outside the dir too, for the same reasons.
    inputs: PathBuf,
    removed: bool,
}

impl WorkDir {
    /// Creates `<root>/<run>-<node>-<attempt>`, emptying what a crashed agent left there,
    /// the empty output file `<root>/<run>-<node>-<attempt>.output`, and the inputs file
    /// `<root>/<run>-<node>-<attempt>.inputs.json` holding the assignment's inputs.
    pub(crate) fn create(root: &Path, a: &Assignment) -> io::Result<WorkDir> {
        let name = format!(
            "{}-{}-{}",
            sanitize(&a.run_id),
            sanitize(&a.node),
            a.attempt
        );
        let path = root.join(&name);
        let output = root.join(format!("{name}.output"));
        let inputs = root.join(name + ".inputs.json");
        remove(&path)?;
        std::fs::create_dir_all(&path)?;
        let dir = WorkDir {
            path,
            output,
            inputs,
            removed: false,
        };
        // Truncated: a crashed agent's leftover must not pass as this attempt's outputs.
        std::fs::File::create(&dir.output)?;
        std::fs::write(&dir.inputs, outputs::inputs_json(&a.inputs))?;
        // On an error the dir is dropped, which removes what was made.
        Ok(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file named by `$BATON_OUTPUT`, where the process writes `key=value` lines.
    pub(crate) fn output_file(&self) -> &Path {
        &self.output
    }

    /// The file named by `$BATON_INPUTS`: the upstream outputs as JSON.
    pub(crate) fn inputs_file(&self) -> &Path {
        &self.inputs
    }

    /// Removes the dir off the async threads (it may hold a big tree).
    pub(crate) async fn remove(mut self) {
        self.removed = true;
        let path = std::mem::take(&mut self.path);
        let output = std::mem::take(&mut self.output);
        let inputs = std::mem::take(&mut self.inputs);
        let result = tokio::task::spawn_blocking(move || {
            let r = remove_file(&output)
                .and(remove_file(&inputs))
                .and(remove(&path));
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
            let _ = remove_file(&self.inputs);
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
