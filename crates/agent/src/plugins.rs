//! Plugins: executables in the agent's plugins dir, each a function named after its file.
//!
//! A plugin runs as a shell step does (fresh work dir, own process group, the clean step
//! environment with the node's env,
//! inputs and the `BATON_*` variables, output as logs, outputs from `$BATON_OUTPUT`,
//! timeout and cancel by killing the group), with a JSON document about the call (its
//! `inputs` included) on its stdin. The protocol is in `docs/plugins.md`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_api::Assignment;
use serde::Serialize;
use tokio::process::Command;

use crate::exec;
use crate::functions::{Ended, Execution, prepare, process_ended};
use crate::logs::LogBuffer;
use crate::outputs::{self, Inputs};
use crate::registry::{FunctionsError, is_function_name};
use crate::stop::Stop;
use crate::workdir::{WorkDir, Workspace};

/// An executable file offered as the function `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plugin {
    pub(crate) name: String,
    /// Absolute, since the plugin starts in its work dir.
    pub(crate) path: PathBuf,
}

/// The plugins in `dir`: every executable regular file (or link to one), named after its
/// file name without extension. Files with names that are not function names are skipped
/// with a warning; two files with one name are an error.
pub(crate) fn discover(dir: &Path) -> Result<Vec<Plugin>, FunctionsError> {
    let fail = |source| FunctionsError::PluginsDir {
        dir: dir.to_owned(),
        source,
    };
    let dir = std::path::absolute(dir).map_err(fail)?;
    let mut paths = std::fs::read_dir(&dir)
        .map_err(fail)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    // Sorted, so which file a clash names first does not depend on the file system.
    paths.sort();
    let mut plugins: Vec<Plugin> = Vec::new();
    for path in paths {
        let Some(name) = plugin_name(&path) else {
            continue;
        };
        if let Some(first) = plugins.iter().find(|p| p.name == name) {
            return Err(FunctionsError::DuplicatePlugin {
                name,
                first: first.path.clone(),
                second: path,
            });
        }
        plugins.push(Plugin { name, path });
    }
    Ok(plugins)
}

/// The function name of the file at `path`, when it is a plugin.
fn plugin_name(path: &Path) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "skipping a file of the plugins dir");
            return None;
        }
    };
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o111 == 0 {
        tracing::info!(file = %path.display(), "not executable, so not a plugin");
        return None;
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy());
    match stem {
        Some(stem) if is_function_name(&stem) => Some(stem.into_owned()),
        _ => {
            tracing::warn!(
                file = %path.display(),
                "skipping the plugin: its name (the file name without extension) must be \
                 lowercase letters, digits, \"_\" and \"-\", starting with a letter or digit, \
                 at most 64 characters"
            );
            None
        }
    }
}

/// What a plugin reads on stdin.
#[derive(Serialize)]
struct Input<'a> {
    function: &'a str,
    with: &'a serde_json::Value,
    inputs: &'a Inputs,
    run_id: &'a str,
    workflow: &'a str,
    node: &'a str,
    attempt: u32,
    work_dir: &'a Path,
}

/// Runs `plugin` for `a` in a fresh work dir.
pub(crate) async fn run(
    plugin: &Plugin,
    workspace: &Workspace,
    a: &Assignment,
    with: &serde_json::Value,
    timeout: Option<Duration>,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> Execution {
    let dir = match WorkDir::create(&workspace.root, a) {
        Ok(dir) => dir,
        Err(e) => {
            return Execution {
                ended: Ended::setup(format!("cannot create the work dir: {e}")),
                work_dir: None,
            };
        }
    };
    let input = Input {
        function: &plugin.name,
        with,
        inputs: &a.inputs,
        run_id: &a.run_id,
        workflow: &a.workflow,
        node: &a.node,
        attempt: a.attempt,
        work_dir: dir.path(),
    };
    let input = match serde_json::to_vec(&input) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            bytes
        }
        // Only a work dir path that is not UTF-8 gets here.
        Err(e) => {
            return Execution {
                ended: Ended::setup(format!("cannot write the plugin's input: {e}")),
                work_dir: Some(dir),
            };
        }
    };
    let mut cmd = Command::new(&plugin.path);
    prepare(&mut cmd, a, &dir, &workspace.pass_env);
    let result = exec::run_fed(cmd, Some(input), timeout, stop, logs).await;
    let program = format!("the plugin {}", plugin.path.display());
    let ended = process_ended(result, &program, timeout);
    Execution {
        ended: outputs::collect(ended, dir.output_file()).await,
        work_dir: Some(dir),
    }
}

#[cfg(test)]
#[path = "plugins_tests.rs"]
mod tests;
