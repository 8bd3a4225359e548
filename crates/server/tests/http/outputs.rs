//! Outputs in reports: checked by the server whatever the agent did, kept, shown on the
//! run document and handed to the next node as inputs.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{App, CHAIN, TestAgent, code, node_status};

async fn report_with(
    app: &App,
    agent: &TestAgent,
    work: &Value,
    outputs: Value,
) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/agent/attempts/{}/report", work["attempt_id"]),
        Some(&agent.token),
        Some(json!({
            "fence": work["fence"],
            "outcome": {"state": "success", "reason": "exit", "exit_code": 0},
            "outputs": outputs,
        })),
    )
    .await
}

#[tokio::test]
async fn outputs_breaking_the_rules_are_refused_naming_the_attempt_and_key() {
    let app = App::new().await;
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let id = run["id"].as_str().unwrap();
    let agent = app.register("worker").await;
    let work = app.claim_one(&agent).await;
    let attempt = work["attempt_id"].as_i64().unwrap();

    let (status, body) = report_with(&app, &agent, &work, json!({"bad key": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "outputs of attempt {attempt} refused: \"bad key\" is not an output key"
        )),
        "{message}"
    );

    let (status, body) = report_with(&app, &agent, &work, json!({"nul": "a\u{0}b"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("NUL"),
        "{body}"
    );

    // A batch with one report over the size limit is refused whole.
    let big = "x".repeat(baton_core::MAX_OUTPUT_BYTES);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/agent/reports",
            Some(&agent.token),
            Some(json!({"reports": [{
                "attempt_id": attempt,
                "fence": work["fence"],
                "outcome": {"state": "success", "reason": "exit", "exit_code": 0},
                "outputs": {"big": big},
            }], "want": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "attempt {attempt} refused: outputs of 65539 bytes are too large"
            )),
        "{body}"
    );
    assert_eq!(
        node_status(&app.run(id).await, "a"),
        "pending",
        "nothing was kept"
    );

    let (status, body) = report_with(
        &app,
        &agent,
        &work,
        json!({"version": "1.2", "cmd": "\"; rm -rf / #"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc = app.run(id).await;
    assert_eq!(
        doc["nodes"]["a"]["outputs"],
        json!({"version": "1.2", "cmd": "\"; rm -rf / #"}),
        "{doc}"
    );
    assert!(doc["nodes"]["b"].get("outputs").is_none(), "{doc}");
    let next = app.claim_one(&agent).await;
    assert_eq!(next["node"], "b");
    assert_eq!(
        next["inputs"],
        json!({"a": {"version": "1.2", "cmd": "\"; rm -rf / #"}})
    );
}
