//! `GET /api/v1/resources`, and what a resource's release means for held claims.

use axum::http::{Method, StatusCode};

use crate::support::App;

const LOCKED: &str =
    "name: locked\nnodes:\n  deploy:\n    resources: [prod]\n    run: echo deploy\n";

#[tokio::test]
async fn resources_lists_holders_and_waiters() {
    let app = App::new().await;
    app.apply(LOCKED).await;
    let first = app.create_run("locked").await;
    let second = app.create_run("locked").await;
    let agent = app.register("worker-1").await;
    let work = app.claim_one(&agent).await;
    assert_eq!(work["run_id"], first["id"]);

    let (status, list) = app
        .call(Method::GET, "/api/v1/resources", Some(app.admin()), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list[0]["name"], "prod", "{list}");
    let holder = &list[0]["holders"][0];
    assert_eq!(holder["run_id"], first["id"]);
    assert_eq!(holder["workflow"], "locked");
    assert_eq!(holder["node"], "deploy");
    assert_eq!(holder["attempt"], 1);
    assert_eq!(holder["agent"], "worker-1");
    assert_eq!(holder["count"], 1);
    assert_eq!(list[0]["waiting"], 1);
    assert_eq!(list[0]["waiters"][0]["run_id"], second["id"]);
    assert_eq!(list[0]["waiters"][0]["priority"], 0);

    let (status, _) = app.call(Method::GET, "/api/v1/resources", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A node waiting only for a resource is handed to a claim already held on the server as
/// soon as the holder ends, though that end made no node ready.
#[tokio::test]
async fn a_release_wakes_a_held_claim() {
    let app = App::new().await;
    app.apply(LOCKED).await;
    app.create_run("locked").await;
    let second = app.create_run("locked").await;
    let holder = app.register("holder").await;
    let waiter = app.register("waiter").await;
    let work = app.claim_one(&holder).await;

    // The held claim would answer empty after a minute without a wake-up.
    let (held, _) = tokio::join!(app.claim(&waiter, 1, 60_000), async {
        let (status, _) = app
            .call(Method::GET, "/api/v1/resources", Some(app.admin()), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, answer) = app
            .report(&holder, &work["attempt_id"], &work["fence"], 0)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    });
    let assignments = held["assignments"].as_array().expect("assignments");
    assert_eq!(assignments.len(), 1, "{held}");
    assert_eq!(assignments[0]["run_id"], second["id"]);
}
