//! Uploading, listing and downloading artifacts.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::support::{App, CHAIN, TestAgent, code};

fn upload(
    agent: &TestAgent,
    attempt: &Value,
    path: &str,
    fence: &Value,
    bytes: Vec<u8>,
) -> Request<Body> {
    Request::builder()
        .method(Method::PUT)
        .uri(format!(
            "/api/v1/agent/attempts/{attempt}/artifacts/{path}?fence={fence}"
        ))
        .header(header::AUTHORIZATION, format!("Bearer {}", agent.token))
        .body(Body::from(bytes))
        .unwrap()
}

fn get(app: &App, uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin()))
        .body(Body::empty())
        .unwrap()
}

/// A run with node `a` claimed and started by a fresh agent.
async fn started(app: &App) -> (String, TestAgent, Value) {
    app.apply(CHAIN).await;
    let run = app.create_run("chain").await;
    let agent = app.register("uploader").await;
    let work = app.claim_one(&agent).await;
    app.start(&agent, &work).await;
    (run["id"].as_str().unwrap().to_owned(), agent, work)
}

#[tokio::test]
async fn an_uploaded_artifact_is_listed_and_downloads_with_the_same_bytes() {
    let app = App::new().await;
    let (run, agent, work) = started(&app).await;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (status, _, body) = app
        .send(upload(
            &agent,
            &work["attempt_id"],
            "dist/app.bin",
            &work["fence"],
            bytes.clone(),
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&body)
    );

    let (status, _, list) = app
        .send(get(&app, &format!("/api/v1/runs/{run}/artifacts")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list[0]["path"], "dist/app.bin", "{list}");
    assert_eq!(list[0]["node"], "a");
    assert_eq!(list[0]["attempt"], 1);
    assert_eq!(list[0]["size"], bytes.len());
    assert_eq!(list[0]["sha256"], hex::encode(Sha256::digest(&bytes)));

    let (status, headers, got) = app
        .send(get(
            &app,
            &format!("/api/v1/runs/{run}/artifacts/a/1/dist/app.bin"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(got.as_ref(), bytes.as_slice());

    let (status, _, body) = app
        .send(get(
            &app,
            &format!("/api/v1/runs/{run}/artifacts/a/1/dist/other.bin"),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&serde_json::from_slice(&body).unwrap()), "not_found");
}

#[tokio::test]
async fn artifact_paths_that_climb_or_are_absolute_are_refused() {
    let app = App::new().await;
    let (run, agent, work) = started(&app).await;
    for bad in [
        "a/../../escape",
        "..",
        "%2e%2e/escape",
        "dist//x",
        "a%5Cb",
        "%2Fetc%2Fpasswd",
    ] {
        let (status, _, body) = app
            .send(upload(
                &agent,
                &work["attempt_id"],
                bad,
                &work["fence"],
                b"x".to_vec(),
            ))
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(code(&serde_json::from_slice(&body).unwrap()), "bad_request");
    }
    let (_, _, list) = app
        .send(get(&app, &format!("/api/v1/runs/{run}/artifacts")))
        .await;
    assert_eq!(list.as_ref(), b"[]");
    assert!(!app.dir.path().join("escape").exists());
    assert!(!app.dir.path().join("data/artifacts/escape").exists());
}

#[tokio::test]
async fn an_upload_with_a_wrong_fence_is_stale() {
    let app = App::new().await;
    let (_, agent, work) = started(&app).await;
    let wrong = Value::from(work["fence"].as_i64().unwrap() + 1000);
    let (status, _, body) = app
        .send(upload(
            &agent,
            &work["attempt_id"],
            "out.txt",
            &wrong,
            b"x".to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        code(&serde_json::from_slice(&body).unwrap()),
        "stale_attempt"
    );
}

#[tokio::test]
async fn an_artifact_over_the_limit_is_refused_and_not_kept() {
    let app = App::with(|config| config.max_artifact_bytes = 1000).await;
    let (run, agent, work) = started(&app).await;
    let (status, _, body) = app
        .send(upload(
            &agent,
            &work["attempt_id"],
            "big.bin",
            &work["fence"],
            vec![7; 1001],
        ))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&serde_json::from_slice(&body).unwrap()), "too_large");

    // A streamed body with no declared length is cut off at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 600]), Ok(vec![2; 600])];
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!(
            "/api/v1/agent/attempts/{}/artifacts/streamed.bin?fence={}",
            work["attempt_id"], work["fence"]
        ))
        .header(header::AUTHORIZATION, format!("Bearer {}", agent.token))
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let (status, _, _) = app.send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (_, _, list) = app
        .send(get(&app, &format!("/api/v1/runs/{run}/artifacts")))
        .await;
    assert_eq!(list.as_ref(), b"[]");
    let attempt_dir = app.dir.path().join(format!("data/artifacts/{run}/a/1"));
    let left: Vec<_> = std::fs::read_dir(&attempt_dir)
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no partial files are left: {left:?}");

    let (status, _, _) = app
        .send(upload(
            &agent,
            &work["attempt_id"],
            "small.bin",
            &work["fence"],
            vec![7; 1000],
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "exactly the limit is fine");
}
