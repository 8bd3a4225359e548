//! The auth matrix: every route of the access table, called with every kind of caller,
//! answers exactly 401 (not authenticated), 403 (not allowed) or gets through.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use baton_api::Role;
use baton_server::access::{Access, ROUTES, decide};
use baton_store::Principal;
use serde_json::{Value, json};

use crate::support::{App, code};

/// A concrete URI for a route pattern: every parameter gets a harmless value.
fn uri(pattern: &str) -> String {
    let path: Vec<String> = pattern
        .split('/')
        .map(|seg| match seg {
            "{*path}" => "f".to_owned(),
            "{attempt}" | "{id}" if pattern.starts_with("/agent/") => "1".to_owned(),
            "{attempt}" | "{version}" => "1".to_owned(),
            s if s.starts_with('{') => "nobody".to_owned(),
            s => s.to_owned(),
        })
        .collect();
    format!("/api/v1{}", path.join("/"))
}

/// A body each route takes without side effects that matter here (most are refused as
/// incomplete once past authorization, which is all this test needs).
fn body(method: &Method, pattern: &str) -> Option<Value> {
    match (method.as_str(), pattern) {
        ("POST", "/agent/claim") => Some(json!({"max": 0, "wait_ms": 0})),
        ("POST", "/agent/heartbeat") => Some(json!({"attempts": []})),
        ("GET" | "DELETE", _) | ("POST", "/agent/deregister") => None,
        _ => Some(json!({})),
    }
}

async fn token(app: &App, name: &str, role: Role, expires_in_secs: Option<u64>) -> String {
    let (status, created) = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(app.admin()),
            Some(json!({"name": name, "role": role, "expires_in_secs": expires_in_secs})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("baton_user_"), "{token}");
    assert!(token.starts_with(created["info"]["prefix"].as_str().unwrap()));
    token
}

/// Calls every route with `token`; routes `allowed` must get through authorization,
/// the others must answer `refused`.
async fn walk(
    app: &App,
    who: &str,
    token: Option<&str>,
    allowed: impl Fn(Access) -> bool,
    refused: StatusCode,
) {
    // Deregistering ends an agent's token: it goes last.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|(m, p, _)| *m == Method::POST && *p == "/agent/deregister");
    for (method, pattern, access) in routes {
        let (status, answer) = app
            .call(method.clone(), &uri(pattern), token, body(method, pattern))
            .await;
        if allowed(*access) {
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{who}: {method} {pattern} refused: {status} {answer}"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {pattern}");
            assert_ne!(
                answer["error"]["message"], "no such route",
                "{method} {pattern} is in the table but not routed"
            );
        } else {
            assert_eq!(status, refused, "{who}: {method} {pattern}: {answer}");
            let want = if refused == StatusCode::UNAUTHORIZED {
                "unauthorized"
            } else {
                "forbidden"
            };
            assert_eq!(code(&answer), want, "{who}: {method} {pattern}");
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_caller_exactly() {
    let app = App::new().await;
    let viewer = token(&app, "viewer-1", Role::Viewer, None).await;
    let operator = token(&app, "operator-1", Role::Operator, None).await;
    let admin = token(&app, "admin-1", Role::Admin, None).await;
    let revoked = token(&app, "revoked-1", Role::Admin, None).await;
    let expiring = token(&app, "expiring-1", Role::Admin, Some(1)).await;
    let agent = app.register("matrix").await;

    // Revoked: refused on its very next request.
    let (status, _) = app
        .call(Method::GET, "/api/v1/runs", Some(&revoked), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/tokens/revoked-1/revoke",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Expired: polled until its second has passed (it worked before).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = app
            .call(Method::GET, "/api/v1/runs", Some(&expiring), None)
            .await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let nobody = |_| false;
    walk(&app, "no token", None, nobody, StatusCode::UNAUTHORIZED).await;
    walk(
        &app,
        "garbage",
        Some("garbage"),
        nobody,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown = format!("baton_user_{}", "0".repeat(64));
    walk(
        &app,
        "unknown",
        Some(&unknown),
        nobody,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    walk(
        &app,
        "revoked",
        Some(&revoked),
        nobody,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    walk(
        &app,
        "expired",
        Some(&expiring),
        nobody,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let user = |role| Principal::User {
        name: "x".into(),
        role,
    };
    let agent_principal = Principal::Agent {
        agent_id: agent.id.clone(),
    };
    let callers: [(&str, &str, Principal); 6] = [
        ("viewer", &viewer, user(Role::Viewer)),
        ("operator", &operator, user(Role::Operator)),
        ("named admin", &admin, user(Role::Admin)),
        ("admin file", app.admin(), Principal::admin()),
        ("enrollment", app.enroll(), Principal::Enroll),
        ("agent", &agent.token, agent_principal),
    ];
    for (who, token, principal) in callers {
        walk(
            &app,
            who,
            Some(token),
            |access| decide(access, &principal).is_ok(),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
}

#[tokio::test]
async fn the_table_spells_out_what_each_role_may_do() {
    let needs = |m: Method, p: &str| {
        ROUTES
            .iter()
            .find(|(rm, rp, _)| *rm == m && *rp == p)
            .map(|(_, _, a)| *a)
            .unwrap_or_else(|| panic!("{m} {p} is not in the table"))
    };
    assert_eq!(needs(Method::GET, "/runs"), Access::Role(Role::Viewer));
    assert_eq!(
        needs(Method::GET, "/runs/{id}/logs"),
        Access::Role(Role::Viewer)
    );
    assert_eq!(needs(Method::POST, "/runs"), Access::Role(Role::Operator));
    assert_eq!(
        needs(Method::POST, "/runs/{id}/cancel"),
        Access::Role(Role::Operator)
    );
    assert_eq!(
        needs(Method::POST, "/runs/{id}/retry"),
        Access::Role(Role::Operator)
    );
    assert_eq!(
        needs(Method::POST, "/workflows"),
        Access::Role(Role::Operator)
    );
    assert_eq!(needs(Method::POST, "/tokens"), Access::Role(Role::Admin));
    assert_eq!(
        needs(Method::PUT, "/secrets/{name}"),
        Access::Role(Role::Admin)
    );
    assert_eq!(needs(Method::GET, "/secrets"), Access::Role(Role::Admin));
    assert_eq!(needs(Method::GET, "/audit"), Access::Role(Role::Admin));
    assert_eq!(needs(Method::POST, "/agent/register"), Access::Enroll);
    assert_eq!(needs(Method::POST, "/agent/claim"), Access::Agent);
}

#[tokio::test]
async fn tokens_are_listed_without_the_token_and_names_are_checked() {
    let app = App::new().await;
    let secret = token(&app, "ci.bot", Role::Operator, Some(86_400)).await;
    let (status, list) = app
        .call(Method::GET, "/api/v1/tokens", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.to_string().contains(&secret), "{list}");
    assert_eq!(list[0]["name"], "ci.bot");
    assert_eq!(list[0]["role"], "operator");
    assert_eq!(list[0]["status"], "active");
    assert_eq!(list[0]["created_by"], "admin");
    assert!(list[0]["expires_at"].is_string());

    for (body, wanted) in [
        (json!({"name": "Bad Name", "role": "viewer"}), "token name"),
        (
            json!({"name": "admin", "role": "viewer"}),
            "admin token file",
        ),
        (
            json!({"name": "x", "role": "root"}),
            "`viewer`, `operator`, `admin`",
        ),
        (json!({"name": "x", "role": "viewer", "extra": 1}), "extra"),
        (
            json!({"name": "x", "role": "viewer", "expires_in_secs": 0}),
            "at least 1",
        ),
        (json!({"name": "ci.bot", "role": "viewer"}), "exists"),
    ] {
        let (status, answer) = app
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(app.admin()),
                Some(body.clone()),
            )
            .await;
        assert!(status.is_client_error(), "{body}: {status} {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(wanted), "{body}: {message}");
    }
    // What a named token does is recorded under its name.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/runs/nobody/cancel",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = app
        .call(Method::GET, "/api/v1/audit", Some(app.admin()), None)
        .await;
    let first = &audit["entries"][0];
    assert_eq!(first["action"], "token.create", "{audit}");
    assert_eq!(first["actor"], "admin");
    assert_eq!(first["target"], "ci.bot");
}
