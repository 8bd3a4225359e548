//! Tokens are required everywhere but /healthz.

use crate::util::Cluster;

#[test]
fn requests_without_a_valid_token_are_refused() {
    let c = Cluster::start("5s");
    for path in ["/api/v1/runs", "/api/v1/workflows", "/api/v1/agents"] {
        let (status, body) = c.http("GET", path, None, None).unwrap();
        assert_eq!(status, 401, "{path}: {body}");
        let (status, _) = c
            .http("GET", path, Some("baton_admin_wrong"), None)
            .unwrap();
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _) = c.http("GET", path, Some(&c.admin), None).unwrap();
        assert_eq!(status, 200, "{path} with the admin token");
    }
    let (status, _) = c
        .http(
            "POST",
            "/api/v1/agent/claim",
            None,
            Some(r#"{"max":1,"wait_ms":0}"#),
        )
        .unwrap();
    assert_eq!(status, 401);
    // The enrollment token only registers agents.
    let enroll = std::fs::read_to_string(c.data_dir().join("agent.token")).unwrap();
    let (status, _) = c
        .http("GET", "/api/v1/runs", Some(enroll.trim()), None)
        .unwrap();
    assert_eq!(status, 403);
    let (status, _) = c.http("GET", "/healthz", None, None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn cli_with_a_wrong_token_exits_3() {
    let c = Cluster::start("5s");
    let out = crate::util::baton(c.dir.path())
        .args([
            "runs",
            "list",
            "--server",
            &c.url,
            "--token",
            "baton_admin_nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("baton_admin_nope"), "token echoed: {err}");
}

#[test]
fn token_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::start("5s");
    for f in ["admin.token", "agent.token"] {
        let mode = std::fs::metadata(c.data_dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}
