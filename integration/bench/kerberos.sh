#!/usr/bin/env bash
# Fleet scan over Kerberos: hive vs unmodified pywinrm (`transport="kerberos"`, pyspnego and
# python-gssapi), both with the ticket a real `kinit` got from the harness's MIT KDC, against the
# same Kerberos-accepting simulated hosts (winsim, keys from the harness keytab) over HTTP with
# message encryption, at the same concurrency. Round trips per host are counted by the hosts.
# Writes $HIVE_BENCH_OUT/scan_kerberos.md (named to follow the NTLM scan sections it refers to).
# Run alone: integration/bench.sh kerberos   (HIVE_BENCH_KRB_HOSTS, _RUNS, _PARALLEL to change the size)
set -euo pipefail
HIVE_ROOT=${HIVE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$HIVE_ROOT"
OUT=${HIVE_BENCH_OUT:-$HIVE_ROOT/docs/bench}
PY=${HIVE_TEST_PYTHON:-$HIVE_ROOT/.venv/bin/python}
# Every host's logon asks the one KDC for a service ticket (hive and pywinrm alike): a few hundred
# hosts keep the single-process MIT KDC from being what is measured.
HOSTS=${HIVE_BENCH_KRB_HOSTS:-300}
RUNS=${HIVE_BENCH_KRB_RUNS:-3}
PAR=${HIVE_BENCH_KRB_PARALLEL:-64}
SPN=HTTP/winsim.hive.test
mkdir -p "$OUT"
[ -x "$PY" ] || { echo "kerberos bench: no Python venv at $PY (run integration/bench.sh)" >&2; exit 1; }
: "${HIVE_TEST_KDC_CONFIG:?kerberos bench: no KDC (run through integration/bench.sh, which starts it)}"
cargo build --release -q --workspace --bins --examples
BENCH="${CARGO_TARGET_DIR:-$HIVE_ROOT/target}/release/examples/scan_bench"
RES=$(mktemp)
CC=$(mktemp -d)
trap 'rm -rf "$RES" "$CC"' EXIT
# The admin's ticket, as `kinit` leaves it; the password goes on stdin. The cache is removed on exit.
export KRB5CCNAME=FILE:$CC/ccache
printf '%s\n' "$HIVE_TEST_KDC_PASSWORD" | kinit "$HIVE_TEST_KDC_USER@$HIVE_TEST_KDC_REALM" > /dev/null
for i in $(seq 1 "$RUNS"); do
  "$BENCH" --hosts "$HOSTS" --parallel "$PAR" --octet $((170 + i)) --python "$PY" \
    --peer integration/bench/scan_peer.py --kerberos "$SPN" >> "$RES"
done
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$RES" "$OUT/scan_kerberos.md" "$LOAD" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda k: statistics.median(r[k] for r in rows)
hive, peer = med("hive_s"), med("peer_s")
r0 = rows[0]
with open(sys.argv[2], "w") as f:
    f.write(f"""## Fleet scan over Kerberos: hive vs pywinrm ({r0['hosts']} simulated hosts, {r0['parallel']} in flight)

The 1,000-host scan above, logged on with Kerberos instead of NTLM: both clients use the ticket a real `kinit`
got from the harness's MIT KDC (realm HIVE.TEST), ask for the service ticket of
`HTTP/winsim.hive.test`, and seal every message (`HTTP-Kerberos-session-encrypted`) to simulated
hosts that accept with the harness keytab. hive through the inventory (`credential =
"kerberos:ccache"`, `spn` in `[group_defaults]`), pywinrm unmodified with `transport="kerberos"`
and a thread pool of the same size. Median of {len(rows)} runs. {r0['hosts']} hosts rather than 1,000:
every logon of both clients costs the single MIT KDC process a service-ticket request, and
a few hundred hosts keep the KDC from being what is measured.

| | hive | pywinrm | ratio |
|---|---|---|---|
| wall time, {r0['hosts']} hosts | {hive:.2f} s | {peer:.2f} s | {peer/hive:.1f}x faster |
| HTTP round trips per host (counted by the simulated hosts) | {med('hive_requests_per_host'):.2f} | {med('peer_requests_per_host'):.2f} | |
| hosts answered | {min(r['hive_ok'] for r in rows)} | {min(r['peer_ok'] for r in rows)} | |

hive's round trips: Create Shell carrying the AP-REQ (sealed under the new context: the logon has
no request of its own), Command, Receive, Delete; NTLM needs one more for its NEGOTIATE/CHALLENGE.

Load average at the end of the run: {sys.argv[3]} (2 cores).

Reproduce: `integration/bench.sh kerberos`.
""")
print(open(sys.argv[2]).read())
PY
