//! The SQLite store on the hot path: creating a 10,000-node run, claim + report pairs along
//! a chain, and claims from a run with many ready nodes. With `BATON_TEST_PG_URL` set, the
//! chain also runs on PostgreSQL (a fresh schema of that database).
//!
//! `cargo bench -p baton-store --bench claim`. Each function gets its own database file in
//! a temp dir; only the measured calls are timed (new runs are made, and claimed attempts
//! reported, outside the timing). Sample sizes are small so a full pass takes about a minute; CI only
//! compiles this (`cargo bench --no-run`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_api::Assignment;
use baton_core::Outcome;
use baton_store::testing::{self, LEASE};
use baton_store::{SqliteOptions, SqliteStore, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Nodes of the wide workflow: the format's limit.
const WIDE: usize = 10_000;
/// Nodes of the chain.
const CHAIN: usize = 1_000;

/// A store in a temp dir (or a fresh PostgreSQL schema) with one agent and the two
/// workflows applied.
struct Fixture {
    rt: Runtime,
    store: Arc<dyn Store>,
    agent: String,
    /// The temp dir or the schema, removed after the store is dropped.
    _guard: Box<dyn std::any::Any>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&SqliteOptions::new(dir.path().join("baton.db")))
            .expect("open the store");
        Fixture::with(|_| (Arc::new(store), Box::new(dir)))
    }

    /// On PostgreSQL, when `BATON_TEST_PG_URL` names a database.
    fn postgres() -> Option<Fixture> {
        let url = testing::pg_url()?;
        Some(Fixture::with(|rt| {
            let (store, schema) = rt.block_on(testing::fresh_pg_store(&url));
            (Arc::new(store), Box::new(schema))
        }))
    }

    fn with(open: impl FnOnce(&Runtime) -> (Arc<dyn Store>, Box<dyn std::any::Any>)) -> Fixture {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (store, guard) = open(&rt);
        let agent = rt.block_on(async {
            let wide = (0..WIDE)
                .map(|i| testing::node(&format!("n{i}"), &[]))
                .collect();
            let ids: Vec<String> = (0..CHAIN).map(|i| format!("n{i}")).collect();
            let chain = (0..CHAIN)
                .map(|i| match i {
                    0 => testing::node(&ids[0], &[]),
                    _ => testing::node(&ids[i], &[&ids[i - 1]]),
                })
                .collect();
            for wf in [
                testing::workflow("wide", wide),
                testing::workflow("chain", chain),
            ] {
                store.apply_workflow(&wf, "# bench\n").await.expect("apply");
            }
            testing::agent(&*store, "bench", &[], &[]).await
        });
        Fixture {
            rt,
            store,
            agent,
            _guard: guard,
        }
    }

    fn report_all(&self, assignments: &[Assignment]) {
        self.rt.block_on(async {
            for a in assignments {
                self.store
                    .report(&self.agent, testing::aref(a), Outcome::exited(0), None)
                    .await
                    .expect("report");
            }
        });
    }

    fn create_run(&self, workflow: &str) {
        self.rt
            .block_on(
                self.store
                    .create_run(&baton_api::CreateRun::latest(workflow)),
            )
            .expect("create run");
    }
}

fn create_run(c: &mut Criterion) {
    let f = Fixture::new();
    let mut g = c.benchmark_group("create_run");
    g.throughput(Throughput::Elements(WIDE as u64));
    g.bench_function("10k_independent_nodes", |b| b.iter(|| f.create_run("wide")));
    g.finish();
}

fn claim_report_chain(c: &mut Criterion) {
    chain(c, "chain", Fixture::new());
    match Fixture::postgres() {
        Some(f) => chain(c, "postgres_chain", f),
        None => eprintln!("SKIPPED (no BATON_TEST_PG_URL): postgres_chain bench"),
    }
}

fn chain(c: &mut Criterion, group: &str, f: Fixture) {
    let mut left = 0;
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.bench_function("claim_then_report_one_node", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if left == 0 {
                    f.create_run("chain");
                    left = CHAIN;
                }
                let t0 = Instant::now();
                f.rt.block_on(async {
                    let got = f.store.claim(&f.agent, 1, LEASE).await.expect("claim");
                    let a = got.assignments.first().expect("the next node is ready");
                    f.store
                        .report(&f.agent, testing::aref(a), Outcome::exited(0), None)
                        .await
                        .expect("report");
                });
                spent += t0.elapsed();
                left -= 1;
            }
            spent
        })
    });
    g.finish();
}

fn claim_many_ready(c: &mut Criterion) {
    let f = Fixture::new();
    let mut left = 0;
    let mut g = c.benchmark_group("claim_from_10k_ready");
    for max in [1u32, 16] {
        g.throughput(Throughput::Elements(u64::from(max)));
        g.bench_function(format!("max_{max}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    if left < max as usize {
                        // Claimed attempts stay pending; a fresh run brings 10,000 ready.
                        f.create_run("wide");
                        left += WIDE;
                    }
                    let t0 = Instant::now();
                    let got =
                        f.rt.block_on(f.store.claim(&f.agent, max, LEASE))
                            .expect("claim");
                    spent += t0.elapsed();
                    assert_eq!(got.assignments.len(), max as usize);
                    left -= max as usize;
                    // A real agent holds at most its slots: end these (untimed) so the
                    // agent's open attempts do not pile up into the thousands.
                    f.report_all(&got.assignments);
                }
                spent
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = create_run, claim_report_chain, claim_many_ready
}
criterion_main!(benches);
