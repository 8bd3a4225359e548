//! The audit trail's rules, shared by both backends: what a record may hold, and how a
//! page is cut from the rows a backend read.

use baton_api::{
    AUDIT_DETAIL_MAX, AUDIT_NAME_MAX, AuditAction, AuditEntry, AuditPage, AuditQuery, format_time,
};

use crate::{Result, StoreError};

/// A record as the backends write it: checked, cut to size, detail encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) actor: String,
    pub(crate) action: &'static str,
    pub(crate) target: String,
    /// Compact JSON of an object.
    pub(crate) detail: String,
}

/// Checks a record before it is written.
///
/// Long actors and targets are cut rather than refused: an entry with a shortened name is
/// worth more than none. An empty actor (nobody to hold to account) and a detail that is
/// not a JSON object or is too large are refused: both come from the server's own code, so
/// they are bugs to surface, not input to tolerate.
pub(crate) fn record(
    actor: &str,
    action: AuditAction,
    target: &str,
    detail: &serde_json::Value,
) -> Result<Record> {
    if actor.is_empty() {
        return Err(StoreError::Invalid(
            "an audit entry needs an actor".to_owned(),
        ));
    }
    if !detail.is_object() {
        return Err(StoreError::Invalid(
            "an audit entry's detail must be a JSON object".to_owned(),
        ));
    }
    let detail = serde_json::to_string(detail)
        .map_err(|e| StoreError::backend("encoding an audit entry's detail", e))?;
    if detail.len() > AUDIT_DETAIL_MAX {
        return Err(StoreError::Invalid(format!(
            "an audit entry's detail is {} bytes of JSON: at most {AUDIT_DETAIL_MAX}",
            detail.len()
        )));
    }
    Ok(Record {
        actor: cut(actor).to_owned(),
        action: action.as_str(),
        target: cut(target).to_owned(),
        detail,
    })
}

/// `text` cut to [`AUDIT_NAME_MAX`] bytes at a character boundary.
fn cut(text: &str) -> &str {
    if text.len() <= AUDIT_NAME_MAX {
        return text;
    }
    let mut end = AUDIT_NAME_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A checked query: how many rows to read (one more than the page, to tell whether an
/// older page exists) and the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    /// Entries in the page.
    pub(crate) page: u32,
    /// Only ids below this; `i64::MAX` when the query names none.
    pub(crate) before: i64,
    pub(crate) actor: Option<String>,
    pub(crate) action: Option<String>,
}

impl Query {
    /// Checks an API query; a bad one is `Invalid` (the API answers 400).
    pub(crate) fn new(q: &AuditQuery) -> Result<Query> {
        q.check().map_err(StoreError::Invalid)?;
        let page = q.page_size().map_err(StoreError::Invalid)?;
        Ok(Query {
            page,
            before: q.before.unwrap_or(i64::MAX),
            actor: q.actor.clone(),
            action: q.action.clone(),
        })
    }

    /// Rows to read: the page and one more.
    pub(crate) fn rows(&self) -> i64 {
        i64::from(self.page) + 1
    }
}

/// One stored row: id, time (ms), actor, action, target, detail JSON.
pub(crate) type Row = (i64, i64, String, String, String, String);

/// The page of rows read newest first, at most [`Query::rows`] of them.
pub(crate) fn page(query: &Query, rows: Vec<Row>) -> Result<AuditPage> {
    let more = rows.len() > query.page as usize;
    let mut entries = Vec::with_capacity(rows.len().min(query.page as usize));
    for (id, at, actor, action, target, detail) in rows.into_iter().take(query.page as usize) {
        entries.push(AuditEntry {
            id,
            at: format_time(at),
            actor,
            action,
            target,
            detail: serde_json::from_str(&detail)
                .map_err(|e| StoreError::backend("decoding an audit entry's detail", e))?,
        });
    }
    let next_before = if more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage {
        entries,
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let long = format!("a{}", "é".repeat(200));
        let r = record(&long, AuditAction::RunCancel, &long, &json!({})).unwrap();
        assert_eq!(r.actor.len(), AUDIT_NAME_MAX - 1);
        assert!(long.starts_with(&r.actor));
        assert_eq!(r.target, r.actor);
        let short = record("admin", AuditAction::RunCancel, "r1", &json!({})).unwrap();
        assert_eq!(
            (short.actor.as_str(), short.target.as_str()),
            ("admin", "r1")
        );
    }

    #[test]
    fn bad_records_are_refused() {
        let refuse = |actor: &str, detail: serde_json::Value| {
            record(actor, AuditAction::SecretSet, "s", &detail)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(refuse("", json!({})), "an audit entry needs an actor");
        assert_eq!(
            refuse("admin", json!([1])),
            "an audit entry's detail must be a JSON object"
        );
        let big = json!({ "x": "y".repeat(AUDIT_DETAIL_MAX) });
        assert!(refuse("admin", big).contains("at most 16384"));
    }
}
