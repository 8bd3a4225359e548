//! Applying and reading workflows.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{App, CHAIN, code};

#[tokio::test]
async fn applying_makes_a_version_once_per_definition() {
    let app = App::new().await;
    let (status, first) = app.apply(CHAIN).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["name"], "chain");
    assert_eq!(first["version"], 1);
    assert_eq!(first["created"], true);

    let (status, again) = app.apply(CHAIN).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["version"], 1);
    assert_eq!(again["created"], false);

    let changed = CHAIN.replace("echo b", "echo bb");
    let (status, second) = app.apply(&changed).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["version"], 2);

    let (status, doc) = app
        .call(
            Method::GET,
            "/api/v1/workflows/chain",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["versions"][0]["version"], 2, "newest first: {doc}");
    let (status, version) = app
        .call(
            Method::GET,
            "/api/v1/workflows/chain/versions/1",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version["source"], CHAIN);
    let (status, list) = app
        .call(Method::GET, "/api/v1/workflows", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["latest_version"], 2, "{list}");
}

#[tokio::test]
async fn an_invalid_workflow_is_refused_with_every_problem_placed() {
    let app = App::new().await;
    let source = "name: broken\nnodes:\n  a:\n    run: echo a\n    needs: [tset]\n  b:\n    run: echo b\n    needs: [zz]\n";
    let (status, body) = app.apply(source).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "invalid_workflow");
    let details = body["error"]["details"].as_array().unwrap();
    assert!(details.len() >= 2, "every problem is listed: {body}");
    assert!(
        details[0]["message"].as_str().unwrap().contains("tset"),
        "{body}"
    );
    for detail in details {
        assert_eq!(detail["file"], "wf.yaml", "{detail}");
        assert!(detail["line"].as_u64().is_some_and(|l| l > 0), "{detail}");
        assert!(detail["column"].as_u64().is_some_and(|c| c > 0), "{detail}");
    }
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/workflows/broken",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = App::new().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/workflows",
            Some(app.admin()),
            Some(json!({"filename": "x.yaml"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("source"),
        "names the missing field: {body}"
    );
}

#[tokio::test]
async fn unknown_workflows_and_versions_are_not_found() {
    let app = App::new().await;
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/workflows/ghost",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    app.apply(CHAIN).await;
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/workflows/chain/versions/9",
            Some(app.admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
