#!/usr/bin/env bash
# The long fault-injection loops behind docs/reliability.md: agents SIGKILLed at random points
# of their nodes' lives (T3/T4) and the server SIGKILLed under load and restarted (T7). They
# run the same tests as CI, scaled up through environment variables, one at a time so the
# figures are not skewed by each other, and print the figures.
#
# Usage: scripts/faults.sh [AGENT_KILLS [SERVER_KILLS]]   (default 100 and 50)
# BATON_FAULT_SEED=N replays the random choices of an earlier loop (each test prints its seed).
set -euo pipefail
cd "$(dirname "$0")/.."

agent_kills=${1:-100}
server_kills=${2:-50}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

export BATON_FAULT_KILLS=$agent_kills BATON_FAULT_SERVER_KILLS=$server_kills
start=$(date +%s)
cargo test -p baton-baton --locked --test e2e -- --exact --nocapture --test-threads 1 \
  faults_agent::agents_killed_at_random_points_lose_no_node_and_double_no_success \
  faults_server::server_killed_at_random_moments_loses_nothing_acknowledged 2>&1 | tee "$log"

printf '\n==> figures (%s s)\n' "$(($(date +%s) - start))"
grep -oE 'BATON_FAULT_SEED=[0-9]+|FAULTS .*' "$log" | sed -e 's/^FAULTS //' -e 's/ /\n    /g'
