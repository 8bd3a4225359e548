//! Register, claim, start, report, logs, heartbeat.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{self, App, CHAIN, PATIENCE, code, node_status};

#[tokio::test]
async fn registration_hands_out_a_token_and_the_lease_terms() {
    let app = App::with(|config| config.lease_ms = 9_000).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/agent/register",
            Some(app.enroll()),
            Some(json!({"name": "a1", "slots": 2, "functions": ["shell"], "labels": {"os": "linux"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["lease_ms"], 9_000);
    assert_eq!(body["heartbeat_ms"], 3_000);
    let token = body["token"].as_str().unwrap();
    assert!(
        token.starts_with("baton_agent_") && token.len() == 12 + 64,
        "{token}"
    );

    let (status, heartbeat) = app
        .call(
            Method::POST,
            "/api/v1/agent/heartbeat",
            Some(token),
            Some(json!({"attempts": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(heartbeat["lease_ms"], 9_000);

    let (status, agents) = app
        .call(Method::GET, "/api/v1/agents", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(agents[0]["name"], "a1", "{agents}");
}

#[tokio::test]
async fn a_reported_success_makes_the_next_node_ready() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let id = run["id"].as_str().unwrap();
    let agent = app.register("worker").await;

    let work = app.claim_one(&agent).await;
    assert_eq!(work["node"], "a");
    assert_eq!(work["run_id"], run["id"]);
    assert_eq!(node_status(&app.run(id).await, "a"), "pending");
    assert_eq!(app.start(&agent, &work).await, StatusCode::NO_CONTENT);
    assert_eq!(node_status(&app.run(id).await, "a"), "running");

    let (status, answer) = app
        .report(&agent, &work["attempt_id"], &work["fence"], 0)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"]["state"], "success");
    let doc = app.run(id).await;
    assert_eq!(node_status(&doc, "a"), "success", "{doc}");
    assert_eq!(node_status(&doc, "b"), "ready", "{doc}");

    let next = app.claim_one(&agent).await;
    assert_eq!(next["node"], "b");
}

#[tokio::test]
async fn reports_with_a_wrong_fence_are_stale_and_repeats_get_the_same_answer() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let agent = app.register("worker").await;
    let work = app.claim_one(&agent).await;
    app.start(&agent, &work).await;

    let wrong = json!(work["fence"].as_i64().unwrap() + 1000);
    let (status, body) = app.report(&agent, &work["attempt_id"], &wrong, 0).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "stale_attempt");
    assert_eq!(
        node_status(&app.run(run["id"].as_str().unwrap()).await, "a"),
        "running",
        "a stale report changes nothing"
    );

    let first = app
        .report(&agent, &work["attempt_id"], &work["fence"], 3)
        .await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    let again = app
        .report(&agent, &work["attempt_id"], &work["fence"], 3)
        .await;
    assert_eq!(again, first, "the same report gets the same answer");

    // A different ending for the same finished attempt is refused.
    let (status, body) = app
        .report(&agent, &work["attempt_id"], &work["fence"], 0)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "stale_attempt");

    // Another agent cannot write about this attempt either.
    let other = app.register("other").await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/agent/attempts/{}/start", work["attempt_id"]),
            Some(&other.token),
            Some(json!({"fence": work["fence"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "stale_attempt");
}

#[tokio::test]
async fn a_report_that_does_not_end_the_attempt_is_a_bad_request() {
    let app = App::new().await;
    let agent = app.register("worker").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/agent/attempts/1/report",
            Some(&agent.token),
            Some(json!({"fence": 1, "outcome": {"state": "running", "reason": "exit"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_held_claim_gets_the_node_of_a_run_created_while_it_waits() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let agent = app.register("waiter").await;

    let req = support::json_request(
        Method::POST,
        "/api/v1/agent/claim",
        Some(&agent.token),
        Some(json!({"max": 1, "wait_ms": 60_000})),
    );
    let held = tokio::spawn(support::send(app.router(), req));
    // Give the claim a moment to park; the test holds either way, as a run created before
    // it parks is seen by its first look.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let run = app.create_run("chain").await;

    // Well under the claim's own 60 s: a lost wake-up fails here.
    let (status, _, bytes) = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("the held claim answers when the run is created")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let answer: Value = support::parse(&bytes);
    assert_eq!(answer["assignments"][0]["run_id"], run["id"], "{answer}");
    assert_eq!(answer["assignments"][0]["node"], "a", "{answer}");
}

#[tokio::test]
async fn a_held_claim_hears_of_a_cancel_even_with_no_free_slot() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let agent = app.register("busy").await;
    let work = app.claim_one(&agent).await;
    app.start(&agent, &work).await;

    let req = support::json_request(
        Method::POST,
        "/api/v1/agent/claim",
        Some(&agent.token),
        Some(json!({"max": 0, "wait_ms": 60_000})),
    );
    let held = tokio::spawn(support::send(app.router(), req));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/runs/{}/cancel", run["id"].as_str().unwrap()),
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, bytes) = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("the held claim answers when the run is canceled")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let answer: Value = support::parse(&bytes);
    assert_eq!(answer["cancel"], json!([work["attempt_id"]]), "{answer}");
}

#[tokio::test]
async fn a_claim_with_nothing_to_do_answers_empty_after_its_wait() {
    let app = App::new().await;
    let agent = app.register("idle").await;
    let answer = app.claim(&agent, 2, 50).await;
    assert_eq!(answer["assignments"], json!([]), "{answer}");
}

#[tokio::test]
async fn shutdown_ends_a_held_claim() {
    let app = App::new().await;
    let agent = app.register("idle").await;
    let req = support::json_request(
        Method::POST,
        "/api/v1/agent/claim",
        Some(&agent.token),
        Some(json!({"max": 1, "wait_ms": 60_000})),
    );
    let held = tokio::spawn(support::send(app.router(), req));
    app.shutdown.cancel();
    let (status, _, bytes) = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("the held claim answers on shutdown")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(support::parse(&bytes)["assignments"], json!([]));
}

#[tokio::test]
async fn log_chunks_are_stored_and_read_back() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let id = run["id"].as_str().unwrap();
    let agent = app.register("talker").await;
    let work = app.claim_one(&agent).await;
    app.start(&agent, &work).await;
    for (seq, data) in [(0, "hello\n"), (1, "world\n"), (1, "world\n")] {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/agent/attempts/{}/logs", work["attempt_id"]),
                Some(&agent.token),
                Some(json!({"fence": work["fence"], "seq": seq, "stream": "stdout", "data": data})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/api/v1/runs/{id}/logs?node=a"),
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let text: String = page["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|chunk| chunk["data"].as_str().unwrap())
        .collect();
    assert_eq!(
        text, "hello\nworld\n",
        "a repeated seq is stored once: {page}"
    );
}

#[tokio::test]
async fn a_report_batch_answers_each_report_and_hands_out_the_next_node() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let id = run["id"].as_str().unwrap();
    let agent = app.register("batcher").await;
    let work = app.claim_one(&agent).await;

    let ok = json!({"state": "success", "reason": "exit", "exit_code": 0});
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/v1/agent/reports",
            Some(&agent.token),
            Some(json!({
                "reports": [
                    {"attempt_id": work["attempt_id"], "fence": work["fence"], "outcome": ok},
                    {"attempt_id": 999_999, "fence": 1, "outcome": ok},
                ],
                "want": 2,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["attempt_id"], work["attempt_id"]);
    assert_eq!(
        answer["results"][0]["outcome"]["state"], "success",
        "{answer}"
    );
    assert_eq!(answer["results"][1]["attempt_id"], 999_999);
    assert!(
        answer["results"][1].get("outcome").is_none(),
        "stale: {answer}"
    );
    let next = answer["assignments"].as_array().unwrap();
    assert_eq!(next.len(), 1, "{answer}");
    assert_eq!(next[0]["node"], "b");
    let doc = app.run(id).await;
    assert_eq!(node_status(&doc, "a"), "success", "{doc}");
    assert_eq!(node_status(&doc, "b"), "pending", "{doc}");
}

#[tokio::test]
async fn empty_batches_and_reports_that_do_not_end_are_bad_requests() {
    let app = App::new().await;
    let agent = app.register("worker").await;
    for body in [
        json!({"reports": [], "want": 1}),
        json!({"reports": [{"attempt_id": 1, "fence": 1, "outcome": {"state": "running", "reason": "exit"}}]}),
    ] {
        let (status, answer) = app
            .call(
                Method::POST,
                "/api/v1/agent/reports",
                Some(&agent.token),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
}

/// Registration is untrusted input: each bad field gets a 400 that names it, and nothing
/// is registered.
#[tokio::test]
async fn registration_refuses_each_bad_field_by_name() {
    let app = App::new().await;
    let many_labels: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let long_name = "n".repeat(129);
    let cases = [
        (
            "name",
            json!({"name": "", "slots": 1, "functions": ["shell"]}),
        ),
        (
            "name",
            json!({"name": "a\u{0}b", "slots": 1, "functions": ["shell"]}),
        ),
        (
            "name",
            json!({"name": "\u{1b}[2Jevil", "slots": 1, "functions": ["shell"]}),
        ),
        (
            "name",
            json!({"name": long_name, "slots": 1, "functions": ["shell"]}),
        ),
        (
            "labels",
            json!({"name": "a", "slots": 1, "functions": ["shell"], "labels": {"os": "linux\nx"}}),
        ),
        (
            "labels",
            json!({"name": "a", "slots": 1, "functions": ["shell"], "labels": {"o s": "linux"}}),
        ),
        (
            "labels",
            json!({"name": "a", "slots": 1, "functions": ["shell"], "labels": many_labels}),
        ),
        (
            "functions",
            json!({"name": "a", "slots": 1, "functions": ["shell", "Bad\u{7}"]}),
        ),
        (
            "slots",
            json!({"name": "a", "slots": 0, "functions": ["shell"]}),
        ),
        (
            "slots",
            json!({"name": "a", "slots": 1025, "functions": ["shell"]}),
        ),
        (
            "slots",
            json!({"name": "a", "slots": 4_294_967_295_u32, "functions": ["shell"]}),
        ),
    ];
    for (field, body) in cases {
        let (status, answer) = app
            .call(
                Method::POST,
                "/api/v1/agent/register",
                Some(app.enroll()),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("bad agent {field}:")),
            "{body} -> {answer}"
        );
    }
    let (_, agents) = app
        .call(Method::GET, "/api/v1/agents", Some(app.admin()), None)
        .await;
    assert_eq!(agents, json!([]), "nothing was registered");
}
