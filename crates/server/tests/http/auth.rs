//! Who may call what.

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{App, code};

/// One route of each group, with a body it would accept.
fn admin_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/workflows", None),
        (
            Method::POST,
            "/api/v1/workflows",
            Some(json!({"filename": "x.yaml", "source": "name: x"})),
        ),
        (Method::GET, "/api/v1/workflows/x", None),
        (Method::GET, "/api/v1/workflows/x/versions/1", None),
        (Method::GET, "/api/v1/runs", None),
        (Method::POST, "/api/v1/runs", Some(json!({"workflow": "x"}))),
        (Method::GET, "/api/v1/runs/r", None),
        (Method::POST, "/api/v1/runs/r/cancel", None),
        (Method::POST, "/api/v1/runs/r/retry", Some(json!({}))),
        (Method::GET, "/api/v1/runs/r/logs", None),
        (Method::GET, "/api/v1/runs/r/artifacts", None),
        (Method::GET, "/api/v1/runs/r/artifacts/n/1/f", None),
        (Method::GET, "/api/v1/agents", None),
        (Method::GET, "/api/v1/resources", None),
    ]
}

fn agent_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/api/v1/agent/claim",
            Some(json!({"max": 0, "wait_ms": 0})),
        ),
        (
            Method::POST,
            "/api/v1/agent/heartbeat",
            Some(json!({"attempts": []})),
        ),
        (
            Method::POST,
            "/api/v1/agent/attempts/1/start",
            Some(json!({"fence": 1})),
        ),
        (
            Method::POST,
            "/api/v1/agent/attempts/1/report",
            Some(
                json!({"fence": 1, "outcome": {"state": "success", "reason": "exit", "exit_code": 0}}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/agent/attempts/1/logs",
            Some(json!({"fence": 1, "seq": 0, "stream": "stdout", "data": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/agent/reports",
            Some(
                json!({"reports": [{"attempt_id": 1, "fence": 1, "outcome": {"state": "success", "reason": "exit", "exit_code": 0}}], "want": 1}),
            ),
        ),
        (Method::POST, "/api/v1/agent/deregister", None),
    ]
}

fn register_route() -> (Method, &'static str, Option<Value>) {
    (
        Method::POST,
        "/api/v1/agent/register",
        Some(json!({"name": "a", "slots": 1, "functions": ["shell"]})),
    )
}

async fn expect(
    app: &App,
    token: Option<&str>,
    routes: &[(Method, &str, Option<Value>)],
    status: StatusCode,
    want: &str,
) {
    for (method, uri, body) in routes {
        let (got, answer) = app.call(method.clone(), uri, token, body.clone()).await;
        assert_eq!(got, status, "{method} {uri}: {answer}");
        assert_eq!(code(&answer), want, "{method} {uri}: {answer}");
    }
}

#[tokio::test]
async fn every_route_needs_a_token_it_knows() {
    let app = App::new().await;
    let mut all = admin_routes();
    all.extend(agent_routes());
    all.push(register_route());
    expect(&app, None, &all, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let unknown = format!("baton_admin_{}", "0".repeat(64));
    expect(
        &app,
        Some(&unknown),
        &all,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect(
        &app,
        Some("garbage"),
        &all,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn unauthorized_answers_name_the_bearer_scheme() {
    let app = App::new().await;
    let req = crate::support::json_request(Method::GET, "/api/v1/runs", None, None);
    let (status, headers, _) = app.send(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn each_token_kind_reaches_only_its_routes() {
    let app = App::new().await;
    let agent = app.register("kinds").await;

    expect(
        &app,
        Some(&agent.token),
        &admin_routes(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect(
        &app,
        Some(&agent.token),
        &[register_route()],
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    expect(
        &app,
        Some(app.admin()),
        &agent_routes(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect(
        &app,
        Some(app.admin()),
        &[register_route()],
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    expect(
        &app,
        Some(app.enroll()),
        &admin_routes(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect(
        &app,
        Some(app.enroll()),
        &agent_routes(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // The right kinds get past authentication (the answers are about the missing things).
    let (status, _) = app
        .call(Method::GET, "/api/v1/runs", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/agent/heartbeat",
            Some(&agent.token),
            Some(json!({"attempts": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_deregistered_agent_token_stops_working() {
    let app = App::new().await;
    let agent = app.register("leaver").await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/agent/deregister",
            Some(&agent.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    expect(
        &app,
        Some(&agent.token),
        &agent_routes(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let (_, agents) = app
        .call(Method::GET, "/api/v1/agents", Some(app.admin()), None)
        .await;
    let listed = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent.id.as_str());
    assert_eq!(
        listed.map(|a| &a["status"]),
        Some(&json!("gone")),
        "{agents}"
    );
}

#[tokio::test]
async fn health_needs_no_token() {
    let app = App::new().await;
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_routes_answer_with_the_error_body() {
    let app = App::new().await;
    let (status, body) = app
        .call(Method::GET, "/api/v1/nope", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, body) = app
        .call(Method::DELETE, "/api/v1/runs", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"]["message"].is_string(), "{body}");
}
