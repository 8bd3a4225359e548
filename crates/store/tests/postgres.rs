//! What only the PostgreSQL backend promises: several stores (replicas) on one database
//! agree, migrations are safe when replicas start together, and changes reach every
//! replica as events, also after the listening connection was cut.
//!
//! Each test uses a fresh schema of the database named by `BATON_TEST_PG_URL`, and says so
//! loudly when that is not set.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{NodeState, Outcome};
use baton_store::testing::{
    agent, aref, claim_nodes, fresh_pg_store, names, node, pg_url, start_run, workflow,
};
use baton_store::{PgOptions, PgStore, Store, StoreEvent};
use tokio::sync::broadcast;

/// The test database's URL, or `None` after printing that the test is skipped.
fn url(test: &str) -> Option<String> {
    let url = pg_url();
    if url.is_none() {
        eprintln!("SKIPPED (no BATON_TEST_PG_URL): postgres test {test}");
    }
    url
}

/// A second store on the schema of the first: another replica.
async fn replica(url: &str, schema: &str) -> PgStore {
    PgStore::connect(
        url,
        PgOptions {
            schema: Some(schema.to_owned()),
            pool_size: 4,
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect a replica")
}

/// Waits (generously) for an event matching `want`, skipping others.
async fn next_matching(
    rx: &mut broadcast::Receiver<StoreEvent>,
    want: impl Fn(&StoreEvent) -> bool,
) -> StoreEvent {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match rx.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .expect("the event arrives")
}

/// Waits until the listener of `store` is subscribed, by making changes until one is heard.
async fn wait_listening(store: &dyn Store, rx: &mut broadcast::Receiver<StoreEvent>) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            // Only an agent labelled `ping` could run it: no test agent claims it.
            let mut p = node("p", &[]);
            p.selector.insert("ping".into(), "yes".into());
            let wf = workflow("ping", vec![p]);
            let run = start_run(store, &wf).await;
            let heard = tokio::time::timeout(Duration::from_millis(200), async {
                loop {
                    if let Ok(StoreEvent::Run(id)) = rx.recv().await
                        && id == run
                    {
                        return;
                    }
                }
            })
            .await;
            if heard.is_ok() {
                return;
            }
        }
    })
    .await
    .expect("the listener subscribes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_at_once_apply_each_migration_once() {
    let Some(url) = url("replicas_migrating_at_once_apply_each_migration_once") else {
        return;
    };
    let (first, schema) = fresh_pg_store(&url).await;
    drop(first);
    // Start from nothing again: drop the tables the first store made, keep the schema.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA {0} CASCADE; CREATE SCHEMA {0}",
            schema.name()
        ))
        .await
        .expect("reset the schema");
    let mut starting = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        let name = schema.name().to_owned();
        starting.push(tokio::spawn(async move { replica(&url, &name).await }));
    }
    let mut stores = Vec::new();
    for s in starting {
        stores.push(s.await.expect("replica task"));
    }
    let applied: Vec<i64> = client
        .query(
            &format!(
                "SELECT version FROM {}.baton_migrations ORDER BY version",
                schema.name()
            ),
            &[],
        )
        .await
        .expect("read the migrations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i64> = (1..=applied.len() as i64).collect();
    assert!(applied.len() >= 2, "{applied:?}");
    assert_eq!(applied, expected, "each migration applied once, in order");
    // Every replica works on the same tables.
    let wf = workflow("w", vec![node("a", &[])]);
    let run = start_run(&stores[0], &wf).await;
    for s in &stores {
        assert_eq!(s.run(&run).await.expect("run").nodes.len(), 1);
    }
    drop(stores);
    drop(client);
    let _ = driver.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_work_and_requirements() {
    let Some(url) = url("replicas_share_work_and_requirements") else {
        return;
    };
    let (a, schema) = fresh_pg_store(&url).await;
    let b = replica(&url, schema.name()).await;
    let gpu_agent = agent(&a, "gpu", &[("gpu", "yes")], &[]).await;
    // A caches the requirements it knows while it claims.
    let run1 = start_run(&a, &workflow("plain", vec![node("x", &[])])).await;
    let (x, got) = claim_nodes(&a, &gpu_agent, 4).await;
    assert_eq!(got, names(&["x"]));

    // B adds a requirement A has never seen, and a run that needs it.
    let mut g = node("g", &[]);
    g.selector.insert("gpu".into(), "yes".into());
    let run2 = start_run(&b, &workflow("gpu", vec![g, node("after", &["g"])])).await;
    let (g, got) = claim_nodes(&a, &gpu_agent, 4).await;
    assert_eq!(got, names(&["g"]), "A sees the requirement B added");

    // Reports through either replica move the same runs on.
    b.report(&gpu_agent, aref(&x[0]), Outcome::exited(0), None)
        .await
        .expect("report x through B");
    a.report(&gpu_agent, aref(&g[0]), Outcome::exited(0), None)
        .await
        .expect("report g through A");
    let (_, got) = claim_nodes(&b, &gpu_agent, 4).await;
    assert_eq!(got, names(&["after"]));
    assert_eq!(
        a.run(&run1).await.expect("run 1").status,
        baton_core::RunState::Success
    );
    assert_eq!(
        a.run(&run2).await.expect("run 2").nodes["after"].status,
        NodeState::Pending
    );
    // A stale write through the other replica is refused there too.
    assert!(matches!(
        b.report(&gpu_agent, aref(&x[0]), Outcome::exited(1), None)
            .await,
        Err(baton_store::StoreError::Stale(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_replica_are_events_on_another() {
    let Some(url) = url("changes_on_one_replica_are_events_on_another") else {
        return;
    };
    let (a, schema) = fresh_pg_store(&url).await;
    let b = Arc::new(replica(&url, schema.name()).await);
    let mut rx = a.events().expect("PostgreSQL announces changes");
    wait_listening(&*b, &mut rx).await;

    let ag = agent(&*b, "a", &[], &[]).await;
    let run = start_run(
        &*b,
        &workflow("chain", vec![node("a", &[]), node("b", &["a"])]),
    )
    .await;
    // Both, in whatever order they come.
    let mut want = vec![StoreEvent::Work, StoreEvent::Run(run.clone())];
    while !want.is_empty() {
        let e = next_matching(&mut rx, |e| want.contains(e)).await;
        want.retain(|w| *w != e);
    }

    let (got, _) = claim_nodes(&*b, &ag, 1).await;
    next_matching(&mut rx, |e| *e == StoreEvent::Run(run.clone())).await;
    while rx.try_recv().is_ok() {}
    b.report(&ag, aref(&got[0]), Outcome::exited(0), None)
        .await
        .expect("report");
    // The report made b claimable: held claims on A must look again.
    next_matching(&mut rx, |e| *e == StoreEvent::Work).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_reconnects_and_says_to_look_again() {
    let Some(url) = url("listener_reconnects_and_says_to_look_again") else {
        return;
    };
    // A name of its own, so only this store's listener is cut.
    let app = format!("reconnect{:08x}", rand_suffix());
    let sep = if url.contains('?') { '&' } else { '?' };
    let (a, _schema) = fresh_pg_store(&format!("{url}{sep}application_name={app}")).await;
    let mut rx = a.events().expect("PostgreSQL announces changes");
    wait_listening(&a, &mut rx).await;

    // Cut every listening connection of this database, as a server restart would.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(conn);
    let cut: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&format!("{app}-listen")],
        )
        .await
        .expect("terminate listeners")
        .get(0);
    assert!(cut >= 1, "a listening connection was found");
    next_matching(&mut rx, |e| *e == StoreEvent::Work).await;
    // And it listens again.
    wait_listening(&a, &mut rx).await;
    drop(client);
    let _ = driver.await;
}

fn rand_suffix() -> u32 {
    std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
}

/// Two replicas create runs of a workflow limited to two active runs at once, and finish
/// them through either replica: never more than two hold a place, none is free while runs
/// wait, and every run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_keep_a_concurrency_limit_together() {
    let Some(url) = url("replicas_keep_a_concurrency_limit_together") else {
        return;
    };
    let (a, schema) = fresh_pg_store(&url).await;
    let a = Arc::new(a);
    let b = Arc::new(replica(&url, schema.name()).await);
    let mut wf = workflow("limited", vec![node("x", &[])]);
    wf.concurrency = Some(baton_core::Concurrency {
        limit: 2,
        on_conflict: baton_core::OnConflict::Queue,
    });
    a.apply_workflow(&wf, "src").await.expect("apply");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s: Arc<dyn Store> = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.create_run(&baton_api::CreateRun::latest("limited"))
                .await
                .expect("create")
        }));
    }
    for t in tasks {
        t.await.expect("creator");
    }
    let ag = agent(&*a, "worker", &[], &[]).await;
    let mut ended = 0;
    for round in 0.. {
        let runs = a
            .list_runs(&baton_api::RunFilter {
                workflow: Some("limited".into()),
                status: None,
                limit: Some(100),
            })
            .await
            .expect("list");
        let active = runs
            .iter()
            .filter(|r| !r.status.is_terminal() && r.status != baton_core::RunState::Created)
            .count();
        let queued = runs
            .iter()
            .filter(|r| r.status == baton_core::RunState::Created)
            .count();
        assert!(active <= 2, "{active} active");
        assert!(
            queued == 0 || active == 2,
            "a free place while {queued} wait"
        );
        ended = runs.iter().filter(|r| r.status.is_terminal()).count();
        if ended == 20 {
            break;
        }
        assert!(round < 100, "runs stopped moving: {ended} ended");
        let claimer: &dyn Store = if round % 2 == 0 { &*a } else { &*b };
        let (got, _) = claim_nodes(claimer, &ag, 10).await;
        let mut reports = Vec::new();
        for (i, x) in got.into_iter().enumerate() {
            let s: Arc<dyn Store> = if i % 2 == 0 { b.clone() } else { a.clone() };
            let ag = ag.clone();
            reports.push(tokio::spawn(async move {
                s.report(&ag, aref(&x), Outcome::exited(0), None)
                    .await
                    .expect("report")
            }));
        }
        for r in reports {
            r.await.expect("reporter");
        }
    }
    assert_eq!(ended, 20);
}

/// Agents on two replicas claim nodes of a `count: 2` resource at once, round after round:
/// never more than two hold it, and every node runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_never_overfill_a_counted_resource() {
    let Some(url) = url("replicas_never_overfill_a_counted_resource") else {
        return;
    };
    let (a, schema) = fresh_pg_store(&url).await;
    let a: Arc<dyn Store> = Arc::new(a);
    let b: Arc<dyn Store> = Arc::new(replica(&url, schema.name()).await);
    let nodes: Vec<_> = (0..16)
        .map(|i| {
            let mut n = node(&format!("n{i:02}"), &[]);
            n.resources = vec![baton_core::ResourceUse {
                name: "pool".to_owned(),
                count: 2,
            }];
            n
        })
        .collect();
    start_run(&*a, &workflow("pool", nodes)).await;
    let mut claimers = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = agent(&*store, &format!("w{i}"), &[], &[]).await;
        claimers.push((store, Arc::new(id)));
    }
    let mut ran = std::collections::BTreeSet::new();
    for round in 0.. {
        assert!(round < 200, "no progress: {ran:?}");
        let tasks: Vec<_> = claimers
            .iter()
            .map(|(store, id)| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    let got = store.claim(&id, 3, 10_000).await.expect("claim");
                    (store, id, got.assignments)
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            let (store, id, got) = t.await.expect("claimer");
            held.extend(got.into_iter().map(|x| (store.clone(), id.clone(), x)));
        }
        assert!(held.len() <= 2, "round {round}: {} holders", held.len());
        let listed = b.resources().await.expect("resources");
        assert_eq!(
            listed.iter().map(|r| r.holders.len()).sum::<usize>(),
            held.len()
        );
        for (store, id, x) in &held {
            assert!(ran.insert(x.node.clone()), "{} ran twice", x.node);
            store
                .report(id, aref(x), Outcome::exited(0), None)
                .await
                .expect("report");
        }
        if ran.len() == 16 {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_meeting_a_resource_being_taken_looks_again_soon() {
    let Some(url) = url("a_claim_meeting_a_resource_being_taken_looks_again_soon") else {
        return;
    };
    let clock = baton_store::testing::TestClock::new();
    let (store, schema) = fresh_pg_store(&url).await;
    let store = store.with_clock(clock.as_fn());
    let mut locked = node("x", &[]);
    locked.resources = vec![baton_core::ResourceUse {
        name: "db".to_owned(),
        count: 1,
    }];
    start_run(&store, &workflow("locked", vec![locked])).await;
    let ag = agent(&store, "a", &[], &[]).await;
    // Another claim taking `db` right now: it holds the resource's advisory lock (the key
    // `resources` uses) until its transaction ends.
    let (other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(conn);
    other
        .batch_execute(&format!(
            "SET search_path TO {}; BEGIN; \
             SELECT pg_advisory_xact_lock(hashtextextended( \
               'baton:resource:' || COALESCE(current_schema(), '') || ':db', 0))",
            schema.name()
        ))
        .await
        .expect("take the resource's lock");

    let got = store.claim(&ag, 2, 10_000).await.expect("claim");
    assert!(got.assignments.is_empty(), "{:?}", got.assignments);
    // Only this agent looks again, soon; nobody else is woken.
    assert_eq!(got.next_ready_at, Some(clock.now() + 100));

    other.batch_execute("ROLLBACK").await.expect("release");
    let (x, _) = claim_nodes(&store, &ag, 2).await;
    assert_eq!(x.len(), 1, "the resource is free again");
    drop(other);
    let _ = driver.await;
}
