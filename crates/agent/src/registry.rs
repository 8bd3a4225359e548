//! What each `uses:` name means on this agent: the built-ins, the Rust functions of the
//! program embedding the agent, and the plugins. Built once at start; a clash of names is
//! an error then, never a silent choice later.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::function::Function;
use crate::functions::{BUILTIN_FUNCTIONS, Noop, Sleep};
use crate::plugins::{self, Plugin};

/// Longest function name, as `uses:` allows.
const MAX_NAME_LEN: usize = 64;

/// Why the agent's functions cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    /// A Rust function's name breaks the rule of `uses:`.
    #[error(
        "bad function name {name:?}: use lowercase letters, digits, \"_\" and \"-\", starting \
         with a letter or digit, at most {MAX_NAME_LEN} characters"
    )]
    BadName {
        /// The name.
        name: String,
    },
    /// A Rust function has the name of a built-in.
    #[error("the function {name:?} is built in and cannot be replaced")]
    ShadowsBuiltin {
        /// The name.
        name: String,
    },
    /// Two Rust functions have one name.
    #[error("two functions are named {name:?}")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The plugins dir cannot be read.
    #[error("cannot read the plugins dir {}", dir.display())]
    PluginsDir {
        /// The dir as given.
        dir: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// Two plugin files map to one function name.
    #[error(
        "the plugins {} and {} both make the function {name:?}; rename or remove one",
        first.display(),
        second.display()
    )]
    DuplicatePlugin {
        /// The function name.
        name: String,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A plugin has the name of a built-in or of a Rust function of the agent.
    #[error(
        "the plugin {} would replace the agent's own function {name:?}; rename it",
        path.display()
    )]
    PluginShadows {
        /// The function name.
        name: String,
        /// The plugin file.
        path: PathBuf,
    },
}

/// Whether `name` may be a function name (the rule of `uses:`).
pub(crate) fn is_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(lower_alnum)
        && chars.all(|c| lower_alnum(c) || c == '_' || c == '-')
}

/// The functions the plugins in `dir` make, sorted; or why the agent would refuse them.
pub fn plugin_functions(dir: &Path) -> Result<Vec<String>, FunctionsError> {
    let registry = Registry::new(&[], Some(dir))?;
    let mut names = registry.names();
    names.retain(|n| !BUILTIN_FUNCTIONS.contains(&n.as_str()));
    Ok(names)
}

/// How one function is carried out.
pub(crate) enum Implementation {
    /// `run:` steps; named only so that `uses: shell` gets a clear error.
    Shell,
    /// A function in this process.
    Rust(Arc<dyn Function>),
    /// An executable.
    Plugin(Plugin),
}

/// The agent's functions by name.
pub(crate) struct Registry {
    by_name: HashMap<String, Implementation>,
}

impl Registry {
    /// The built-ins, then `functions`, then the plugins in `plugins_dir`.
    pub(crate) fn new(
        functions: &[Arc<dyn Function>],
        plugins_dir: Option<&Path>,
    ) -> Result<Registry, FunctionsError> {
        let builtins: [(&str, Implementation); 3] = [
            ("shell", Implementation::Shell),
            ("noop", Implementation::Rust(Arc::new(Noop))),
            ("sleep", Implementation::Rust(Arc::new(Sleep))),
        ];
        debug_assert!(
            builtins
                .iter()
                .map(|(n, _)| *n)
                .eq(BUILTIN_FUNCTIONS.iter().copied())
        );
        let mut by_name: HashMap<String, Implementation> = builtins
            .into_iter()
            .map(|(name, f)| (name.to_owned(), f))
            .collect();
        for f in functions {
            let name = f.name();
            if !is_function_name(name) {
                return Err(FunctionsError::BadName { name: name.into() });
            }
            if BUILTIN_FUNCTIONS.contains(&name) {
                return Err(FunctionsError::ShadowsBuiltin { name: name.into() });
            }
            if by_name.contains_key(name) {
                return Err(FunctionsError::Duplicate { name: name.into() });
            }
            by_name.insert(name.to_owned(), Implementation::Rust(Arc::clone(f)));
        }
        if let Some(dir) = plugins_dir {
            for plugin in plugins::discover(dir)? {
                if by_name.contains_key(&plugin.name) {
                    return Err(FunctionsError::PluginShadows {
                        name: plugin.name,
                        path: plugin.path,
                    });
                }
                tracing::info!(function = %plugin.name, file = %plugin.path.display(), "plugin");
                by_name.insert(plugin.name.clone(), Implementation::Plugin(plugin));
            }
        }
        Ok(Registry { by_name })
    }

    /// The implementation of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Implementation> {
        self.by_name.get(name)
    }

    /// Every name, sorted: what the agent offers the server.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
