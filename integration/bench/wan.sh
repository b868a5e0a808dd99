#!/usr/bin/env bash
# WAN part of BENCHMARKS.md: the 1,000-host scan (hive vs pywinrm) and one installer copy (hive-smb
# vs smbclient) with a round-trip delay on every connection, as real fleets sit 5 to 100 ms away.
# The kernel here has no netem, so integration/bench/wan_relay.py (a userspace TCP relay) sits
# between every client and its server and delays every byte by half the round trip each way, for
# hive and its peer alike. Its delay is checked first: one-byte round trips through it, timed.
# Run through integration/bench.sh (which starts Samba): `integration/bench.sh wan`.
# HIVE_BENCH_WAN_RTT_MS (30), HIVE_BENCH_WAN_RUNS (3), HIVE_BENCH_WAN_HOSTS (1000),
# HIVE_BENCH_WAN_MIB (64: the installer's size) change the sizes.
set -euo pipefail
: "${HIVE_TEST_SMB_PORT:?run through integration/bench.sh, which starts Samba}"
: "${HIVE_BENCH_OUT:?run through integration/bench.sh}"
cd "$HIVE_ROOT"
RTT=${HIVE_BENCH_WAN_RTT_MS:-30}
RUNS=${HIVE_BENCH_WAN_RUNS:-3}
HOSTS=${HIVE_BENCH_WAN_HOSTS:-1000}
MIB=${HIVE_BENCH_WAN_MIB:-64}
PY=${HIVE_TEST_PYTHON:-$HIVE_ROOT/.venv/bin/python}
RELAY=integration/bench/wan_relay.py
target=${CARGO_TARGET_DIR:-$HIVE_ROOT/target}
cargo build --release -q --workspace --bins --examples
work=$HIVE_TEST_RUN/bench-wan
mkdir -p "$work"
relay_pid=""
cleanup() { [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# 1. The delay itself.
python3 "$RELAY" --rtt-ms "$RTT" --ping 30 > "$work/ping.json"

# 2. The scan: scan_bench starts the relay between both clients and the fleet.
for i in $(seq 1 "$RUNS"); do
  "$target/release/examples/scan_bench" --hosts "$HOSTS" --parallel 64 --octet $((170 + i)) \
    --python "$PY" --peer integration/bench/scan_peer.py \
    --wan-rtt-ms "$RTT" --relay "$RELAY" --relay-octet $((220 + i)) >> "$work/scan.jsonl"
done

# 3. One installer copy to the default share through the relay, alternating who goes first.
head -c $((MIB << 20)) /dev/urandom > "$work/installer.bin"
src_sha=$(openssl dgst -sha256 -r "$work/installer.bin" | cut -d' ' -f1)
relay_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "127.0.0.1 $relay_port $HIVE_TEST_SMB_HOST $HIVE_TEST_SMB_PORT" > "$work/smb.map"
mkfifo "$work/relay.in"
python3 "$RELAY" --rtt-ms "$RTT" --map "$work/smb.map" < "$work/relay.in" > "$work/relay.out" &
relay_pid=$!
exec 3> "$work/relay.in"
for _ in $(seq 100); do grep -q ready "$work/relay.out" 2>/dev/null && break; sleep 0.1; done
printf 'username = %s\npassword = %s\n' "$HIVE_TEST_SMB_USER" "$HIVE_TEST_SMB_PASSWORD" > "$work/auth"
chmod 600 "$work/auth"
export HIVE_BENCH_SMB_PASSWORD=$HIVE_TEST_SMB_PASSWORD
root=$HIVE_TEST_SMB_ADMIN_ROOT
now() { date +%s.%N; }
smbclient_up() {
  local t0 t1
  t0=$(now)
  smbclient "//127.0.0.1/$HIVE_TEST_SMB_ADMIN_SHARE" -p "$relay_port" -A "$work/auth" \
    -c "put $work/installer.bin wan-sc.bin" > "$work/smbclient.out" 2>&1 ||
    { cat "$work/smbclient.out" >&2; return 1; }
  t1=$(now)
  python3 -c "print($t1 - $t0)"
}
# hive: the copy, then the host's hash of what it received (as the deploy verifies it).
hive_up() {
  local secs t0 t1 sum
  secs=$("$target/release/examples/smb_bench" upload 127.0.0.1 "$relay_port" \
    "$HIVE_TEST_SMB_ADMIN_SHARE" "$HIVE_TEST_SMB_USER" "$work/installer.bin" wan-hive.bin | cut -d' ' -f1)
  t0=$(now)
  sum=$(openssl dgst -sha256 -r "$root/wan-hive.bin" | cut -d' ' -f1)
  t1=$(now)
  [ "$sum" = "$src_sha" ] || { echo "hive's copy has SHA-256 $sum, expected $src_sha" >&2; return 1; }
  python3 -c "print($secs + $t1 - $t0 + $RTT / 1000)"
}
for ((i = 0; i < RUNS; i++)); do
  rm -f "$root"/wan-*.bin
  sync
  if ((i % 2 == 0)); then
    echo "smbclient $(smbclient_up)"; sync; echo "hive $(hive_up)"; sync
  else
    echo "hive $(hive_up)"; sync; echo "smbclient $(smbclient_up)"; sync
  fi
done > "$work/smb.txt"
rm -f "$root"/wan-*.bin
exec 3>&-
wait "$relay_pid" || true
relay_pid=""
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work" "$RTT" "$MIB" "$load_before" "$load_after" > "$HIVE_BENCH_OUT/wan.md" <<'PY'
import json, statistics, sys
work, rtt, mib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
ping = json.load(open(f"{work}/ping.json"))
rows = [json.loads(l) for l in open(f"{work}/scan.jsonl") if l.strip()]
smb = {}
for line in open(f"{work}/smb.txt"):
    who, secs = line.split()
    smb.setdefault(who, []).append(float(secs))
med = lambda k: statistics.median(r[k] for r in rows)
hive, peer = med("hive_s"), med("peer_s")
sh, ss = statistics.median(smb["hive"]), statistics.median(smb["smbclient"])
print(f"## WAN: {rtt:.0f} ms round trip on every connection")
print()
print("On loopback a round trip costs nothing; real fleets sit 5 to 100 ms away. Here every")
print("connection of both clients goes through `integration/bench/wan_relay.py`, a userspace TCP")
print(f"relay that writes every byte {rtt/2:.0f} ms after reading it, in both directions, and connects")
print(f"to the server {rtt:.0f} ms after accepting (TCP's handshake). It never limits bandwidth.")
print(f"How the delay was checked: {ping['round_trips']} one-byte round trips through the relay to an echo")
print(f"server took {ping['relayed_median_ms']:.1f} ms (median; min {ping['relayed_min_ms']:.1f}, max")
print(f"{ping['relayed_max_ms']:.1f}), against {ping['direct_median_ms']:.2f} ms without it; connect + first")
print(f"round trip {ping['relayed_connect_and_first_ms']:.1f} ms. Above {rtt:.0f} ms is the relay's own")
print("scheduling on the loaded machine, paid by both sides alike.")
print()
print("| | hive | peer | ratio |")
print("|---|---|---|---|")
print(f"| scan, {rows[0]['hosts']} simulated hosts, 64 in flight (median of {len(rows)}) | {hive:.2f} s | {peer:.2f} s (pywinrm) | {peer/hive:.1f}x faster |")
print(f"| one {mib} MiB installer copy to the default share (median of {len(smb['hive'])}) | {sh:.2f} s | {ss:.2f} s (`smbclient put`) | {ss/sh:.2f}x |")
print()
print(f"Hosts answered: hive {min(r['hive_ok'] for r in rows)}, pywinrm {min(r['peer_ok'] for r in rows)}. HTTP round trips per host:")
print(f"hive {med('hive_requests_per_host'):.2f}, pywinrm {med('peer_requests_per_host'):.2f}. hive's copy time includes the host")
print("hashing the file it received (`openssl dgst -sha256` on Samba's copy, compared with the")
print(f"local SHA-256) plus one round trip for the command that asks for that hash; smbclient checks nothing.")
runs = lambda xs: " ".join("%.2f" % x for x in xs)
print(f"Runs (s): scan hive {runs(r['hive_s'] for r in rows)}, pywinrm {runs(r['peer_s'] for r in rows)};")
print(f"copy hive {runs(smb['hive'])}, smbclient {runs(smb['smbclient'])}.")
print()
print(f"Load average {sys.argv[4]} before, {sys.argv[5]} after (2 cores).")
print()
print("Reproduce: `integration/bench.sh wan` (`HIVE_BENCH_WAN_RTT_MS`, `HIVE_BENCH_WAN_RUNS`).")
PY
cat "$HIVE_BENCH_OUT/wan.md"
