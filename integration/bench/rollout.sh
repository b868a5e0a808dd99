#!/usr/bin/env bash
# Orchestration overhead of a rollout: 1,000 hosts in one wave, every host's job a fixed sequence of
# journaled steps (copy 0.2 s, install 0.3 s, a 20 s simulated reboot), all in flight at once. The
# figure is the run's wall time over the slowest host's own time: what waves, the fsynced journal
# and progress add. Also the run's peak RSS. Writes $HIVE_BENCH_OUT/rollout.md.
# Run alone: integration/bench.sh rollout   (HIVE_BENCH_REBOOT_MS to change the reboot time)
set -euo pipefail
HIVE_ROOT=${HIVE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$HIVE_ROOT"
OUT=${HIVE_BENCH_OUT:-$HIVE_ROOT/docs/bench}
REBOOT_MS=${HIVE_BENCH_REBOOT_MS:-20000}
mkdir -p "$OUT"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
HIVE_BENCH_REBOOT_MS=$REBOOT_MS cargo test --release -q -p hive --test rollout_fleet overhead_1000_hosts \
  -- --ignored --nocapture > "$LOG" 2>&1
LINE=$(grep '^1000 hosts: wall' "$LOG")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
cat > "$OUT/rollout.md" <<MD
## Rollout orchestration overhead (1,000 hosts, ${REBOOT_MS} ms simulated reboots)

One wave of 1,000 hosts, all in flight; each host's job journals three steps (copy 200 ms, install
300 ms, reboot ${REBOOT_MS} ms) through the real journal (fsynced NDJSON) and rollout engine, release
build. Overhead = run wall time / slowest host's own time - 1 (target <= 2 %).

\`${LINE}\`

Load average at the end: ${LOAD} (2 cores). The jobs are simulated steps, not winsim hosts: this
measures what hive adds around the hosts' work, not the hosts.

Reproduce: \`integration/bench.sh rollout\`.
MD
cat "$OUT/rollout.md"
