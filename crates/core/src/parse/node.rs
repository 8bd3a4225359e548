//! One entry of `nodes:` to a [`NodeSpec`], and its `retry:` policy.

use std::collections::BTreeMap;

use crate::workflow::{Action, NodeSpec, RetryOn, RetryPolicy, Script, When};

use super::fields::At;
use super::names::{FUNCTION, LABEL_KEY, quote, suggest};
use super::report::Pos;
use super::sched;
use super::tree::{Entry, Node, Value};

/// Keys a node may have.
pub(crate) const NODE_KEYS: &[&str] = &[
    "needs",
    "run",
    "uses",
    "with",
    "selector",
    "env",
    "timeout",
    "queue_timeout",
    "retry",
    "resources",
    "artifacts",
    "when",
];

/// Keys of `retry:`.
const RETRY_KEYS: &[&str] = &["attempts", "on", "backoff", "max_backoff"];

/// Most attempts a retry policy may allow.
pub(crate) const MAX_ATTEMPTS: u32 = 100;

/// Workflow-level values merged under every node's own.
pub(crate) struct Defaults<'w> {
    pub(crate) env: &'w BTreeMap<String, String>,
    /// The workflow's secret references in `env`.
    pub(crate) secrets: &'w BTreeMap<String, String>,
    pub(crate) selector: &'w BTreeMap<String, String>,
    /// The workflow's `retry`: a node's own `retry` replaces it whole.
    pub(crate) retry: &'w RetryPolicy,
    /// The workflow's `queue_timeout`.
    pub(crate) queue_timeout_ms: Option<u64>,
}

/// A node as read from the file, its `needs` not yet resolved.
pub(crate) struct ReadNode<'n> {
    /// Everything but `needs`, which the graph check fills in.
    pub(crate) spec: NodeSpec,
    /// Where the node's id is written.
    pub(crate) pos: Pos,
    /// Each need as written, with where it is written.
    pub(crate) needs: Vec<(&'n str, Pos)>,
}

/// Reads the node `id` (written at `pos`) from `body`.
pub(crate) fn read_node<'n>(
    at: &mut At<'_, '_, '_>,
    id: &str,
    pos: Pos,
    body: &'n Node<'_>,
    defaults: &Defaults<'_>,
) -> ReadNode<'n> {
    let mut spec = NodeSpec {
        id: id.to_owned(),
        needs: Vec::new(),
        action: Action::Run(Script::One(String::new())),
        env: defaults.env.clone(),
        secrets: defaults.secrets.clone(),
        selector: defaults.selector.clone(),
        timeout_ms: None,
        queue_timeout_ms: defaults.queue_timeout_ms,
        retry: defaults.retry.clone(),
        when: When::AllSuccess,
        resources: Vec::new(),
        artifacts: Vec::new(),
    };
    let mut needs = Vec::new();
    let entries: &[Entry<'_>] = match &body.value {
        Value::Map(entries) => entries,
        _ if body.is_null() => &[],
        _ => {
            at.report.at(
                body.pos,
                at.node,
                format!(
                    "a node must be a mapping of node keys, found {}",
                    body.kind()
                ),
            );
            return ReadNode { spec, pos, needs };
        }
    };
    let mut run: Option<(&Entry<'_>, Option<Script>)> = None;
    let mut uses: Option<(&Entry<'_>, Option<String>)> = None;
    let mut with: Option<(&Entry<'_>, serde_json::Value)> = None;
    let mut when_at: Option<Pos> = None;
    for e in at.unique(entries, "key") {
        let v = &*e.value;
        match e.key.as_ref() {
            "needs" => {
                needs = at
                    .string_list("needs", v, "a list of node ids", true)
                    .into_iter()
                    .map(|(text, n)| (text, n.pos))
                    .collect();
            }
            "run" => run = Some((e, script(at, v))),
            "uses" => uses = Some((e, function_name(at, v))),
            "with" => with = Some((e, with_args(at, v))),
            "selector" => spec
                .selector
                .extend(at.string_map("selector", v, &LABEL_KEY)),
            "env" => {
                // A node's own variable replaces the workflow's, plain or secret alike.
                let (plain, secrets) = at.env_map(v);
                for name in plain.keys() {
                    spec.secrets.remove(name);
                }
                for name in secrets.keys() {
                    spec.env.remove(name);
                }
                spec.env.extend(plain);
                spec.secrets.extend(secrets);
            }
            "timeout" => spec.timeout_ms = positive_duration(at, "timeout", v),
            "queue_timeout" => {
                if let Some(ms) = positive_duration(at, "queue_timeout", v) {
                    spec.queue_timeout_ms = Some(ms);
                }
            }
            // Null is the key left out: the workflow's `retry` stays.
            "retry" if v.is_null() => {}
            "retry" => spec.retry = retry(at, v),
            "resources" => spec.resources = sched::resources(at, v),
            "when" => {
                if let Some(rule) = sched::when(at, v) {
                    spec.when = rule;
                    when_at = Some(v.pos);
                }
            }
            "artifacts" => {
                for (pattern, n) in at.string_list("artifacts", v, "a list of glob patterns", false)
                {
                    match check_artifact(pattern) {
                        Ok(()) => spec.artifacts.push(pattern.to_owned()),
                        Err(message) => at.report.at(n.pos, at.node, message),
                    }
                }
            }
            _ => at.unknown_key(e, NODE_KEYS, ""),
        }
    }
    if let Some(p) = when_at {
        sched::check_when(at, spec.when, p, !needs.is_empty());
    }
    if let (Some((e, _)), None) = (&with, &uses) {
        at.report.at(
            e.key_pos,
            at.node,
            "\"with\" is only allowed together with \"uses\"",
        );
    }
    match (run, uses) {
        (Some((r, _)), Some((u, _))) => {
            let second = if r.key_pos > u.key_pos { r } else { u };
            at.report.at(
                second.key_pos,
                at.node,
                "\"run\" and \"uses\" cannot both be given: a node runs a script or uses a function",
            );
        }
        (None, None) => at.report.at(
            pos,
            at.node,
            "missing \"run\" or \"uses\": a node runs a script or uses a function",
        ),
        (Some((_, script)), None) => {
            if let Some(script) = script {
                spec.action = Action::Run(script);
            }
        }
        (None, Some((_, Some(function)))) => {
            spec.action = Action::Uses {
                function,
                with: with.map_or_else(no_args, |(_, args)| args),
            };
        }
        (None, Some((_, None))) => {}
    }
    ReadNode { spec, pos, needs }
}

/// A `uses:` value: a function name.
fn function_name(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> Option<String> {
    let Some(name) = v.text() else {
        at.wrong_type("uses", "a function name", v);
        return None;
    };
    match FUNCTION.check(name) {
        Ok(()) => Some(name.to_owned()),
        Err(message) => {
            at.report.at(v.pos, at.node, message);
            None
        }
    }
}

/// A `with:` value: the function's arguments, a JSON object.
fn with_args(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> serde_json::Value {
    match &v.value {
        Value::Map(_) => at.json(v),
        _ if v.is_null() => no_args(),
        _ => {
            at.wrong_type("with", "a mapping of arguments", v);
            no_args()
        }
    }
}

fn no_args() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A `run:` value: one script, or a non-empty list of commands.
fn script(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> Option<Script> {
    const WANTED: &str = "a string (a script) or a list of commands";
    match &v.value {
        Value::Scalar(_) => match v.text() {
            Some(text) if !text.trim().is_empty() => Some(Script::One(text.to_owned())),
            Some(_) => {
                at.report.at(v.pos, at.node, "\"run\" is empty");
                None
            }
            None => {
                at.wrong_type("run", WANTED, v);
                None
            }
        },
        Value::Seq(items) => {
            if items.is_empty() {
                at.report
                    .at(v.pos, at.node, "\"run\" must list at least one command");
                return None;
            }
            let before = at.report.len();
            let mut cmds = Vec::with_capacity(items.len());
            for item in items {
                match item.text() {
                    Some(text) if !text.trim().is_empty() => cmds.push(text.to_owned()),
                    Some(_) => at
                        .report
                        .at(item.pos, at.node, "\"run\" has an empty command"),
                    None => at.report.at(
                        item.pos,
                        at.node,
                        format!("\"run\" commands must be strings, found {}", item.kind()),
                    ),
                }
            }
            (at.report.len() == before).then_some(Script::List(cmds))
        }
        Value::Map(_) => {
            at.wrong_type("run", WANTED, v);
            None
        }
    }
}

/// A duration that must be longer than zero (`timeout`, `queue_timeout`); `None` when null
/// or refused.
pub(crate) fn positive_duration(at: &mut At<'_, '_, '_>, key: &str, v: &Node<'_>) -> Option<u64> {
    if v.is_null() {
        return None;
    }
    match at.duration(key, v) {
        Some(0) => {
            at.report
                .at(v.pos, at.node, format!("{key:?} must be longer than zero"));
            None
        }
        ms => ms,
    }
}

/// `retry: {attempts, on, backoff, max_backoff}`; absent keys take the documented defaults.
pub(crate) fn retry(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    let entries = match &v.value {
        Value::Map(entries) => entries,
        _ if v.is_null() => return policy,
        _ => {
            at.wrong_type("retry", "a mapping such as {attempts: 3}", v);
            return policy;
        }
    };
    policy.on = vec![RetryOn::Failure, RetryOn::Error, RetryOn::Timeout];
    let mut attempts = None;
    let mut backoff = None;
    let mut max_backoff = None;
    for e in at.unique(entries, "key") {
        let value = &*e.value;
        match e.key.as_ref() {
            "attempts" => attempts = Some(retry_attempts(at, value)),
            "on" => {
                if value.is_null() {
                    continue;
                }
                let names = at.string_list("on", value, "a list of conditions", true);
                if matches!(&value.value, Value::Seq(items) if items.is_empty()) {
                    at.report.at(
                        value.pos,
                        at.node,
                        format!(
                            "\"on\" must name at least one of {}",
                            RetryOn::NAMES.join(", ")
                        ),
                    );
                }
                let mut on = Vec::with_capacity(names.len());
                for (name, n) in names {
                    match retry_on(name) {
                        Some(cond) => on.push(cond),
                        None => {
                            let hint = match suggest(name, RetryOn::NAMES.iter().copied()) {
                                Some(close) => format!("did you mean {close:?}?"),
                                None => format!("use one of {}", RetryOn::NAMES.join(", ")),
                            };
                            at.report.at(
                                n.pos,
                                at.node,
                                format!("unknown retry condition {}; {hint}", quote(name)),
                            );
                        }
                    }
                }
                on.sort();
                on.dedup();
                policy.on = on;
            }
            "backoff" => backoff = Some((value, at.duration("backoff", value))),
            "max_backoff" => max_backoff = Some((value, at.duration("max_backoff", value))),
            _ => at.unknown_key(e, RETRY_KEYS, " in \"retry\""),
        }
    }
    match attempts {
        Some(Some(n)) => policy.attempts = n,
        Some(None) => {}
        None => at.report.at(
            v.pos,
            at.node,
            "\"retry\" needs \"attempts\", such as {attempts: 3}",
        ),
    }
    if let Some((_, Some(ms))) = backoff {
        policy.backoff_ms = ms;
    }
    if let Some((node, Some(ms))) = max_backoff {
        policy.max_backoff_ms = ms;
        if ms < policy.backoff_ms {
            at.report.at(
                node.pos,
                at.node,
                "\"max_backoff\" must not be shorter than \"backoff\"",
            );
        }
    }
    policy
}

fn retry_attempts(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> Option<u32> {
    sched::whole_number(at, "attempts", v, 1..=i64::from(MAX_ATTEMPTS))
        .and_then(|n| u32::try_from(n).ok())
}

fn retry_on(name: &str) -> Option<RetryOn> {
    Some(match name {
        "failure" => RetryOn::Failure,
        "error" => RetryOn::Error,
        "timeout" => RetryOn::Timeout,
        "lost" => RetryOn::Lost,
        _ => return None,
    })
}

/// An artifact pattern must stay inside the node's work dir.
fn check_artifact(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("artifact pattern is empty".to_owned());
    }
    let bytes = pattern.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if pattern.starts_with(['/', '\\']) || drive {
        return Err(format!(
            "artifact pattern {} must be relative to the node's work dir",
            quote(pattern)
        ));
    }
    if pattern.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!(
            "artifact pattern {} must not contain \"..\"",
            quote(pattern)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_patterns_stay_inside() {
        assert!(check_artifact("dist/**").is_ok());
        assert!(check_artifact("a..b/*.txt").is_ok());
        assert!(check_artifact("/etc/passwd").is_err());
        assert!(check_artifact("C:/x").is_err());
        assert!(check_artifact("a/../../x").is_err());
        assert!(check_artifact("..\\x").is_err());
        assert!(check_artifact(" ").is_err());
    }
}
