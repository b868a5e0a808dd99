#!/usr/bin/env bash
# 100,000 simulated hosts scanned from one orchestrator (hive only: pywinrm would take half an hour).
# Writes $HIVE_BENCH_OUT/scan100k.md: wall time, hosts answered, round trips per host, hive's peak
# RSS with every result held, the fleet's start time, and whether every host got the verdicts the
# 1,000-host run gives.
#
# The fleet needs one listening socket per host, and a process here may hold at most 20,000
# descriptors: `ulimit -Hn` is 20,000 and even root cannot raise it in this container. So the
# simulator runs as several winsim processes (shards, each under the limit, each host still its own
# 127.x.y.z listener), started by scan_bench, with the soft limit raised to the hard one here.
# Run alone: integration/bench.sh scan100k   (HIVE_BENCH_SCAN100K_HOSTS, _PARALLEL change the size)
set -euo pipefail
HIVE_ROOT=${HIVE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$HIVE_ROOT"
OUT=${HIVE_BENCH_OUT:-$HIVE_ROOT/docs/bench}
HOSTS=${HIVE_BENCH_SCAN100K_HOSTS:-100000}
PAR=${HIVE_BENCH_SCAN100K_PARALLEL:-64}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
cargo build --release -q --workspace --bins --examples
BENCH="${CARGO_TARGET_DIR:-$HIVE_ROOT/target}/release/examples/scan_bench"
RES=$(mktemp)
trap 'rm -f "$RES" "$RES.ref"' EXIT
# The reference: the 1,000-host fleet of the scan part (same template), hive only.
"$BENCH" --hosts 1000 --parallel "$PAR" --octet 195 --no-peer > "$RES.ref"
"$BENCH" --hosts "$HOSTS" --parallel "$PAR" --octet 200 --no-peer > "$RES"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$RES" "$RES.ref" "$OUT/scan100k.md" "$LOAD" "$(ulimit -Hn)" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
ref = json.loads(open(sys.argv[2]).read())
# Every host's verdicts (patch, status, evidence) must be one the 1,000-host run gave its OS.
wrong = 0
for os_name, digests in r["verdicts"].items():
    known = set(ref["verdicts"].get(os_name, {})) if os_name != "failed" else set()
    wrong += sum(n for d, n in digests.items() if d not in known)
checked = sum(sum(d.values()) for d in r["verdicts"].values())
oses = ", ".join(f"{o}: {sum(d.values()):,} hosts, {len(d)} distinct verdict set(s)"
                 for o, d in r["verdicts"].items())
with open(sys.argv[3], "w") as f:
    f.write(f"""## Fleet scan: {r['hosts']:,} hosts from one orchestrator

hive alone (pywinrm would need about half an hour at its 1,000-host rate), {r['parallel']} hosts in
flight, against {r['hosts']:,} simulated Windows Server 2019 hosts (winsim, each its own 127.x.y.z
WinRM listener, NTLM with message encryption) run by {r['fleet_processes']} simulator processes:
a process may hold {sys.argv[5]} descriptors here (`ulimit -Hn`, a hard limit even root cannot raise
in this container), so the fleet is split into shards below it, and the harness raises the soft
limit to the hard one. The 2-core machine runs hive and all the simulators.

| | |
|---|---|
| wall time, {r['hosts']:,} hosts | **{r['hive_s']:.1f} s** (target <= 60 s; {r['hosts'] / r['hive_s']:,.0f} hosts/s) |
| hosts answered | {r['hive_ok']:,} |
| HTTP round trips per host (counted by the simulated hosts) | {r['hive_requests_per_host']:.2f} |
| hive's peak memory (VmHWM, every result held) | **{r['rss_peak_kib'] / 1048576:.2f} GiB** (target <= 2 GiB), {(r['rss_peak_kib'] - r['rss_before_kib']) / r['hosts']:.1f} KiB per host scanned |
| fleet start ({r['fleet_processes']} processes, all listeners bound) | {r['fleet_start_s']:.1f} s |

Verdicts: {checked - wrong:,} of {checked:,} hosts got exactly the verdicts (patch, status,
evidence) the 1,000-host run of the same fleet shape gives ({oses}).
The simulated drives are written on first use only (a scan only reads, so none is written): laying
out 100,000 drives as folders took more than 4 minutes before the first listener.

What limits it: CPU. hive and the simulators share the 2 cores and keep both busy (a run of
this bench measured with `/usr/bin/time`: 117 s of CPU, user and system, in 61 s of wall time
of which the scan took 55 s). A
frame-pointer profile of a 5,000-host run of the same bench (2026-12-05, load average 2) splits
it as: the kernel's TCP over loopback (connect, 5 round trips and close per host, both sides)
27.6 %; NTLM sealing of the 20 KB probe and its answer on both sides, RC4 11.5 % and the
HMAC-MD5 signatures 11.1 %; memory allocation and copies 19 % (glibc malloc, before the switch below); the rest HTTP, XML, JSON and
the simulator's model. About 55 % of all samples are the simulator's. Changes of this issue
behind the figure (from 74.3 s): each host's scan a task of its own, the probe encoded once
for the fleet, verdicts sharing the catalog's names, each product's host rule worked out once
per catalog instead of per host and target, RC4 four keystream bytes a round (both sides),
mimalloc as the allocator (glibc's consolidation of the tens-of-kilobyte buffers each host
costs was a tenth of the CPU; the bench binary, hive and its simulator children, uses the
allocator the `hive` binary ships with), and a cheaper simulator (the fleet's one probe line decoded and parsed once per process, slices
instead of char pushes when tokenizing, log lines shared). With sealing a fifth of the CPU and
the round trips fixed by WinRM, there is little left to take on either side: the figure is
within a tenth of the 60 s goal and moves with the machine's load.

Load average at the end of the run: {sys.argv[4]} (2 cores).

Reproduce: `integration/bench.sh scan100k`.
""")
print(open(sys.argv[3]).read())
if wrong or r["hive_ok"] != r["hosts"]:
    sys.exit(f"scan100k: {wrong} host(s) with other verdicts, {r['hosts'] - r['hive_ok']} not answered")
PY
