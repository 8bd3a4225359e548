//! Cases about what becomes ready and who may claim it.

use baton_api::CreateRun;
use baton_core::{Action, NodeState, Outcome, RetryOn, RetryPolicy, RunState};

use super::{
    Harness, LEASE, agent, aref, claim_nodes, names, node, start_run, state_of, states, workflow,
};
use crate::StoreError;

/// A run starts `pending` with its roots ready and the rest waiting.
pub async fn create_run_makes_roots_ready(h: Harness) {
    let s = &*h.store;
    let wf = workflow(
        "build",
        vec![node("a", &[]), node("b", &["a"]), node("c", &[])],
    );
    s.apply_workflow(&wf, "src").await.expect("apply");
    let created = s
        .create_run(&CreateRun::latest("build"))
        .await
        .expect("create")
        .run;
    assert_eq!(created.status, RunState::Pending);
    assert_eq!(created.version, 1);
    assert_eq!(created.nodes["a"].status, NodeState::Ready);
    assert_eq!(created.nodes["b"].status, NodeState::Waiting);
    assert_eq!(created.nodes["b"].needs, vec!["a".to_owned()]);
    assert_eq!(created.nodes["c"].status, NodeState::Ready);
    assert!(created.nodes.values().all(|n| n.attempts.is_empty()));

    let doc = s.run(&created.id).await.expect("run");
    assert_eq!(
        doc, created,
        "the stored document equals the one create_run returned"
    );
    assert_eq!(s.run_rev(&created.id).await.expect("rev"), created.rev);

    let pinned = s
        .create_run(&CreateRun::version("build", 1))
        .await
        .expect("create v1")
        .run;
    assert_eq!(pinned.version, 1);
    assert!(matches!(
        s.create_run(&CreateRun::version("build", 7)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_run(&CreateRun::latest("nope")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.run("no-such-run").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.run_rev("no-such-run").await,
        Err(StoreError::NotFound(_))
    ));
}

/// Agents get only nodes whose function and labels they offer; a ready node nobody can
/// run says why.
pub async fn claim_matches_labels_and_functions(h: Harness) {
    let s = &*h.store;
    let mut gpu = node("gpu", &[]);
    gpu.selector.insert("gpu".into(), "yes".into());
    let mut plan = node("plan", &[]);
    plan.action = Action::Uses {
        function: "terraform-plan".into(),
        with: serde_json::json!({"dir": "infra"}),
    };
    let wf = workflow("mixed", vec![node("plain", &[]), gpu, plan]);
    let plain_agent = agent(s, "plain", &[("os", "linux")], &[]).await;
    let run = start_run(s, &wf).await;

    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.nodes["plain"].waiting_for, None);
    let why = doc.nodes["gpu"]
        .waiting_for
        .clone()
        .expect("gpu node explains its wait");
    assert!(why.contains("gpu=yes"), "{why}");
    let why = doc.nodes["plan"]
        .waiting_for
        .clone()
        .expect("plan node explains its wait");
    assert!(why.contains("terraform-plan"), "{why}");

    let (_, got) = claim_nodes(s, &plain_agent, 10).await;
    assert_eq!(got, names(&["plain"]));

    let gpu_agent = agent(s, "gpu", &[("gpu", "yes")], &[]).await;
    let tf_agent = agent(s, "tf", &[], &["terraform-plan"]).await;
    let (_, got) = claim_nodes(s, &tf_agent, 10).await;
    assert_eq!(got, names(&["plan"]));
    let (a, got) = claim_nodes(s, &gpu_agent, 10).await;
    assert_eq!(got, names(&["gpu"]));
    assert_eq!(a[0].workflow, "mixed");
    assert_eq!(a[0].attempt, 1);
    assert!(
        s.claim(&gpu_agent, 10, LEASE)
            .await
            .expect("claim")
            .assignments
            .is_empty()
    );

    assert!(matches!(
        s.claim("no-such-agent", 1, LEASE).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Two nodes naming the same resource never hold it at once.
pub async fn claim_respects_resources(h: Harness) {
    let s = &*h.store;
    let mut x = node("x", &[]);
    x.resources = vec!["db".into()];
    let mut y = node("y", &[]);
    y.resources = vec!["db".into(), "cache".into()];
    let wf = workflow("locks", vec![x, y, node("z", &[])]);
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &wf).await;

    let (first, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got.len(), 2, "one of x and y, and z: {got:?}");
    assert!(got.contains("z"));
    assert!(
        claim_nodes(s, &ag, 10).await.1.is_empty(),
        "the other waits for the lock"
    );

    let holder = first.iter().find(|a| a.node != "z").expect("x or y");
    s.report(&ag, aref(holder), Outcome::exited(0), None)
        .await
        .expect("report");
    let (_, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got.len(), 1);
    assert_ne!(got.first(), Some(&holder.node));
    assert_eq!(state_of(s, &run, &holder.node).await, NodeState::Success);
}

/// A diamond runs top, both sides, then bottom; the run succeeds at the end.
pub async fn diamond_runs_in_order(h: Harness) {
    let s = &*h.store;
    let wf = workflow(
        "diamond",
        vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a"]),
            node("d", &["b", "c"]),
        ],
    );
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &wf).await;

    let (a, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got, names(&["a"]));
    s.start_attempt(&ag, aref(&a[0])).await.expect("start");
    let r = s
        .report(&ag, aref(&a[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(r.woke, "b and c became ready");
    assert!(!r.duplicate);

    let (bc, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got, names(&["b", "c"]));
    let b = bc.iter().find(|x| x.node == "b").expect("b");
    let c = bc.iter().find(|x| x.node == "c").expect("c");
    let r = s
        .report(&ag, aref(b), Outcome::exited(0), None)
        .await
        .expect("report b");
    assert!(!r.woke, "d still needs c");
    assert!(claim_nodes(s, &ag, 10).await.1.is_empty());
    assert_eq!(state_of(s, &run, "d").await, NodeState::Waiting);
    s.report(&ag, aref(c), Outcome::exited(0), None)
        .await
        .expect("report c");

    let (d, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got, names(&["d"]));
    s.report(&ag, aref(&d[0]), Outcome::exited(0), None)
        .await
        .expect("report d");
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Success);
    assert!(doc.started_at.is_some());
    assert!(doc.finished_at.is_some());
    assert!(
        doc.nodes
            .values()
            .all(|n| n.status == NodeState::Success && n.attempts.len() == 1)
    );
    assert_eq!(
        doc.nodes["a"].attempts[0].agent, "a",
        "attempts name their agent"
    );
}

/// A failed node skips everything below it; an independent branch still runs, and the
/// run ends `failure` once it is done.
pub async fn failure_skips_downstream_while_sibling_finishes(h: Harness) {
    let s = &*h.store;
    let wf = workflow(
        "branches",
        vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &[]),
            node("d", &["c"]),
            node("e", &["b", "d"]),
        ],
    );
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &wf).await;
    let (ac, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got, names(&["a", "c"]));
    let a = ac.iter().find(|x| x.node == "a").expect("a");
    let c = ac.iter().find(|x| x.node == "c").expect("c");

    s.report(&ag, aref(a), Outcome::exited(3), Some("exit 3"))
        .await
        .expect("report a");
    let st = states(s, &run).await;
    assert_eq!(st["a"], NodeState::Failure);
    assert_eq!(st["b"], NodeState::Skipped);
    assert_eq!(st["e"], NodeState::Skipped);
    assert_eq!(st["c"], NodeState::Pending);
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Pending);

    s.report(&ag, aref(c), Outcome::exited(0), None)
        .await
        .expect("report c");
    let (d, got) = claim_nodes(s, &ag, 10).await;
    assert_eq!(got, names(&["d"]));
    s.report(&ag, aref(&d[0]), Outcome::exited(0), None)
        .await
        .expect("report d");

    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Failure);
    assert_eq!(doc.nodes["d"].status, NodeState::Success);
    assert_eq!(doc.nodes["e"].status, NodeState::Skipped);
    let attempt = &doc.nodes["a"].attempts[0];
    assert_eq!(attempt.exit_code, Some(3));
    assert_eq!(attempt.message.as_deref(), Some("exit 3"));
}

/// A retried node backs off: ready but not claimable until its time comes.
pub async fn retry_backs_off_then_becomes_claimable(h: Harness) {
    let s = &*h.store;
    let mut flaky = node("flaky", &[]);
    flaky.retry = RetryPolicy {
        attempts: 3,
        on: vec![RetryOn::Failure],
        backoff_ms: 5_000,
        max_backoff_ms: 60_000,
        lost_attempts: 2,
    };
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &workflow("flaky", vec![flaky])).await;

    let (a, _) = claim_nodes(s, &ag, 1).await;
    let r = s
        .report(&ag, aref(&a[0]), Outcome::exited(1), None)
        .await
        .expect("report");
    assert!(!r.woke, "a backing-off node wakes nobody yet");
    assert_eq!(state_of(s, &run, "flaky").await, NodeState::Ready);

    let now = h.clock.now();
    let got = s.claim(&ag, 1, LEASE).await.expect("claim");
    assert!(got.assignments.is_empty(), "still backing off");
    let at = got.next_ready_at.expect("claim says when the retry is due");
    assert!(at > now && at <= now + 5_000, "due {at}, now {now}");

    h.clock.advance(at - now);
    let (b, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].attempt, 2);
    s.report(&ag, aref(&b[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Success);
    let tries = &doc.nodes["flaky"].attempts;
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0].exit_code, Some(1));
    assert_eq!((tries[0].number, tries[1].number), (1, 2));
}

/// Starting moves node and run to `running`; starting again changes nothing; starting a
/// finished attempt is stale.
pub async fn start_marks_node_and_run_running(h: Harness) {
    let s = &*h.store;
    let ag = agent(s, "a", &[], &[]).await;
    let run = start_run(s, &workflow("one", vec![node("a", &[]), node("b", &["a"])])).await;
    let (a, _) = claim_nodes(s, &ag, 1).await;
    assert_eq!(state_of(s, &run, "a").await, NodeState::Pending);
    assert_eq!(s.run(&run).await.expect("run").status, RunState::Pending);

    s.start_attempt(&ag, aref(&a[0])).await.expect("start");
    let doc = s.run(&run).await.expect("run");
    assert_eq!(doc.status, RunState::Running);
    assert!(doc.started_at.is_some());
    assert_eq!(doc.nodes["a"].status, NodeState::Running);
    assert!(doc.nodes["a"].attempts[0].started_at.is_some());
    let rev = doc.rev;
    s.start_attempt(&ag, aref(&a[0]))
        .await
        .expect("start again");
    assert_eq!(
        s.run_rev(&run).await.expect("rev"),
        rev,
        "a repeated start changes nothing"
    );

    s.report(&ag, aref(&a[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    assert!(matches!(
        s.start_attempt(&ag, aref(&a[0])).await,
        Err(StoreError::Stale(_))
    ));
}
