#!/usr/bin/env bash
# Baton's whole test suite, exactly as CI runs it: formatting, lints, every test (against a
# throwaway PostgreSQL cluster as well as SQLite), docs.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test tools"
# The clock-skew test runs an agent under libfaketime; it fails, naming this command, without it.
if ! command -v faketime >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime
  else
    echo "faketime is missing and this is not root: run 'apt-get install -y faketime' first" >&2
  fi
fi

# The secrets test encodes values the way steps commonly do (python3's urllib and json).
if ! command -v python3 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3
  else
    echo "python3 is missing and this is not root: run 'apt-get install -y python3' first" >&2
  fi
fi

step "postgresql server binaries"
# The suite runs every store case and the replica tests against a throwaway PostgreSQL
# cluster (scripts/pg.sh); this installs the Debian package when root, else names the command.
# A BATON_TEST_PG_URL given from outside is used as it is, and no cluster is made.
if [ -z "${BATON_TEST_PG_URL:-}" ]; then
  scripts/pg.sh ensure
fi

step "rustfmt"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
log=$(mktemp)
pg_dir=
cleanup() {
  rm -f "$log"
  if [ -n "$pg_dir" ]; then scripts/pg.sh stop "$pg_dir"; fi
}
trap cleanup EXIT
# An interrupted run still removes the cluster: exiting runs the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -z "${BATON_TEST_PG_URL:-}" ]; then
  # Assigned first, so that a cluster that fails to start stops the script (set -e).
  pg_env=$(scripts/pg.sh start)
  eval "$pg_env"
  pg_dir=$BATON_TEST_PG_DIR
else
  echo "using the PostgreSQL server at BATON_TEST_PG_URL"
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee "$log"
  # nextest does not run doctests.
  cargo test --workspace --locked --doc
  passed=$(sed -n 's/.*tests run: \([0-9]*\) passed.*/\1/p' "$log" | tail -n 1)
else
  echo "cargo-nextest not found; using cargo test"
  cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
  passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
fi
# The cluster is not needed past the tests.
if [ -n "$pg_dir" ]; then
  scripts/pg.sh stop "$pg_dir"
  pg_dir=
fi

# Benches are compiled, never run or timed here. `--bench '*'` builds only the criterion
# targets (core, store): plain `cargo bench --no-run` would also build every crate's unit
# tests and binaries in release.
step "benches compile"
cargo bench --workspace --bench '*' --no-run --locked

step "docs (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# A failing test stops the script above (pipefail), so reaching here means none failed.
printf '\nall checks passed\ntests: %s passed, 0 failed\n' "${passed:-0}"
