//! Readers for the kinds of values the format is made of: key sets, string maps, name
//! lists, durations and free-form `with` arguments. Each reports what it refuses.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map as JsonMap, Number, Value as Json};

use super::names::{ENV_NAME, NameRule, SECRET_NAME, quote, suggest};
use super::report::Report;
use super::scalar::Typed;
use super::tree::{Entry, Node, Value};

/// Where a value sits, for messages: the report and the node (if any) it belongs to.
pub(crate) struct At<'r, 'f, 'n> {
    pub(crate) report: &'r mut Report<'f>,
    pub(crate) node: Option<&'n str>,
}

impl At<'_, '_, '_> {
    /// Reports that `key`'s value has the wrong type.
    pub(crate) fn wrong_type(&mut self, key: &str, wanted: &str, value: &Node<'_>) {
        self.report.at(
            value.pos,
            self.node,
            format!("{key:?} must be {wanted}, found {}", value.kind()),
        );
    }

    /// The entries of a mapping with each key once: later duplicates are reported and dropped.
    pub(crate) fn unique<'e, 'a>(
        &mut self,
        entries: &'e [Entry<'a>],
        what: &str,
    ) -> Vec<&'e Entry<'a>> {
        let mut seen = HashSet::with_capacity(entries.len());
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if seen.insert(e.key.as_ref()) {
                out.push(e);
            } else {
                self.report.at(
                    e.key_pos,
                    self.node,
                    format!("duplicate {what} {}", quote(&e.key)),
                );
            }
        }
        out
    }

    /// Reports a key that is not one of `allowed`, with a suggestion when one is close.
    ///
    /// `within` names the enclosing key for messages (` in "retry"`), or is empty.
    pub(crate) fn unknown_key(&mut self, entry: &Entry<'_>, allowed: &[&str], within: &str) {
        let key = entry.key.as_ref();
        let message = if key == "<<" {
            "merge keys (\"<<\") are not supported; use an alias for a whole value instead"
                .to_owned()
        } else if let Some(close) = suggest(key, allowed.iter().copied()) {
            format!(
                "unknown key {}{within}; did you mean {close:?}?",
                quote(key)
            )
        } else {
            format!(
                "unknown key {}{within}; allowed keys are {}",
                quote(key),
                allowed.join(", ")
            )
        };
        self.report.at(entry.key_pos, self.node, message);
    }

    /// A string-valued map such as `env` or `selector`; empty when it is not a mapping.
    pub(crate) fn string_map(
        &mut self,
        key: &str,
        value: &Node<'_>,
        rule: &NameRule,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let entries = match &value.value {
            Value::Map(entries) => entries,
            _ if value.is_null() => return out,
            _ => {
                self.wrong_type(key, "a mapping", value);
                return out;
            }
        };
        for e in self.unique(entries, "key") {
            if let Err(message) = rule.check(&e.key) {
                self.report.at(e.key_pos, self.node, message);
                continue;
            }
            match e.value.text() {
                Some(text) => {
                    out.insert(e.key.to_string(), text.to_owned());
                }
                None if e.value.is_null() => self.report.at(
                    e.value.pos,
                    self.node,
                    format!(
                        "{key} {} has no value; write \"\" for an empty string",
                        quote(&e.key)
                    ),
                ),
                None => self.report.at(
                    e.value.pos,
                    self.node,
                    format!(
                        "{key} {} must be a string, found {}",
                        quote(&e.key),
                        e.value.kind()
                    ),
                ),
            }
        }
        out
    }

    /// `env`: each variable a string, or `{secret: NAME}` for a stored secret. Returns the
    /// plain values and the secret references (variable to secret name) apart.
    pub(crate) fn env_map(
        &mut self,
        value: &Node<'_>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let (mut plain, mut secrets) = (BTreeMap::new(), BTreeMap::new());
        let entries = match &value.value {
            Value::Map(entries) => entries,
            _ if value.is_null() => return (plain, secrets),
            _ => {
                self.wrong_type("env", "a mapping", value);
                return (plain, secrets);
            }
        };
        for e in self.unique(entries, "key") {
            if let Err(message) = ENV_NAME.check(&e.key) {
                self.report.at(e.key_pos, self.node, message);
                continue;
            }
            if let Some(text) = e.value.text() {
                plain.insert(e.key.to_string(), text.to_owned());
                continue;
            }
            let Value::Map(inner) = &e.value.value else {
                let message = if e.value.is_null() {
                    format!(
                        "env {} has no value; write \"\" for an empty string",
                        quote(&e.key)
                    )
                } else {
                    format!(
                        "env {} must be a string or {{secret: NAME}}, found {}",
                        quote(&e.key),
                        e.value.kind()
                    )
                };
                self.report.at(e.value.pos, self.node, message);
                continue;
            };
            let mut name = None;
            for inner in self.unique(inner, "key") {
                if inner.key != "secret" {
                    self.unknown_key(inner, &["secret"], " of a secret reference");
                    continue;
                }
                match inner.value.text() {
                    Some(text) => match SECRET_NAME.check(text) {
                        Ok(()) => name = Some(text.to_owned()),
                        Err(message) => self.report.at(inner.value.pos, self.node, message),
                    },
                    None => self.wrong_type("secret", "a secret's name", &inner.value),
                }
            }
            match name {
                Some(name) => {
                    secrets.insert(e.key.to_string(), name);
                }
                None if !inner.iter().any(|i| i.key == "secret") => self.report.at(
                    e.value.pos,
                    self.node,
                    format!("env {} needs {{secret: NAME}}", quote(&e.key)),
                ),
                None => {}
            }
        }
        (plain, secrets)
    }

    /// A list of strings; a single string counts as a list of one when `one_ok`.
    ///
    /// Returns each text with its node, for the caller's own checks.
    pub(crate) fn string_list<'n, 'a>(
        &mut self,
        key: &str,
        value: &'n Node<'a>,
        wanted: &str,
        one_ok: bool,
    ) -> Vec<(&'n str, &'n Node<'a>)> {
        match &value.value {
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item.text() {
                        Some(text) => out.push((text, &**item)),
                        None => self.report.at(
                            item.pos,
                            self.node,
                            format!(
                                "{key:?} must be {wanted}, found {} in the list",
                                item.kind()
                            ),
                        ),
                    }
                }
                out
            }
            _ if value.is_null() => Vec::new(),
            Value::Scalar(_) if one_ok => value.text().map(|t| (t, value)).into_iter().collect(),
            _ => {
                self.wrong_type(key, wanted, value);
                Vec::new()
            }
        }
    }

    /// A duration such as `30s`, in milliseconds.
    pub(crate) fn duration(&mut self, key: &str, value: &Node<'_>) -> Option<u64> {
        let Some(text) = value.text() else {
            self.wrong_type(key, "a duration such as 30s, 10m or 1h30m", value);
            return None;
        };
        match crate::duration::parse_duration(text) {
            Ok(ms) => Some(ms),
            Err(reason) => {
                self.report
                    .at(value.pos, self.node, format!("{key:?}: {reason}"));
                None
            }
        }
    }

    /// `with:` arguments as JSON: the YAML 1.2 core schema types plain scalars.
    ///
    /// Recursion is bounded: the tree is at most `MAX_DEPTH` levels deep, aliases included.
    pub(crate) fn json(&mut self, value: &Node<'_>) -> Json {
        match &value.value {
            Value::Scalar(s) => match s.typed() {
                Typed::Null => Json::Null,
                Typed::Bool(b) => Json::Bool(b),
                Typed::Int(i) => Json::from(i),
                Typed::UInt(u) => Json::from(u),
                Typed::Float(f) => match Number::from_f64(f) {
                    Some(n) => Json::Number(n),
                    None => {
                        self.report.at(
                            value.pos,
                            self.node,
                            format!(
                                "{} is not a json number; quote it to pass a string",
                                quote(&s.text)
                            ),
                        );
                        Json::Null
                    }
                },
                Typed::Str(t) => Json::String(t.to_owned()),
            },
            Value::Seq(items) => Json::Array(items.iter().map(|i| self.json(i)).collect()),
            Value::Map(entries) => {
                let mut out = JsonMap::new();
                for e in self.unique(entries, "key") {
                    let v = self.json(&e.value);
                    out.insert(e.key.to_string(), v);
                }
                Json::Object(out)
            }
        }
    }
}
