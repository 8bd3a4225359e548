//! The environment of every process the agent starts for an attempt (shell steps and
//! plugins): never the agent's whole environment, which holds the agent's secrets (an
//! exported `BATON_TOKEN`, cloud credentials) that no step was given.
//!
//! A step starts from nothing, then gets, each layer overriding the one before:
//! 1. the agent's own values of the allow-list ([`ALLOWED`], every `LC_*`) and of the names
//!    passed with `--pass-env`; `PATH` falls back to [`DEFAULT_PATH`];
//! 2. the node's inputs (`BATON_<NODE>_<KEY>`);
//! 3. the node's `env`;
//! 4. the `BATON_*` variables of the attempt (`BATON_RUN_ID`, `BATON_WORK_DIR` …).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// Variables a step gets from the agent's environment without being asked for, besides
/// every `LC_*`: what programs need to find themselves, their user and their locale.
pub(crate) const ALLOWED: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
];

/// `PATH` of a step when the agent has none.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Why a name cannot be passed to steps with `--pass-env`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassEnvError {
    /// `BATON_*` names are Baton's own: its tokens and the attempt's variables.
    #[error(
        "--pass-env {0:?}: variables starting with BATON_ are never passed to steps (they hold Baton's own settings and tokens)"
    )]
    Reserved(String),
    /// Not something `env` could hold.
    #[error(
        "--pass-env {0:?}: not a variable name (use letters, digits and \"_\", not starting with a digit)"
    )]
    BadName(String),
}

/// Checks the names given with `--pass-env` (or `BATON_PASS_ENV`), so that an agent asked
/// to hand its token to steps refuses to start.
pub fn check_pass_env(names: &[String]) -> Result<(), PassEnvError> {
    for name in names {
        if name.starts_with("BATON_") {
            return Err(PassEnvError::Reserved(name.clone()));
        }
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(PassEnvError::BadName(name.clone()));
        }
    }
    Ok(())
}

/// Whether the agent's variable `name` reaches steps.
fn passes(name: &OsStr, pass: &[String]) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    // Checked again here so that no caller can hand a Baton token on, whatever it passes.
    if name.starts_with("BATON_") {
        return false;
    }
    ALLOWED.contains(&name) || name.starts_with("LC_") || pass.iter().any(|p| p == name)
}

/// The whole environment of a step's process, from the agent's environment `agent`, the
/// `--pass-env` names `pass`, the node's inputs as variables, its `env`, and the
/// attempt's `BATON_*` variables, each layer overriding the one before.
pub(crate) fn step_env<A, K, V>(
    agent: A,
    pass: &[String],
    inputs: &[(String, String)],
    node: &BTreeMap<String, String>,
    baton: &[(&str, OsString)],
) -> BTreeMap<OsString, OsString>
where
    A: IntoIterator<Item = (K, V)>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    let mut env: BTreeMap<OsString, OsString> = agent
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .filter(|(k, _)| passes(k, pass))
        .collect();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    let later = inputs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .chain(node.iter().map(|(k, v)| (k.into(), v.into())))
        .chain(baton.iter().map(|(k, v)| (OsString::from(k), v.clone())));
    env.extend(later);
    env
}

/// Where `name` is found on the `PATH` steps get (the agent's, else [`DEFAULT_PATH`]):
/// the first executable file of that name, as an absolute path.
///
/// Steps are started by absolute path because a command whose environment sets `PATH` and
/// whose program is looked up on it cannot use `posix_spawn` in Rust's standard library
/// (the lookup would read the agent's `PATH`), and falls back to fork and exec: a fork of
/// the whole agent, about a millisecond per step on a small machine.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    find_on(name, &path)
}

/// The first executable file `name` in the directories of `path` (a `PATH` value).
pub(crate) fn find_on(name: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn names(env: &BTreeMap<OsString, OsString>) -> Vec<&str> {
        env.keys().filter_map(|k| k.to_str()).collect()
    }

    fn get<'e>(env: &'e BTreeMap<OsString, OsString>, name: &str) -> Option<&'e str> {
        env.get(OsStr::new(name)).and_then(|v| v.to_str())
    }

    #[test]
    fn programs_are_found_as_absolute_paths() {
        let sh = find_program("sh").expect("sh is on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(find_program("no-such-program-baton"), None);
    }

    #[test]
    fn only_the_allow_list_reaches_a_step() {
        // (agent env, --pass-env, names the step gets)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (
                &[("PATH", "/p"), ("HOME", "/h"), ("FOO", "bar")],
                &[],
                &["HOME", "PATH"],
            ),
            (
                &[("BATON_TOKEN", "secret"), ("BATON_AGENT_TOKEN", "e")],
                &[],
                &["PATH"],
            ),
            (
                &[("LC_ALL", "C"), ("LC_TIME", "x"), ("LANG", "C.UTF-8")],
                &[],
                &["LANG", "LC_ALL", "LC_TIME", "PATH"],
            ),
            (
                &[("USER", "u"), ("LOGNAME", "u"), ("SHELL", "/bin/sh")],
                &[],
                &["LOGNAME", "PATH", "SHELL", "USER"],
            ),
            (
                &[("TZ", "UTC"), ("TERM", "xterm"), ("TMPDIR", "/t")],
                &[],
                &["PATH", "TERM", "TMPDIR", "TZ"],
            ),
            (&[("LANGUAGE", "en")], &[], &["LANGUAGE", "PATH"]),
            (
                &[("AWS_SECRET_ACCESS_KEY", "k"), ("SSH_AUTH_SOCK", "s")],
                &[],
                &["PATH"],
            ),
            (&[("FOO", "bar"), ("BAR", "x")], &["FOO"], &["FOO", "PATH"]),
            // A name passed but unset on the agent stays unset.
            (&[], &["FOO"], &["PATH"]),
            // Even when a caller slips one past the flag check.
            (&[("BATON_TOKEN", "secret")], &["BATON_TOKEN"], &["PATH"]),
            // Case matters, as it does to programs.
            (&[("path", "/p"), ("Home", "/h")], &[], &["PATH"]),
        ];
        for (env, pass, want) in cases {
            let pass: Vec<String> = pass.iter().map(|p| (*p).to_owned()).collect();
            let got = step_env(agent(env), &pass, &[], &BTreeMap::new(), &[]);
            assert_eq!(names(&got), *want, "agent env {env:?}, pass {pass:?}");
        }
    }

    #[test]
    fn path_falls_back_to_a_sane_default() {
        let env = step_env(agent(&[]), &[], &[], &BTreeMap::new(), &[]);
        assert_eq!(get(&env, "PATH"), Some(DEFAULT_PATH));
        let env = step_env(
            agent(&[("PATH", "/opt/bin")]),
            &[],
            &[],
            &BTreeMap::new(),
            &[],
        );
        assert_eq!(get(&env, "PATH"), Some("/opt/bin"));
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let inputs = vec![
            ("BATON_UP_KEY".to_owned(), "input".to_owned()),
            ("SHARED".to_owned(), "input".to_owned()),
        ];
        let node: BTreeMap<String, String> = [
            ("HOME".to_owned(), "/node-home".to_owned()),
            ("SHARED".to_owned(), "node".to_owned()),
            ("BATON_NODE".to_owned(), "spoofed".to_owned()),
            ("GREETING".to_owned(), "hi".to_owned()),
        ]
        .into();
        let baton = [("BATON_NODE", OsString::from("build"))];
        let env = step_env(
            agent(&[("HOME", "/agent-home"), ("GREETING", "agent")]),
            &[],
            &inputs,
            &node,
            &baton,
        );
        assert_eq!(get(&env, "HOME"), Some("/node-home"));
        assert_eq!(get(&env, "SHARED"), Some("node"));
        assert_eq!(get(&env, "BATON_UP_KEY"), Some("input"));
        assert_eq!(get(&env, "BATON_NODE"), Some("build"));
        assert_eq!(get(&env, "GREETING"), Some("hi"));
    }

    #[test]
    fn baton_names_cannot_be_passed() {
        let check = |names: &[&str]| {
            check_pass_env(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(check(&["FOO", "_X1", "AWS_REGION"]), Ok(()));
        assert_eq!(
            check(&["FOO", "BATON_TOKEN"]),
            Err(PassEnvError::Reserved("BATON_TOKEN".into()))
        );
        assert!(matches!(
            check(&["BATON_AGENT_TOKEN"]),
            Err(PassEnvError::Reserved(_))
        ));
        assert!(matches!(check(&[""]), Err(PassEnvError::BadName(_))));
        assert!(matches!(check(&["A=B"]), Err(PassEnvError::BadName(_))));
        assert!(matches!(check(&["1X"]), Err(PassEnvError::BadName(_))));
        let message = check(&["BATON_TOKEN"]).unwrap_err().to_string();
        assert!(message.contains("BATON_TOKEN"), "{message}");
    }
}
