//! PostgreSQL stores for tests: each in a fresh schema of the database named by
//! `BATON_TEST_PG_URL`, dropped when the test is done.

use std::sync::Arc;

use super::{Harness, TestClock};
use crate::{PgOptions, PgStore};

/// The environment variable naming the test database (`postgres://user@host:port/db`).
pub const PG_URL_VAR: &str = "BATON_TEST_PG_URL";

/// The test database's URL, when one is configured.
///
/// # Panics
///
/// When none is configured and `CI` is set: PostgreSQL tests must run in CI, never pass
/// by skipping there.
pub fn pg_url() -> Option<String> {
    let url = std::env::var(PG_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() && in_ci() {
        panic!(
            "{PG_URL_VAR} is not set but CI is: PostgreSQL tests must run here. Run \
             scripts/test.sh (it starts a throwaway cluster), or start one with \
             `eval \"$(scripts/pg.sh start)\"`, or set {PG_URL_VAR} to a database URL"
        );
    }
    url
}

/// Whether the tests run in CI (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Drops its schema (and everything in it) when dropped.
#[derive(Debug)]
pub struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop may run inside or outside a runtime, on any flavour: a thread with its own
        // runtime works everywhere.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping a test schema");
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connect to drop a test schema");
                let driver = tokio::spawn(conn);
                client
                    .batch_execute(&sql)
                    .await
                    .expect("drop a test schema");
                drop(client);
                let _ = driver.await;
            });
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("dropping test schema {} failed", self.name);
        }
    }
}

/// A store in a fresh schema `baton_t_<random>` of the database at `url`, with the guard
/// that drops the schema.
pub async fn fresh_pg_store(url: &str) -> (PgStore, PgSchema) {
    let name = format!("baton_t_{:016x}", rand::random::<u64>());
    let guard = PgSchema {
        url: url.to_owned(),
        name: name.clone(),
    };
    let store = PgStore::connect(
        url,
        PgOptions {
            schema: Some(name),
            pool_size: 8,
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect to the test database");
    (store, guard)
}

/// The conformance factory for PostgreSQL: a fresh schema driven by `clock`, or `None`
/// when `BATON_TEST_PG_URL` is not set.
pub async fn pg_harness(clock: TestClock) -> Option<Harness> {
    let url = pg_url()?;
    let (store, schema) = fresh_pg_store(&url).await;
    let store = store.with_clock(clock.as_fn());
    Some(Harness::new(Arc::new(store), clock, schema))
}
