//! Secrets through the API: set, list without values, remove; sealed at rest; handed to
//! the agent holding an attempt, and only then; the key checked and rotated at start.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::App;

const VALUE: &str = "Tr0ub4dor&3-horse-battery";

const WORKFLOW: &str = "name: uses-secret\nnodes:\n  a:\n    env: {API_KEY: {secret: API_KEY}, PLAIN: x}\n    run: 'true'\n";

async fn put(app: &App, name: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        &format!("/api/v1/secrets/{name}"),
        Some(app.admin()),
        Some(body),
    )
    .await
}

/// The value the agent gets for `API_KEY` in a fresh run's first assignment.
async fn handed_out(app: &App) -> Value {
    let (status, _) = app.apply(WORKFLOW).await;
    assert!(status.is_success());
    app.create_run("uses-secret").await;
    let agent = app.register("a").await;
    let assignment = app.claim_one(&agent).await;
    assert_eq!(assignment["env"], json!({"PLAIN": "x"}), "{assignment}");
    assert!(
        assignment.get("secret_refs").is_none(),
        "names of secrets stay on the server: {assignment}"
    );
    assignment
}

#[tokio::test]
async fn secrets_are_set_listed_without_values_and_removed() {
    let app = App::new().await;
    let (status, doc) = put(&app, "API_KEY", json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["name"], "API_KEY");
    let (status, _) = put(
        &app,
        "SCOPED",
        json!({"value": "v-scoped", "workflows": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, list) = app
        .call(Method::GET, "/api/v1/secrets", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["name"], "API_KEY");
    assert_eq!(list[1]["workflows"], json!(["a", "b"]));
    assert!(!list.to_string().contains(VALUE), "{list}");

    for (name, body, wanted) in [
        ("1BAD", json!({"value": "x"}), "secret name"),
        ("OK", json!({"value": ""}), "must not be empty"),
        (
            "OK",
            json!({"value": "x".repeat(64 * 1024 + 1)}),
            "at most 65536 bytes",
        ),
        ("OK", json!({"value": "x", "other": 1}), "other"),
        (
            "OK",
            json!({"value": "x", "workflows": []}),
            "at least one workflow",
        ),
        (
            "OK",
            json!({"value": "x", "workflows": ["Bad Name"]}),
            "workflows",
        ),
    ] {
        let (status, answer) = put(&app, name, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(wanted), "{name}: {message}");
    }

    // Sealed at rest: the database's files never hold the value.
    for file in ["baton.db", "baton.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.dir.path().join("data").join(file)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(VALUE), "{file} holds the value");
        }
    }

    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/secrets/SCOPED",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, answer) = app
        .call(
            Method::DELETE,
            "/api/v1/secrets/SCOPED",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (_, audit) = app
        .call(Method::GET, "/api/v1/audit", Some(app.admin()), None)
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["secret.delete", "secret.set", "secret.set"]);
    assert!(!audit.to_string().contains(VALUE));
}

#[tokio::test]
async fn the_agent_holding_an_attempt_gets_the_value_and_a_missing_one_is_refused() {
    let app = App::new().await;
    let assignment = handed_out(&app).await;
    assert_eq!(assignment["secrets"], Value::Null, "{assignment}");
    let refused = assignment["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("\"API_KEY\"") && refused.contains("not set"),
        "{assignment}"
    );

    let app = App::new().await;
    put(&app, "API_KEY", json!({"value": VALUE})).await;
    let assignment = handed_out(&app).await;
    assert_eq!(
        assignment["secrets"],
        json!({"API_KEY": VALUE}),
        "{assignment}"
    );
    assert_eq!(assignment["refused"], Value::Null);
    // The run document names no value.
    let (_, runs) = app
        .call(Method::GET, "/api/v1/runs", Some(app.admin()), None)
        .await;
    let run = app.run(runs[0]["id"].as_str().unwrap()).await;
    assert!(!run.to_string().contains(VALUE), "{run}");

    let app = App::new().await;
    put(
        &app,
        "API_KEY",
        json!({"value": VALUE, "workflows": ["elsewhere"]}),
    )
    .await;
    let assignment = handed_out(&app).await;
    let refused = assignment["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("not available to workflow \"uses-secret\""),
        "{assignment}"
    );
    assert_eq!(assignment["secrets"], Value::Null);
}

#[tokio::test]
async fn a_server_with_another_key_refuses_to_start() {
    let app = App::new().await;
    put(&app, "API_KEY", json!({"value": VALUE})).await;
    let key_file = |data: &std::path::Path| data.join(baton_server::SECRETS_KEY_FILE);

    // Another key, no old one: refused, and nothing changed.
    let err = app
        .restart(|data| std::fs::write(key_file(data), "ab".repeat(32)).unwrap())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("secrets key"), "{err}");
}

#[tokio::test]
async fn rotating_the_key_seals_every_secret_again() {
    let app = App::new().await;
    put(&app, "API_KEY", json!({"value": VALUE})).await;
    let data = app.dir.path().join("data");
    let key_file = data.join(baton_server::SECRETS_KEY_FILE);
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let app = app
        .restart(|data| {
            // The documented rotation: keep the old key beside, let the server make a new one.
            std::fs::rename(
                data.join(baton_server::SECRETS_KEY_FILE),
                data.join(baton_server::OLD_SECRETS_KEY_FILE),
            )
            .unwrap();
        })
        .await
        .expect("rotated");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    let assignment = handed_out(&app).await;
    assert_eq!(
        assignment["secrets"],
        json!({"API_KEY": VALUE}),
        "{assignment}"
    );

    // The old key alone no longer opens anything: the database moved on.
    let app = app
        .restart(|data| {
            std::fs::remove_file(data.join(baton_server::OLD_SECRETS_KEY_FILE)).unwrap();
            std::fs::write(data.join(baton_server::SECRETS_KEY_FILE), &old_key).unwrap();
        })
        .await;
    assert!(app.is_err(), "the old key is refused after the rotation");
}
