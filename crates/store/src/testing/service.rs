//! Cases about the service around scheduling: workflows, runs list, logs, tokens,
//! agents, artifacts.

use baton_api::{LogQuery, RunFilter, Stream};
use baton_core::{NodeState, Outcome, RunState};

use super::{
    Harness, LEASE, agent, agent_with_token, aref, claim_nodes, node, start_run, workflow,
};
use crate::{Principal, StoreError, TokenKind};

/// Applying makes version 1; the same definition again makes nothing; a change makes
/// version 2. Bad graphs are refused.
pub async fn apply_makes_versions(h: Harness) {
    let s = &*h.store;
    let v1 = workflow("release", vec![node("a", &[]), node("b", &["a"])]);
    let made = s.apply_workflow(&v1, "first").await.expect("apply");
    assert!(made.created);
    assert_eq!(
        (made.name.as_str(), made.version, made.nodes),
        ("release", 1, 2)
    );

    let same = s
        .apply_workflow(&v1, "first, reformatted")
        .await
        .expect("apply again");
    assert!(!same.created);
    assert_eq!(same.version, 1);

    let v2 = workflow(
        "release",
        vec![node("a", &[]), node("b", &["a"]), node("c", &["b"])],
    );
    let made = s
        .apply_workflow(&v2, "second")
        .await
        .expect("apply changed");
    assert!(made.created);
    assert_eq!((made.version, made.nodes), (2, 3));
    let back = s
        .apply_workflow(&v1, "first")
        .await
        .expect("apply v1 again");
    assert!(back.created, "equal to an older version but not the latest");
    assert_eq!(back.version, 3);

    let list = s.list_workflows().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].name.as_str(), list[0].latest_version, list[0].runs),
        ("release", 3, 0)
    );
    let doc = s.workflow("release").await.expect("show");
    let versions: Vec<i64> = doc.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![3, 2, 1]);
    let one = s.workflow_version("release", 2).await.expect("version 2");
    assert_eq!(one.definition, v2);
    assert_eq!(one.source, "second");
    assert_eq!(one.version.nodes, 3);

    assert!(matches!(
        s.workflow("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.workflow_version("release", 9).await,
        Err(StoreError::NotFound(_))
    ));
    let cyclic = workflow("loop", vec![node("a", &["b"]), node("b", &["a"])]);
    assert!(matches!(
        s.apply_workflow(&cyclic, "").await,
        Err(StoreError::Invalid(_))
    ));
    let dup = workflow("dup", vec![node("a", &[]), node("a", &[])]);
    assert!(matches!(
        s.apply_workflow(&dup, "").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.workflow("loop").await,
        Err(StoreError::NotFound(_))
    ));
}

/// Runs list newest first, filtered by workflow and state, with node counts.
pub async fn list_runs_filters_newest_first(h: Harness) {
    let s = &*h.store;
    let one = workflow("one", vec![node("a", &[]), node("b", &["a"])]);
    let two = workflow("two", vec![node("x", &[])]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(start_run(s, &one).await);
        h.clock.advance(1);
    }
    let other = start_run(s, &two).await;
    s.cancel_run(&ids[1]).await.expect("cancel");

    let all = s.list_runs(&RunFilter::default()).await.expect("list");
    let got: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, vec![other.as_str(), &ids[2], &ids[1], &ids[0]]);
    let first = all.iter().find(|r| r.id == ids[0]).expect("listed");
    assert_eq!(first.counts.get(&NodeState::Ready), Some(&1));
    assert_eq!(first.counts.get(&NodeState::Waiting), Some(&1));
    assert_eq!(first.status, RunState::Pending);

    let of_one = s
        .list_runs(&RunFilter {
            workflow: Some("one".into()),
            ..RunFilter::default()
        })
        .await
        .expect("list one");
    assert_eq!(of_one.len(), 3);
    let canceled = s
        .list_runs(&RunFilter {
            status: Some(RunState::Canceled),
            ..RunFilter::default()
        })
        .await
        .expect("list canceled");
    assert_eq!(canceled.len(), 1);
    assert_eq!(canceled[0].id, ids[1]);
    assert_eq!(canceled[0].counts.get(&NodeState::Canceled), Some(&2));
    let both = s
        .list_runs(&RunFilter {
            workflow: Some("two".into()),
            status: Some(RunState::Pending),
            limit: Some(5),
        })
        .await
        .expect("list both");
    assert_eq!(both.len(), 1);
    let limited = s
        .list_runs(&RunFilter {
            limit: Some(2),
            ..RunFilter::default()
        })
        .await
        .expect("list limited");
    assert_eq!(limited.len(), 2);
    let wfs = s.list_workflows().await.expect("workflows");
    let runs: Vec<(String, i64)> = wfs.into_iter().map(|w| (w.name, w.runs)).collect();
    assert_eq!(runs, vec![("one".to_owned(), 3), ("two".to_owned(), 1)]);
}

/// Logs come back in order a page at a time, per node if asked; a repeated chunk is
/// stored once.
pub async fn logs_page_and_ignore_repeats(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &workflow("logs", vec![node("a", &[]), node("b", &[])])).await;
    let (got, _) = claim_nodes(s, &ag, 2).await;
    let a = got.iter().find(|x| x.node == "a").expect("a");
    let b = got.iter().find(|x| x.node == "b").expect("b");
    s.append_log(&ag, aref(a), 0, Stream::Stdout, "one\n")
        .await
        .expect("log");
    s.append_log(&ag, aref(b), 0, Stream::Stdout, "b-one\n")
        .await
        .expect("log");
    s.append_log(&ag, aref(a), 1, Stream::Stderr, "two\n")
        .await
        .expect("log");
    s.append_log(&ag, aref(a), 1, Stream::Stderr, "two, resent\n")
        .await
        .expect("repeat");
    s.report(&ag, aref(a), Outcome::exited(0), None)
        .await
        .expect("report");
    s.append_log(&ag, aref(a), 2, Stream::Stdout, "three\n")
        .await
        .expect("late chunk");

    let page = s
        .logs(
            &run,
            &LogQuery {
                limit: Some(2),
                ..LogQuery::default()
            },
        )
        .await
        .expect("logs");
    let text: Vec<&str> = page.chunks.iter().map(|c| c.data.as_str()).collect();
    assert_eq!(text, vec!["one\n", "b-one\n"]);
    assert_eq!(page.next, page.chunks[1].id);
    assert!(page.chunks[0].id < page.chunks[1].id);
    let rest = s
        .logs(
            &run,
            &LogQuery {
                after: Some(page.next),
                ..LogQuery::default()
            },
        )
        .await
        .expect("logs");
    let text: Vec<&str> = rest.chunks.iter().map(|c| c.data.as_str()).collect();
    assert_eq!(text, vec!["two\n", "three\n"]);
    assert_eq!(rest.chunks[0].stream, Stream::Stderr);
    assert_eq!(
        (rest.chunks[0].node.as_str(), rest.chunks[0].attempt),
        ("a", 1)
    );
    let end = s
        .logs(
            &run,
            &LogQuery {
                after: Some(rest.next),
                ..LogQuery::default()
            },
        )
        .await
        .expect("logs");
    assert!(end.chunks.is_empty());
    assert_eq!(end.next, rest.next, "nothing newer: next stays");

    let only_b = s
        .logs(
            &run,
            &LogQuery {
                node: Some("b".into()),
                ..LogQuery::default()
            },
        )
        .await
        .expect("logs of b");
    assert_eq!(only_b.chunks.len(), 1);
    assert_eq!(only_b.chunks[0].node, "b");
    assert!(matches!(
        s.logs(
            &run,
            &LogQuery {
                node: Some("zz".into()),
                ..LogQuery::default()
            }
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.logs("no-such-run", &LogQuery::default()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Tokens map to admin, enrollment or agent; revoked ones and those of departed agents
/// map to nobody.
pub async fn tokens_authenticate_by_kind(h: Harness) {
    let s = &*h.store;
    s.put_server_token(TokenKind::Admin, "admin-hash")
        .await
        .expect("admin");
    s.put_server_token(TokenKind::Admin, "admin-hash")
        .await
        .expect("admin again");
    s.put_server_token(TokenKind::Enroll, "enroll-hash")
        .await
        .expect("enroll");
    assert_eq!(
        s.authenticate("admin-hash").await.expect("auth"),
        Some(Principal::admin())
    );
    assert_eq!(
        s.authenticate("enroll-hash").await.expect("auth"),
        Some(Principal::Enroll)
    );
    assert_eq!(s.authenticate("unknown").await.expect("auth"), None);
    assert!(matches!(
        s.put_server_token(TokenKind::Agent, "x").await,
        Err(StoreError::Invalid(_))
    ));

    let id = agent_with_token(s, "a", &[], &[], "agent-hash").await;
    assert_eq!(
        s.authenticate("agent-hash").await.expect("auth"),
        Some(Principal::Agent {
            agent_id: id.clone()
        })
    );
    s.deregister_agent(&id).await.expect("deregister");
    s.deregister_agent(&id).await.expect("deregister twice");
    assert_eq!(
        s.authenticate("agent-hash").await.expect("auth"),
        None,
        "revoked"
    );
    assert!(matches!(
        s.deregister_agent("no-such-agent").await,
        Err(StoreError::NotFound(_))
    ));

    let first = agent_with_token(s, "b", &[], &[], "b-1").await;
    // Looked up (and so possibly remembered) before the restart replaces it.
    assert!(s.authenticate("b-1").await.expect("auth").is_some());
    let second = agent_with_token(s, "b", &[], &[], "b-2").await;
    assert_ne!(first, second);
    assert_eq!(
        s.authenticate("b-1").await.expect("auth"),
        None,
        "replaced by a restart"
    );
    assert!(s.authenticate("b-2").await.expect("auth").is_some());
}

/// Agents are online while they are seen within the lease, offline after, gone once
/// deregistered; used slots count their live attempts.
pub async fn agents_online_offline_gone(h: Harness) {
    let s = &*h.store;
    let a = agent(s, "alpha", &[("os", "linux")], &[]).await;
    let b = agent(s, "beta", &[], &[]).await;
    start_run(s, &workflow("work", vec![node("x", &[]), node("y", &[])])).await;
    let (_, got) = claim_nodes(s, &a, 1).await;
    assert_eq!(got.len(), 1);

    h.clock.advance(LEASE as i64 / 2);
    s.heartbeat(&a, &[], LEASE).await.expect("heartbeat");
    h.clock.advance(LEASE as i64 / 2 + 1);
    let list = s.list_agents(LEASE).await.expect("agents");
    assert_eq!(list.len(), 2);
    let (alpha, beta) = (&list[0], &list[1]);
    assert_eq!(
        (alpha.name.as_str(), alpha.status.as_str()),
        ("alpha", "online")
    );
    assert_eq!(alpha.used_slots, 1);
    assert_eq!(alpha.slots, 4);
    assert_eq!(alpha.labels.get("os").map(String::as_str), Some("linux"));
    assert!(alpha.functions.contains(&"shell".to_owned()));
    assert_eq!(
        (beta.name.as_str(), beta.status.as_str()),
        ("beta", "offline")
    );
    assert_eq!(beta.used_slots, 0);

    s.deregister_agent(&b).await.expect("deregister");
    let list = s.list_agents(LEASE).await.expect("agents");
    assert_eq!(list[1].status, "gone");
    assert!(matches!(
        s.claim(&b, 1, LEASE).await,
        Err(StoreError::NotFound(_))
    ));
    h.clock.advance(2 * 3_600_000);
    let list = s.list_agents(LEASE).await.expect("agents");
    assert_eq!(list.len(), 1, "gone agents drop off the list after an hour");
    assert_eq!(list[0].status, "offline");
}

/// Artifact uploads are checked against the attempt's owner and recorded per path.
pub async fn artifacts_are_recorded(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let mut build = node("build", &[]);
    build.artifacts = vec!["dist/**".into()];
    let run = start_run(s, &workflow("art", vec![build])).await;
    let (got, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(got[0].artifacts, vec!["dist/**".to_owned()]);
    s.report(&ag, aref(&got[0]), Outcome::exited(0), None)
        .await
        .expect("report");

    let target = s.artifact_target(&ag, aref(&got[0])).await.expect("target");
    assert_eq!(
        (target.run_id.as_str(), target.node.as_str(), target.attempt),
        (run.as_str(), "build", 1)
    );
    s.record_artifact(got[0].attempt_id, "dist/app", 10, "aa")
        .await
        .expect("record");
    s.record_artifact(got[0].attempt_id, "dist/app", 12, "bb")
        .await
        .expect("replace");
    s.record_artifact(got[0].attempt_id, "dist/lib", 3, "cc")
        .await
        .expect("record");
    let list = s.artifacts(&run).await.expect("artifacts");
    let seen: Vec<(&str, u64, &str)> = list
        .iter()
        .map(|a| (a.path.as_str(), a.size, a.sha256.as_str()))
        .collect();
    assert_eq!(seen, vec![("dist/app", 12, "bb"), ("dist/lib", 3, "cc")]);
    assert!(list.iter().all(|a| a.node == "build" && a.attempt == 1));
    assert!(matches!(
        s.record_artifact(got[0].attempt_id + 1000, "x", 1, "dd")
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.artifacts("no-such-run").await,
        Err(StoreError::NotFound(_))
    ));
}
