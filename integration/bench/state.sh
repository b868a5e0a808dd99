#!/usr/bin/env bash
# Shared run state on PostgreSQL: a simulated fleet (HIVE_BENCH_HOSTS, default 10,000 winsim hosts,
# one hotfix with a reboot) rolled out by one orchestrator, then by a coordinator and 4 workers
# (2 sites x 2) over the harness's PostgreSQL. Wall time of each, statements per host the workers
# sent (each one round trip), and bytes of rows per host the run leaves in the database.
# Writes $HIVE_BENCH_OUT/state.md.
# Run alone: integration/bench.sh state   (needs the postgres service: bench.sh starts it)
set -euo pipefail
HIVE_ROOT=${HIVE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$HIVE_ROOT"
OUT=${HIVE_BENCH_OUT:-$HIVE_ROOT/docs/bench}
HOSTS=${HIVE_BENCH_HOSTS:-10000}
mkdir -p "$OUT"
if [ -z "${HIVE_TEST_PG_URL:-}" ]; then
  source integration/lib.sh
  start_services postgres
fi
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
HIVE_BENCH_HOSTS=$HOSTS cargo test --release -q --workspace --test state_postgres bench_shared_state \
  -- --ignored --nocapture --test-threads 1 > "$LOG" 2>&1 || { cat "$LOG" >&2; exit 1; }
ROW=$(grep "^| $HOSTS |" "$LOG")
cat > "$OUT/state.md" <<MD
## Shared run state on PostgreSQL ($HOSTS hosts, 4 workers vs one orchestrator)

The same simulated fleet ($HOSTS winsim hosts in this process, one hotfix that wants a 300 ms
reboot, plan \`canary -> 20% -> 100%\`, 200 hosts in flight per orchestrator, no pre-flight)
rolled out by one \`hive rollout\` (NDJSON journal), then by \`hive rollout --state\` as the
coordinator and 4 \`hive worker\`s (2 sites x 2) over a PostgreSQL on loopback. Statements are
each one round trip (\`query_typed\`); bytes are \`pg_column_size\` of the run's rows (indexes
not counted).

| hosts | one orchestrator | coordinator + 4 workers | statements per host (workers) | row bytes per host |
|---|---|---|---|---|
$ROW

All processes share the machine's 2 cores with the simulated fleet, so 4 workers cannot be
faster here than one orchestrator; the figure is what sharing the state costs, not what it
gains (reach and resilience, see docs/scale.md).

What limits it: the workers' statements, one round trip and one transaction each. Most are the
hosts' journal records (a step started, a step finished), written one by one before the step
acts, on the one connection each worker process holds; every one is a commit the database
flushes to its WAL before answering. The single orchestrator makes the same durable writes to
its NDJSON journal but group-commits them (one fsync for every record written meanwhile).
Writing a worker's records in batches, each record still durable before its step acts, is the
next step for this figure.

Reproduce: \`integration/bench.sh state\` (\`HIVE_BENCH_HOSTS\` to change the fleet).
MD
cat "$OUT/state.md"
