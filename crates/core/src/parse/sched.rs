//! Scheduling keys: a node's `when` and `resources`, the workflow's `priority` and
//! `concurrency`.

use crate::workflow::{Concurrency, OnConflict, ResourceUse, When};

use super::fields::At;
use super::names::{RESOURCE, quote, suggest};
use super::report::Pos;
use super::scalar::Typed;
use super::tree::{Node, Value};

/// Largest `count` of a resource and `limit` of `concurrency`.
pub(crate) const MAX_COUNT: i64 = 10_000;
/// Bounds of `priority`.
pub(crate) const PRIORITY_RANGE: std::ops::RangeInclusive<i64> =
    *crate::PRIORITY_RANGE.start() as i64..=*crate::PRIORITY_RANGE.end() as i64;

/// Keys of `concurrency:`.
const CONCURRENCY_KEYS: &[&str] = &["limit", "on_conflict"];
/// Keys of one `resources:` entry written as a mapping.
const RESOURCE_KEYS: &[&str] = &["name", "count"];

/// A whole number in `range`, reported (with what was found) when it is not one.
pub(crate) fn whole_number(
    at: &mut At<'_, '_, '_>,
    key: &str,
    v: &Node<'_>,
    range: std::ops::RangeInclusive<i64>,
) -> Option<i64> {
    let n = match &v.value {
        Value::Scalar(s) => match s.typed() {
            Typed::Int(n) => Some(n),
            _ => None,
        },
        _ => None,
    };
    match n {
        Some(n) if range.contains(&n) => Some(n),
        _ => {
            let found = match v.text() {
                Some(text) if v.kind() == "a number" && text.len() <= 24 => text.to_owned(),
                _ => v.kind().to_owned(),
            };
            at.report.at(
                v.pos,
                at.node,
                format!(
                    "{key:?} must be a whole number from {} to {}, found {found}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

/// `when: all_success | all_done | any_success | any_failure`.
pub(crate) fn when(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> Option<When> {
    let Some(text) = v.text() else {
        at.wrong_type(
            "when",
            "one of all_success, all_done, any_success, any_failure",
            v,
        );
        return None;
    };
    let rule = match text {
        "all_success" => When::AllSuccess,
        "all_done" => When::AllDone,
        "any_success" => When::AnySuccess,
        "any_failure" => When::AnyFailure,
        _ => {
            let hint = match suggest(text, When::NAMES.iter().copied()) {
                Some(close) => format!("did you mean {close:?}?"),
                None => format!("use one of {}", When::NAMES.join(", ")),
            };
            at.report.at(
                v.pos,
                at.node,
                format!("unknown trigger rule {}; {hint}", quote(text)),
            );
            return None;
        }
    };
    Some(rule)
}

/// Reports a `when` other than `all_success` on a node with no `needs`: it has nothing to
/// wait for.
pub(crate) fn check_when(at: &mut At<'_, '_, '_>, rule: When, pos: Pos, has_needs: bool) {
    if !has_needs && rule != When::AllSuccess {
        at.report.at(
            pos,
            at.node,
            format!(
                "\"when: {}\" needs upstream nodes: add \"needs\" or remove \"when\"",
                rule.as_str()
            ),
        );
    }
}

/// `resources: [name, {name: db, count: 2}, …]`, each name once.
pub(crate) fn resources(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> Vec<ResourceUse> {
    const WANTED: &str = "a list of resource names or {name, count} mappings";
    let items: &[std::rc::Rc<Node<'_>>] = match &v.value {
        Value::Seq(items) => items,
        _ if v.is_null() => return Vec::new(),
        _ => {
            at.wrong_type("resources", WANTED, v);
            return Vec::new();
        }
    };
    let mut out: Vec<ResourceUse> = Vec::with_capacity(items.len());
    for item in items {
        let Some((use_, pos)) = resource(at, item) else {
            continue;
        };
        if out.iter().any(|r| r.name == use_.name) {
            at.report.at(
                pos,
                at.node,
                format!("resource {} is named twice", quote(&use_.name)),
            );
            continue;
        }
        out.push(use_);
    }
    out
}

/// One entry of `resources:`, with where its name is written.
fn resource(at: &mut At<'_, '_, '_>, item: &Node<'_>) -> Option<(ResourceUse, Pos)> {
    match &item.value {
        Value::Scalar(_) => {
            let Some(name) = item.text() else {
                at.wrong_type("resources", "a list of resource names", item);
                return None;
            };
            checked_name(at, name, item.pos).map(|n| (ResourceUse::exclusive(n), item.pos))
        }
        Value::Map(entries) => {
            let mut name = None;
            let mut count = Some(1);
            for e in at.unique(entries, "key") {
                let value = &*e.value;
                match e.key.as_ref() {
                    "name" => match value.text() {
                        Some(text) => {
                            name = checked_name(at, text, value.pos).map(|n| (n, value.pos))
                        }
                        None => at.wrong_type("name", "a resource name", value),
                    },
                    "count" => count = whole_number(at, "count", value, 1..=MAX_COUNT),
                    _ => at.unknown_key(e, RESOURCE_KEYS, " in a resource"),
                }
            }
            if !entries.iter().any(|e| e.key == "name") {
                at.report.at(
                    item.pos,
                    at.node,
                    "a resource mapping needs \"name\", such as {name: db, count: 2}",
                );
            }
            let ((name, pos), count) = (name?, count?);
            Some((
                ResourceUse {
                    name,
                    count: u32::try_from(count).ok()?,
                },
                pos,
            ))
        }
        Value::Seq(_) => {
            at.wrong_type("resources", "a list of resource names", item);
            None
        }
    }
}

fn checked_name(at: &mut At<'_, '_, '_>, name: &str, pos: Pos) -> Option<String> {
    match RESOURCE.check(name) {
        Ok(()) => Some(name.to_owned()),
        Err(message) => {
            at.report.at(pos, at.node, message);
            None
        }
    }
}

/// `priority: N`.
pub(crate) fn priority(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> i32 {
    whole_number(at, "priority", v, PRIORITY_RANGE)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0)
}

/// `concurrency: {limit: N, on_conflict: queue | cancel_new | cancel_running}`.
pub(crate) fn concurrency(at: &mut At<'_, '_, '_>, v: &Node<'_>) -> Option<Concurrency> {
    let entries = match &v.value {
        Value::Map(entries) => entries,
        _ if v.is_null() => return None,
        _ => {
            at.wrong_type("concurrency", "a mapping such as {limit: 1}", v);
            return None;
        }
    };
    let mut limit = None;
    let mut on_conflict = OnConflict::Queue;
    let mut has_limit = false;
    for e in at.unique(entries, "key") {
        let value = &*e.value;
        match e.key.as_ref() {
            "limit" => {
                has_limit = true;
                limit = whole_number(at, "limit", value, 1..=MAX_COUNT);
            }
            "on_conflict" => match value.text() {
                Some("queue") => on_conflict = OnConflict::Queue,
                Some("cancel_new") => on_conflict = OnConflict::CancelNew,
                Some("cancel_running") => on_conflict = OnConflict::CancelRunning,
                Some(text) => {
                    let hint = match suggest(text, OnConflict::NAMES.iter().copied()) {
                        Some(close) => format!("did you mean {close:?}?"),
                        None => format!("use one of {}", OnConflict::NAMES.join(", ")),
                    };
                    at.report.at(
                        value.pos,
                        at.node,
                        format!("unknown \"on_conflict\" {}; {hint}", quote(text)),
                    );
                }
                None => at.wrong_type(
                    "on_conflict",
                    "one of queue, cancel_new, cancel_running",
                    value,
                ),
            },
            _ => at.unknown_key(e, CONCURRENCY_KEYS, " in \"concurrency\""),
        }
    }
    if !has_limit {
        at.report.at(
            v.pos,
            at.node,
            "\"concurrency\" needs \"limit\", such as {limit: 1}",
        );
    }
    Some(Concurrency {
        limit: u32::try_from(limit?).ok()?,
        on_conflict,
    })
}
