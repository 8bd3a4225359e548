//! Conformance cases: named tokens with roles, and sealed secrets.

use baton_api::Role;

use super::Harness;
use crate::{NewToken, Principal, SealedSecret, StoreError};

fn token(name: &str, role: Role, hash: &str, expires_in_ms: Option<u64>) -> NewToken {
    NewToken {
        name: name.into(),
        role,
        hash: hash.into(),
        prefix: format!("baton_user_{}", &hash[..2]),
        expires_in_ms,
        created_by: "admin".into(),
    }
}

/// Named tokens authenticate with their role until revoked or expired; names are unique
/// among live tokens and free again once revoked.
pub async fn named_tokens_live_until_revoked_or_expired(h: Harness) {
    let s = &*h.store;
    let doc = s
        .create_token(&token("ci", Role::Operator, "h1", None))
        .await
        .expect("create");
    assert_eq!((doc.name.as_str(), doc.role), ("ci", Role::Operator));
    assert_eq!(
        (doc.status.as_str(), doc.created_by.as_str()),
        ("active", "admin")
    );
    assert_eq!(doc.expires_at, None);
    assert_eq!(
        s.authenticate("h1").await.expect("auth"),
        Some(Principal::User {
            name: "ci".into(),
            role: Role::Operator
        })
    );
    assert!(matches!(
        s.create_token(&token("ci", Role::Viewer, "h2", None)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        matches!(
            s.create_token(&token("other", Role::Viewer, "h1", None))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a hash is never stored twice"
    );

    s.create_token(&token("short", Role::Viewer, "h3", Some(60_000)))
        .await
        .expect("create expiring");
    assert!(s.authenticate("h3").await.expect("auth").is_some());
    h.clock.advance(60_000);
    assert_eq!(s.authenticate("h3").await.expect("auth"), None, "expired");

    let revoked = s.revoke_token("ci").await.expect("revoke");
    assert_eq!(revoked.status, "revoked");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(s.authenticate("h1").await.expect("auth"), None, "revoked");
    assert!(matches!(
        s.revoke_token("ci").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.revoke_token("nobody").await,
        Err(StoreError::NotFound(_))
    ));
    s.create_token(&token("ci", Role::Admin, "h4", None))
        .await
        .expect("a revoked name is free again");

    let listed = s.list_tokens().await.expect("list");
    let shown: Vec<(&str, &str)> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.status.as_str()))
        .collect();
    assert_eq!(listed.len(), 3, "{shown:?}");
    assert!(shown.contains(&("ci", "active")), "{shown:?}");
    assert!(shown.contains(&("ci", "revoked")), "{shown:?}");
    assert!(shown.contains(&("short", "expired")), "{shown:?}");
}

fn sealed(name: &str, byte: u8, workflows: Option<Vec<String>>) -> SealedSecret {
    SealedSecret {
        name: name.into(),
        nonce: vec![byte; 12],
        sealed: vec![byte, 0, 255, byte],
        workflows,
    }
}

/// Secrets are stored, replaced, listed without values, read back sealed and removed.
pub async fn secrets_are_kept_sealed_and_replaced_by_name(h: Harness) {
    let s = &*h.store;
    let first = s.put_secret(&sealed("B_KEY", 1, None)).await.expect("put");
    assert_eq!(first.name, "B_KEY");
    assert_eq!(first.created_at, first.updated_at);
    s.put_secret(&sealed("A_KEY", 2, Some(vec!["deploy".into()])))
        .await
        .expect("put");
    h.clock.advance(1_000);
    let replaced = s
        .put_secret(&sealed("B_KEY", 3, Some(vec!["x".into(), "y".into()])))
        .await
        .expect("replace");
    assert_eq!(replaced.created_at, first.created_at);
    assert_ne!(replaced.updated_at, first.updated_at);

    let listed = s.list_secrets().await.expect("list");
    let names: Vec<&str> = listed.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["A_KEY", "B_KEY"]);
    assert_eq!(listed[1].workflows, Some(vec!["x".into(), "y".into()]));

    let all = s.sealed_secrets(None).await.expect("all");
    assert_eq!(
        all,
        vec![
            sealed("A_KEY", 2, Some(vec!["deploy".into()])),
            sealed("B_KEY", 3, Some(vec!["x".into(), "y".into()]))
        ]
    );
    let some = s
        .sealed_secrets(Some(&["B_KEY".into(), "NONE".into()]))
        .await
        .expect("some");
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].nonce, vec![3; 12]);

    s.delete_secret("A_KEY").await.expect("delete");
    assert!(matches!(
        s.delete_secret("A_KEY").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.list_secrets().await.expect("list").len(), 1);

    assert_eq!(
        s.setting_or_insert("k", b"first").await.expect("setting"),
        b"first"
    );
    assert_eq!(
        s.setting_or_insert("k", b"second").await.expect("setting"),
        b"first",
        "the first value stays"
    );
}

/// A key rotation replaces every sealed value and the check at once; scopes stay.
pub async fn resealing_replaces_values_and_the_setting(h: Harness) {
    let s = &*h.store;
    s.put_secret(&sealed("A", 1, Some(vec!["w".into()])))
        .await
        .expect("put");
    s.put_secret(&sealed("B", 2, None)).await.expect("put");
    s.setting_or_insert("check", b"old").await.expect("setting");
    s.reseal_secrets(
        &[sealed("A", 7, None), sealed("B", 8, None)],
        "check",
        b"new",
    )
    .await
    .expect("reseal");
    let all = s.sealed_secrets(None).await.expect("all");
    assert_eq!(all[0], sealed("A", 7, Some(vec!["w".into()])), "scope kept");
    assert_eq!(all[1].sealed, sealed("B", 8, None).sealed);
    assert_eq!(
        s.setting_or_insert("check", b"other")
            .await
            .expect("setting"),
        b"new"
    );
}
