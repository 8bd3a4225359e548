#!/usr/bin/env bash
# T2 at scale, behind the figures of docs/deployment.md: two `baton server` replicas on one
# PostgreSQL database, 8 agents split across them, N claims of `noop` nodes. It counts double
# claims from the run documents (there must be none) and compares the claim throughput of two
# replicas with that of one (the same 8 agents on one replica). It runs the suite's own T2 test,
# scaled up through BATON_T2_CLAIMS, against a throwaway cluster (scripts/pg.sh) kept at
# PostgreSQL's durable defaults (fsync and synchronous_commit on), one size at a time.
#
# Usage: scripts/t2.sh [CLAIMS...]   (default: 20000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
  set -- 20000 100000
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Build first, so that compiling is not timed and the cluster is not up meanwhile.
cargo test -p baton-baton --locked --test e2e --no-run

export BATON_PG_FSYNC=on
for claims in "$@"; do
  printf '\n==> T2 with %s claims\n' "$claims"
  start=$(date +%s)
  BATON_T2_CLAIMS=$claims scripts/pg.sh run \
    cargo test -p baton-baton --locked --test e2e -- --exact --nocapture \
    replicas::t2_two_replicas_claim_every_node_exactly_once 2>&1 | tee -a "$log"
  printf '==> %s claims took %s s\n' "$claims" "$(($(date +%s) - start))"
done

printf '\n==> figures\n'
grep -E '^T2 ' "$log" | sed -e 's/^T2 //' -e 's/ /\n    /g'
