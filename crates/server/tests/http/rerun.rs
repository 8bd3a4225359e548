//! Re-running a finished run: `POST /runs/{id}/retry`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{App, CHAIN, code, node_status};

/// A finished `chain` run whose `b` failed; returns its id.
async fn failed_chain(app: &App) -> String {
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let agent = app.register("worker").await;
    for code in [0, 1] {
        let work = app.claim_one(&agent).await;
        app.start(&agent, &work).await;
        let (status, body) = app
            .report(&agent, &work["attempt_id"], &work["fence"], code)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(app.run(&id).await["status"], "failure");
    id
}

async fn retry(app: &App, id: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/runs/{id}/retry"),
        Some(app.admin()),
        body,
    )
    .await
}

#[tokio::test]
async fn retrying_a_failed_run_keeps_its_successes_and_links_both_runs() {
    let app = App::new().await;
    let old = failed_chain(&app).await;

    // No body: re-run what did not succeed.
    let (status, new) = retry(&app, &old, None).await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    assert_eq!(new["retry_of"], old.as_str(), "{new}");
    assert_eq!(node_status(&new, "a"), "success", "{new}");
    assert_eq!(new["nodes"]["a"]["reused_from"], old.as_str(), "{new}");
    assert_eq!(new["nodes"]["a"]["attempts"], json!([]), "{new}");
    assert_eq!(node_status(&new, "b"), "ready", "{new}");
    let new_id = new["id"].as_str().unwrap();
    assert_eq!(app.run(&old).await["retried_by"], json!([new_id]));

    let (status, from) = retry(&app, &old, Some(json!({"from": "a"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{from}");
    assert_eq!(node_status(&from, "a"), "ready", "{from}");
    assert_eq!(node_status(&from, "b"), "waiting", "{from}");
    assert!(from["nodes"]["a"].get("reused_from").is_none(), "{from}");
}

#[tokio::test]
async fn retry_refuses_live_runs_unknown_names_and_bad_bodies() {
    let app = App::new().await;
    let old = failed_chain(&app).await;
    let live = app.create_run("chain").await;
    let live = live["id"].as_str().unwrap();
    for (id, body, status, want) in [
        (live, None, StatusCode::CONFLICT, "conflict"),
        ("no-such-run", None, StatusCode::NOT_FOUND, "not_found"),
        (
            old.as_str(),
            Some(json!({"from": "zz"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            old.as_str(),
            Some(json!({"from": 3})),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let (got, answer) = retry(&app, id, body.clone()).await;
        assert_eq!(got, status, "{id} {body:?}: {answer}");
        assert_eq!(code(&answer), want, "{answer}");
    }
    let (status, answer) = app
        .call(
            Method::POST,
            &format!("/api/v1/runs/{old}/retry"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
}
