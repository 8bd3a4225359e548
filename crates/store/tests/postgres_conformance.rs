//! The conformance suite on PostgreSQL, one fresh schema per case, in the database named
//! by `BATON_TEST_PG_URL`. Without it every case passes after printing that it was
//! skipped: `scripts/test.sh` always provides a throwaway cluster.

baton_store::conformance_tests!(
    skipped: "SKIPPED (no BATON_TEST_PG_URL): postgres conformance case",
    baton_store::testing::pg_harness
);
