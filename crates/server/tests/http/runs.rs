//! Creating, reading, waiting on and canceling runs.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{self, App, CHAIN, PATIENCE, code, node_status};

#[tokio::test]
async fn a_new_run_has_its_roots_ready() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    assert_eq!(run["workflow"], "chain");
    assert_eq!(node_status(&run, "a"), "ready", "{run}");
    assert_eq!(node_status(&run, "b"), "waiting", "{run}");

    let shown = app.run(run["id"].as_str().unwrap()).await;
    assert_eq!(shown["id"], run["id"]);
    assert_eq!(node_status(&shown, "a"), "ready");

    let (status, list) = app
        .call(
            Method::GET,
            "/api/v1/runs?workflow=chain&limit=5",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["id"], run["id"], "{list}");
    let (status, list) = app
        .call(
            Method::GET,
            "/api/v1/runs?status=success",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn runs_of_unknown_workflows_and_unknown_runs_are_not_found() {
    let app = App::new().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/runs",
            Some(app.admin()),
            Some(json!({"workflow": "ghost"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .call(Method::GET, "/api/v1/runs/nope", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
}

#[tokio::test]
async fn a_bad_query_is_a_bad_request() {
    let app = App::new().await;
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/runs?status=sleeping",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
}

#[tokio::test]
async fn canceling_a_finished_run_conflicts() {
    let app = App::new().await;
    app.apply("name: one\nnodes:\n  a:\n    run: echo a\n")
        .await;
    let run = app.create_run("one").await;
    let id = run["id"].as_str().unwrap();
    let agent = app.register("worker").await;
    let work = app.claim_one(&agent).await;
    assert_eq!(app.start(&agent, &work).await, StatusCode::NO_CONTENT);
    let (status, _) = app
        .report(&agent, &work["attempt_id"], &work["fence"], 0)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.run(id).await["status"], "success");

    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/cancel"),
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
}

#[tokio::test]
async fn canceling_a_live_run_cancels_its_waiting_nodes() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let id = run["id"].as_str().unwrap();
    let (status, canceled) = app
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/cancel"),
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(node_status(&canceled, "b"), "canceled", "{canceled}");
}

#[tokio::test]
async fn a_run_read_with_wait_after_returns_once_the_run_changes() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let id = run["id"].as_str().unwrap().to_owned();
    let rev = run["rev"].as_i64().unwrap();

    // Already past: answered at once.
    let past = app
        .call(
            Method::GET,
            &format!("/api/v1/runs/{id}?wait_after={}", rev - 1),
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(past.0, StatusCode::OK);
    assert_eq!(past.1["rev"], rev);

    let router = app.router();
    let uri = format!("/api/v1/runs/{id}?wait_after={rev}&wait_ms=60000");
    let req = support::json_request(Method::GET, &uri, Some(app.admin()), None);
    let held = tokio::spawn(support::send(router, req));
    // Give the read a moment to park; the test holds either way, as a change before it
    // parks is seen by its first look.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/cancel"),
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, bytes) = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("the held read answers after the change")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let doc: Value = support::parse(&bytes);
    assert!(doc["rev"].as_i64().unwrap() > rev, "{doc}");
    assert_eq!(doc["status"], "canceled", "{doc}");
}

#[tokio::test]
async fn a_run_read_with_wait_after_gives_up_after_wait_ms() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let id = run["id"].as_str().unwrap();
    let rev = run["rev"].as_i64().unwrap();
    let (status, doc) = app
        .call(
            Method::GET,
            &format!("/api/v1/runs/{id}?wait_after={rev}&wait_ms=50"),
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["rev"], rev, "unchanged: {doc}");
}

#[tokio::test]
async fn oversize_bodies_get_413_with_the_error_body() {
    let app = App::new().await;
    let big = "x".repeat(300 * 1024);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/runs",
            Some(app.admin()),
            Some(json!({"workflow": big})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "too_large");

    // The same size is fine for a workflow file, whose limit is higher…
    let (status, body) = app.apply(&format!("# {big}\n{CHAIN}")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // …up to its own limit.
    let huge = "x".repeat(5 * 1024 * 1024);
    let (status, body) = app.apply(&huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "too_large");
}
