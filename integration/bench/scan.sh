#!/usr/bin/env bash
# Fleet scan: hive vs a pywinrm thread pool running the same probe at the same concurrency, against
# the same 1,000 simulated Windows Server 2019 hosts (NTLM with message encryption) in the same run.
# Also the peak RSS the scan adds per host in flight. Writes $HIVE_BENCH_OUT/scan.md.
# Run alone: integration/bench.sh scan   (HIVE_BENCH_SCAN_HOSTS, _RUNS, _PARALLEL to change the size)
set -euo pipefail
HIVE_ROOT=${HIVE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$HIVE_ROOT"
OUT=${HIVE_BENCH_OUT:-$HIVE_ROOT/docs/bench}
PY=${HIVE_TEST_PYTHON:-$HIVE_ROOT/.venv/bin/python}
HOSTS=${HIVE_BENCH_SCAN_HOSTS:-1000}
RUNS=${HIVE_BENCH_SCAN_RUNS:-3}
PAR=${HIVE_BENCH_SCAN_PARALLEL:-64}
mkdir -p "$OUT"
[ -x "$PY" ] || { echo "scan bench: no Python venv at $PY (run integration/bench.sh)" >&2; exit 1; }
cargo build --release -q --example scan_bench
BENCH="${CARGO_TARGET_DIR:-$HIVE_ROOT/target}/release/examples/scan_bench"
RES=$(mktemp)
trap 'rm -f "$RES"' EXIT
for i in $(seq 1 "$RUNS"); do
  "$BENCH" --hosts "$HOSTS" --parallel "$PAR" --octet $((150 + i)) --python "$PY" \
    --peer integration/bench/scan_peer.py >> "$RES"
done
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$RES" "$OUT/scan.md" "$LOAD" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda k: statistics.median(r[k] for r in rows)
hive, peer = med("hive_s"), med("peer_s")
r0 = rows[0]
with open(sys.argv[2], "w") as f:
    f.write(f"""## Fleet scan: hive vs pywinrm ({r0['hosts']} simulated hosts, {r0['parallel']} in flight)

Each run starts {r0['hosts']} simulated Windows Server 2019 hosts (winsim, one 127.x.y.z each, WinRM
with NTLM message encryption) and scans them all with hive (one authenticated connection and one
probe per host, the March 2024 CVRF catalog), then runs unmodified pywinrm with a thread pool of
the same size sending the same probe script to the same hosts (its own connection, handshake and
shell per host). The simulator runs in hive's process and serves both. Median of {len(rows)} runs.

| | hive | pywinrm | ratio (pywinrm time / hive time) |
|---|---|---|---|
| wall time, {r0['hosts']} hosts | {hive:.2f} s | {peer:.2f} s | {peer/hive:.1f}x |
| hosts answered | {min(r['hive_ok'] for r in rows)} | {min(r['peer_ok'] for r in rows)} | |

Peak RSS added by the scan: {med('per_in_flight_kib'):.0f} KiB per host in flight (VmHWM during the
scan minus VmRSS before it, divided by {r0['parallel']}; includes the simulator's per-connection state,
since the fleet lives in the same process). Target: hive >= 20x faster, <= 64 KiB per host in flight.
Load average at the end of the run: {sys.argv[3]} (2 cores).

HTTP round trips per host are not measured yet.

Reproduce: `integration/bench.sh scan`.
""")
print(open(sys.argv[2]).read())
PY
