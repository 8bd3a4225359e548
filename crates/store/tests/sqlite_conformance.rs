//! The conformance suite on SQLite, one fresh database file per case.

use std::sync::Arc;

use baton_store::testing::{Harness, TestClock};
use baton_store::{SqliteOptions, SqliteStore};

baton_store::conformance_tests!(|clock: TestClock| async move {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::new(dir.path().join("baton.db")))
        .expect("open the database")
        .with_clock(clock.as_fn());
    Some(Harness::new(Arc::new(store), clock, dir))
});
