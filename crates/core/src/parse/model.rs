//! The value tree of a whole file to a [`Workflow`]: top-level keys, then each node, then
//! the graph.

use std::collections::BTreeMap;

use crate::workflow::{RetryPolicy, Workflow};

use super::MAX_NODES;
use super::fields::At;
use super::graph;
use super::names::{LABEL_KEY, NODE_ID, WORKFLOW_NAME};
use super::node::{Defaults, ReadNode, positive_duration, read_node, retry};
use super::report::Report;
use super::sched;
use super::tree::{Entry, Node, Value};

/// Keys a workflow file may have at the top level.
pub(crate) const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "selector",
    "env",
    "timeout",
    "queue_timeout",
    "retry",
    "priority",
    "concurrency",
    "nodes",
];

/// Reads the workflow in `root`. The result is meaningful only when nothing was reported.
pub(crate) fn workflow(root: &Node<'_>, report: &mut Report) -> Option<Workflow> {
    let mut at = At { report, node: None };
    let entries = match &root.value {
        Value::Map(entries) => entries,
        _ => {
            at.report.at(
                root.pos,
                None,
                format!(
                    "a workflow file must be a mapping with \"name\" and \"nodes\", found {}",
                    root.kind()
                ),
            );
            return None;
        }
    };
    let mut name = None;
    let mut description = None;
    let mut selector = BTreeMap::new();
    let mut env = BTreeMap::new();
    let mut secret_env = BTreeMap::new();
    let mut timeout_ms = None;
    let mut queue_timeout_ms = None;
    let mut retry_policy = RetryPolicy::default();
    let mut nodes: Option<&Node<'_>> = None;
    let mut priority = 0;
    let mut concurrency = None;
    for e in at.unique(entries, "key") {
        let v = &*e.value;
        match e.key.as_ref() {
            "name" => match v.text() {
                Some(text) => {
                    if let Err(message) = WORKFLOW_NAME.check(text) {
                        at.report.at(v.pos, None, message);
                    }
                    name = Some(text.to_owned());
                }
                None => at.wrong_type("name", "a string", v),
            },
            "description" => match v.text() {
                Some(text) => description = Some(text.to_owned()),
                None if v.is_null() => {}
                None => at.wrong_type("description", "a string", v),
            },
            "selector" => selector = at.string_map("selector", v, &LABEL_KEY),
            "env" => (env, secret_env) = at.env_map(v),
            "timeout" => timeout_ms = positive_duration(&mut at, "timeout", v),
            "queue_timeout" => queue_timeout_ms = positive_duration(&mut at, "queue_timeout", v),
            "retry" => retry_policy = retry(&mut at, v),
            "priority" => priority = sched::priority(&mut at, v),
            "concurrency" => concurrency = sched::concurrency(&mut at, v),
            "nodes" => nodes = Some(v),
            _ => at.unknown_key(e, WORKFLOW_KEYS, ""),
        }
    }
    let has_name = entries.iter().any(|e| e.key == "name");
    if !has_name {
        at.report
            .at(root.pos, None, "missing required key \"name\"");
    }
    let defaults = Defaults {
        env: &env,
        secrets: &secret_env,
        selector: &selector,
        retry: &retry_policy,
        queue_timeout_ms,
    };
    let read = match nodes {
        None => {
            at.report
                .at(root.pos, None, "missing required key \"nodes\"");
            Vec::new()
        }
        Some(v) => read_nodes(&mut at, v, &defaults)?,
    };
    Some(Workflow {
        name: name.unwrap_or_default(),
        description,
        timeout_ms,
        priority,
        concurrency,
        nodes: read.into_iter().map(|n| n.spec).collect(),
    })
}

/// Reads `nodes:`; `None` when the file has too many nodes to check further.
fn read_nodes<'n>(
    at: &mut At<'_, '_, '_>,
    value: &'n Node<'_>,
    defaults: &Defaults<'_>,
) -> Option<Vec<ReadNode<'n>>> {
    let entries: &[Entry<'_>] = match &value.value {
        Value::Map(entries) => entries,
        _ if value.is_null() => &[],
        _ => {
            at.wrong_type("nodes", "a mapping of node id to node", value);
            return Some(Vec::new());
        }
    };
    if entries.is_empty() {
        at.report
            .at(value.pos, None, "\"nodes\" must have at least one node");
        return Some(Vec::new());
    }
    if let Some(extra) = entries.get(MAX_NODES) {
        at.report.at(
            extra.key_pos,
            None,
            format!(
                "too many nodes: {} (the limit is {MAX_NODES})",
                entries.len()
            ),
        );
        return None;
    }
    let mut read = Vec::with_capacity(entries.len());
    for e in at.unique(entries, "node id") {
        let id = e.key.as_ref();
        if let Err(message) = NODE_ID.check(id) {
            at.report.at(e.key_pos, None, message);
        }
        let mut node_at = At {
            report: at.report,
            node: Some(id),
        };
        read.push(read_node(&mut node_at, id, e.key_pos, &e.value, defaults));
    }
    graph::check(&mut read, at.report);
    Some(read)
}
