//! Cases for the audit trail: entries come back newest first on the store's clock, page by
//! id, filter by actor and action, and bad entries and queries are refused.

use baton_api::{AUDIT_NAME_MAX, AuditAction, AuditEntry, AuditPage, AuditQuery, format_time};
use serde_json::json;

use super::Harness;
use crate::{Store, StoreError};

async fn list(s: &dyn Store, query: AuditQuery) -> AuditPage {
    s.list_audit(&query).await.expect("list the audit trail")
}

fn ids(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.id).collect()
}

/// Entries are kept with the store's time, their action's name and their detail, and come
/// back newest first.
pub async fn audit_lists_newest_first_on_the_store_clock(h: Harness) {
    let s = &*h.store;
    assert_eq!(list(s, AuditQuery::default()).await.entries, []);
    let t0 = h.clock.now();
    let first = s
        .record_audit(
            "admin",
            AuditAction::WorkflowApply,
            "deploy",
            &json!({"version": 2}),
        )
        .await
        .expect("record");
    h.clock.advance(1_500);
    let second = s
        .record_audit("ci-bot", AuditAction::RunCreate, "r-1", &json!({}))
        .await
        .expect("record");
    h.clock.advance(60_000);
    let third = s
        .record_audit(
            "admin",
            AuditAction::SecretSet,
            "db-password",
            &json!({"nested": {"a": [1, "two", null]}, "note": "line\nbreak"}),
        )
        .await
        .expect("record");
    assert!(first < second && second < third, "{first} {second} {third}");

    let page = list(s, AuditQuery::default()).await;
    assert_eq!(page.next_before, None);
    assert_eq!(ids(&page.entries), [third, second, first]);
    let e = &page.entries[0];
    assert_eq!(e.at, format_time(t0 + 61_500));
    assert_eq!(
        (e.actor.as_str(), e.action.as_str(), e.target.as_str()),
        ("admin", "secret.set", "db-password")
    );
    assert_eq!(
        e.detail,
        json!({"nested": {"a": [1, "two", null]}, "note": "line\nbreak"})
    );
    let e = &page.entries[1];
    assert_eq!(e.at, format_time(t0 + 1_500));
    assert_eq!(
        (e.actor.as_str(), e.action.as_str()),
        ("ci-bot", "run.create")
    );
    assert_eq!(e.detail, json!({}));
    assert_eq!(page.entries[2].at, format_time(t0));
    assert_eq!(page.entries[2].detail, json!({"version": 2}));
}

/// `limit` cuts a page; `next_before` leads to the next older page and is absent on the
/// last one, even when the last page is exactly full.
pub async fn audit_pages_by_id(h: Harness) {
    let s = &*h.store;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            s.record_audit(
                "admin",
                AuditAction::RunCancel,
                &format!("r-{i}"),
                &json!({}),
            )
            .await
            .expect("record"),
        );
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = list(
            s,
            AuditQuery {
                limit: Some(3),
                before,
                ..AuditQuery::default()
            },
        )
        .await;
        pages += 1;
        assert!(page.entries.len() <= 3, "{page:?}");
        seen.extend(ids(&page.entries));
        match page.next_before {
            Some(next) => {
                assert_eq!(Some(next), page.entries.last().map(|e| e.id));
                before = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made);

    // A page that ends exactly at the oldest entry says there is nothing older.
    let page = list(
        s,
        AuditQuery {
            limit: Some(7),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(ids(&page.entries), made);
    assert_eq!(page.next_before, None);
    let page = list(
        s,
        AuditQuery {
            limit: Some(6),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(page.next_before, Some(made[5]));

    // `before` an id that was never handed out still pages from below it.
    let page = list(
        s,
        AuditQuery {
            before: Some(made[0] + 1_000),
            limit: Some(1),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(ids(&page.entries), [made[0]]);
    let page = list(
        s,
        AuditQuery {
            before: Some(made[6]),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(page.entries, []);
    assert_eq!(page.next_before, None);
}

/// `actor` and `action` filter alone and together, and page within the filter.
pub async fn audit_filters_by_actor_and_action(h: Harness) {
    let s = &*h.store;
    let rows = [
        ("admin", AuditAction::TokenCreate, "ci-bot"),
        ("ci-bot", AuditAction::RunCreate, "r-1"),
        ("admin", AuditAction::RunCancel, "r-1"),
        ("ci-bot", AuditAction::RunCreate, "r-2"),
        ("admin", AuditAction::TokenRevoke, "ci-bot"),
        ("ci-bot-2", AuditAction::RunCreate, "r-3"),
    ];
    let mut made = Vec::new();
    for (actor, action, target) in rows {
        made.push(
            s.record_audit(actor, action, target, &json!({}))
                .await
                .expect("record"),
        );
    }
    let query = |actor: Option<&str>, action: Option<&str>| AuditQuery {
        actor: actor.map(str::to_owned),
        action: action.map(str::to_owned),
        ..AuditQuery::default()
    };
    let by_admin = list(s, query(Some("admin"), None)).await;
    assert_eq!(ids(&by_admin.entries), [made[4], made[2], made[0]]);
    assert!(by_admin.entries.iter().all(|e| e.actor == "admin"));

    let creates = list(s, query(None, Some("run.create"))).await;
    assert_eq!(ids(&creates.entries), [made[5], made[3], made[1]]);

    let both = list(s, query(Some("ci-bot"), Some("run.create"))).await;
    assert_eq!(ids(&both.entries), [made[3], made[1]]);
    assert_eq!(both.entries[0].target, "r-2");

    let none = list(s, query(Some("admin"), Some("run.create"))).await;
    assert_eq!(none.entries, []);
    assert_eq!(list(s, query(Some("nobody"), None)).await.entries, []);

    // Paging stays inside the filter.
    let first = list(
        s,
        AuditQuery {
            limit: Some(1),
            ..query(Some("ci-bot"), None)
        },
    )
    .await;
    assert_eq!(ids(&first.entries), [made[3]]);
    let rest = list(
        s,
        AuditQuery {
            limit: Some(1),
            before: first.next_before,
            ..query(Some("ci-bot"), None)
        },
    )
    .await;
    assert_eq!(ids(&rest.entries), [made[1]]);
    assert_eq!(rest.next_before, None);
}

/// Bad entries and queries are `Invalid` and change nothing; long names are cut, not
/// refused; the largest page is 1000.
pub async fn audit_refuses_bad_entries_and_queries(h: Harness) {
    let s = &*h.store;
    let invalid = |r: Result<i64, StoreError>| match r {
        Err(StoreError::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    };
    invalid(
        s.record_audit("", AuditAction::RunCancel, "r", &json!({}))
            .await,
    );
    invalid(
        s.record_audit("admin", AuditAction::RunCancel, "r", &json!("text"))
            .await,
    );
    let big = json!({"blob": "x".repeat(16 * 1024)});
    let message = invalid(
        s.record_audit("admin", AuditAction::SecretSet, "s", &big)
            .await,
    );
    assert!(message.contains("16384"), "{message}");
    assert_eq!(list(s, AuditQuery::default()).await.entries, []);

    let long = "é".repeat(AUDIT_NAME_MAX);
    s.record_audit(&long, AuditAction::SecretDelete, &long, &json!({}))
        .await
        .expect("a long name is cut, not refused");
    let page = list(s, AuditQuery::default()).await;
    assert_eq!(page.entries.len(), 1);
    let e = &page.entries[0];
    assert_eq!(e.actor.len(), AUDIT_NAME_MAX);
    assert_eq!(e.target, e.actor);
    assert!(long.starts_with(&e.actor));

    for (query, needle) in [
        (
            AuditQuery {
                limit: Some(0),
                ..AuditQuery::default()
            },
            "limit 0",
        ),
        (
            AuditQuery {
                limit: Some(1001),
                ..AuditQuery::default()
            },
            "limit 1001",
        ),
        (
            AuditQuery {
                action: Some("run.explode".into()),
                ..AuditQuery::default()
            },
            "\"run.explode\"",
        ),
    ] {
        match s.list_audit(&query).await {
            Err(StoreError::Invalid(message)) => {
                assert!(message.contains(needle), "{needle}: {message}");
            }
            other => panic!("{query:?}: expected Invalid, got {other:?}"),
        }
    }

    for i in 0..1_001 {
        s.record_audit(
            "bulk",
            AuditAction::RunCreate,
            &format!("r-{i}"),
            &json!({}),
        )
        .await
        .expect("record");
    }
    let page = list(
        s,
        AuditQuery {
            limit: Some(1000),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(page.entries.len(), 1000);
    assert!(page.next_before.is_some());
    let page = list(s, AuditQuery::default()).await;
    assert_eq!(page.entries.len(), 100, "the default page");
}
