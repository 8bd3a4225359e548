//! `GET /api/v1/audit`: entries written through the store, read by an admin a page at a
//! time; bad queries, other tokens and no token are refused.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use baton_api::AuditAction;
use baton_server::{AppState, ServerConfig, ServerTokens, router};
use baton_store::Store;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::support::{code, json_request, parse, send};

/// A router and the store behind it, so a test can record entries the way routes will.
struct Audited {
    _dir: TempDir,
    tokens: ServerTokens,
    store: Arc<dyn Store>,
    router: Router,
}

impl Audited {
    async fn new() -> Audited {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::new(dir.path().join("data"));
        let (state, tokens) = AppState::open(&config, CancellationToken::new())
            .await
            .unwrap();
        Audited {
            _dir: dir,
            tokens,
            store: state.store().clone(),
            router: router(state),
        }
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (status, _, body) = send(
            self.router.clone(),
            json_request(Method::GET, uri, token, None),
        )
        .await;
        (status, parse(&body))
    }

    async fn admin_get(&self, uri: &str) -> (StatusCode, Value) {
        self.get(uri, Some(self.tokens.admin())).await
    }
}

fn ids(page: &Value) -> Vec<i64> {
    page["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {page}"))
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn admin_reads_entries_newest_first_and_pages() {
    let app = Audited::new().await;
    let (status, page) = app.admin_get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page, json!({"entries": []}));

    let mut made = Vec::new();
    for (actor, action, target) in [
        ("admin", AuditAction::WorkflowApply, "deploy"),
        ("ci-bot", AuditAction::RunCreate, "r-1"),
        ("admin", AuditAction::RunCancel, "r-1"),
        ("ci-bot", AuditAction::RunCreate, "r-2"),
    ] {
        made.push(
            app.store
                .record_audit(actor, action, target, &json!({"why": "test"}))
                .await
                .unwrap(),
        );
    }
    made.reverse();

    let (status, page) = app.admin_get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), made);
    assert!(page.get("next_before").is_none(), "{page}");
    let newest = &page["entries"][0];
    assert_eq!(newest["actor"], "ci-bot");
    assert_eq!(newest["action"], "run.create");
    assert_eq!(newest["target"], "r-2");
    assert_eq!(newest["detail"], json!({"why": "test"}));
    assert!(
        newest["at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC: {newest}"
    );

    let (_, first) = app.admin_get("/api/v1/audit?limit=3").await;
    assert_eq!(ids(&first), made[..3]);
    let next = first["next_before"].as_i64().expect("an older page");
    let (_, rest) = app
        .admin_get(&format!("/api/v1/audit?limit=3&before={next}"))
        .await;
    assert_eq!(ids(&rest), made[3..]);
    assert!(rest.get("next_before").is_none(), "{rest}");

    let (_, filtered) = app
        .admin_get("/api/v1/audit?actor=ci-bot&action=run.create")
        .await;
    assert_eq!(ids(&filtered), [made[0], made[2]]);
    let (_, by_admin) = app.admin_get("/api/v1/audit?actor=admin").await;
    assert_eq!(ids(&by_admin), [made[1], made[3]]);
}

#[tokio::test]
async fn bad_queries_are_400_naming_the_problem() {
    let app = Audited::new().await;
    for (query, says) in [
        ("limit=0", "limit 0 is out of range"),
        ("limit=1001", "limit 1001 is out of range"),
        ("limit=ten", "limit"),
        ("before=yesterday", "before"),
        ("action=run.explode", "unknown audit action \"run.explode\""),
        ("who=admin", "unknown field `who`"),
    ] {
        let (status, body) = app.admin_get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(code(&body), "bad_request", "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{query}: {message}");
    }
}

#[tokio::test]
async fn only_the_admin_token_reads_the_trail() {
    let app = Audited::new().await;
    app.store
        .record_audit("admin", AuditAction::SecretSet, "db", &json!({}))
        .await
        .unwrap();

    let (status, body) = app.get("/api/v1/audit", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.get("/api/v1/audit", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = app.get("/api/v1/audit", Some(app.tokens.enroll())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");

    let (status, _, registered) = send(
        app.router.clone(),
        json_request(
            Method::POST,
            "/api/v1/agent/register",
            Some(app.tokens.enroll()),
            Some(json!({"name": "a1", "slots": 1, "functions": ["shell"]})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let agent_token = parse(&registered)["token"].as_str().unwrap().to_owned();
    let (status, body) = app.get("/api/v1/audit", Some(&agent_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.get("entries").is_none(), "{body}");
}
