#!/usr/bin/env bash
# SMB part of BENCHMARKS.md: a 256 MiB file uploaded to and downloaded from the real Samba that
# integration/services/samba.sh starts, by hive-smb (release build of transports/smb's smb_bench
# example) and by `smbclient` to the same server, in the same run. Median of RUNS transfers each,
# connect + logon + transfer timed for both. Run through integration/bench.sh (which starts Samba).
set -euo pipefail
: "${HIVE_TEST_SMB_PORT:?run through integration/bench.sh, which starts Samba}"
: "${HIVE_BENCH_OUT:?run through integration/bench.sh}"
cd "$HIVE_ROOT"

RUNS=${HIVE_BENCH_SMB_RUNS:-5}
SIZE_MIB=${HIVE_BENCH_SMB_MIB:-256}
if [ "${HIVE_BENCH_QUICK:-0}" = 1 ]; then RUNS=${HIVE_BENCH_SMB_RUNS:-3} SIZE_MIB=${HIVE_BENCH_SMB_MIB:-64}; fi
work=$HIVE_TEST_RUN/bench-smb
mkdir -p "$work"
target=${CARGO_TARGET_DIR:-$HIVE_ROOT/target}
cargo build --release -q --workspace --bins --examples
bench=$target/release/examples/smb_bench
stage=$target/release/examples/stage_bench

head -c $((SIZE_MIB << 20)) /dev/urandom > "$work/src.bin"
src_sha=$(openssl dgst -sha256 -r "$work/src.bin" | cut -d' ' -f1)
# smbclient reads the password from a file, hive's bench from the environment: never argv.
printf 'username = %s\npassword = %s\n' "$HIVE_TEST_SMB_USER" "$HIVE_TEST_SMB_PASSWORD" > "$work/auth"
chmod 600 "$work/auth"
export HIVE_BENCH_SMB_PASSWORD=$HIVE_TEST_SMB_PASSWORD

now() { date +%s.%N; }
# Seconds one smbclient command takes (connect, logon, transfer, exit).
smbclient_time() {
  local port=$1 share=$2 cmd=$3 t0 t1
  t0=$(now)
  smbclient "//$HIVE_TEST_SMB_HOST/$share" -p "$port" -A "$work/auth" -c "$cmd" > "$work/smbclient.out" 2>&1 ||
    { cat "$work/smbclient.out" >&2; return 1; }
  t1=$(now)
  python3 -c "print($t1 - $t0)"
}
# Seconds the host takes to hash the file it received (what `certutil -hashfile` does on a Windows
# host after hive's copy, in place of reading every byte back); checks the hash, too.
host_hash_time() {
  local file=$1 t0 t1 sum
  t0=$(now)
  sum=$(openssl dgst -sha256 -r "$file" | cut -d' ' -f1)
  t1=$(now)
  [ "$sum" = "$src_sha" ] || { echo "host hash of $file is $sum, expected $src_sha" >&2; return 1; }
  python3 -c "print($t1 - $t0)"
}
# Seconds of a deploy's staged copy: hive's WinRM + SMB target copies the file to a simulated host
# whose drive is in the share's folder ($1 port, $2 share, $3 share's local root), and the host
# hashes it as it arrives; ends when the host's hash is in hand (and checked by stage_bench).
stage_time() {
  "$stage" "$HIVE_TEST_SMB_HOST" "$1" "$2" "$3" "$HIVE_TEST_SMB_USER" "$HIVE_TEST_SMB_UID" \
    "$HIVE_TEST_SMB_GID" "$work/src.bin" | cut -d' ' -f1
}
hive_time() {
  "$bench" "$1" "$HIVE_TEST_SMB_HOST" "$2" "$3" "$HIVE_TEST_SMB_USER" "$4" "$5" | cut -d' ' -f1
}

# One mode: $1 label, $2 port, $3 share, $4 share's local root. Appends "label kind seconds" lines.
# Every timed transfer starts after `sync` (untimed), so no run pays for the previous run's dirty
# pages, and hive and smbclient take turns at going first.
measure() {
  local label=$1 port=$2 share=$3 root=$4 i
  for ((i = 0; i < RUNS; i++)); do
    rm -f "$root"/bench-*.bin "$work"/dl-*.bin
    sync
    if ((i % 2 == 0)); then
      echo "$label smbclient-up $(smbclient_time "$port" "$share" "put $work/src.bin bench-sc-$i.bin")"; sync
      echo "$label hive-staged $(stage_time "$port" "$share" "$root")"; sync
      echo "$label hive-up $(hive_time upload "$port" "$share" "$work/src.bin" "bench-hive-$i.bin")"; sync
    else
      echo "$label hive-up $(hive_time upload "$port" "$share" "$work/src.bin" "bench-hive-$i.bin")"; sync
      echo "$label hive-staged $(stage_time "$port" "$share" "$root")"; sync
      echo "$label smbclient-up $(smbclient_time "$port" "$share" "put $work/src.bin bench-sc-$i.bin")"; sync
    fi
    echo "$label host-hash $(host_hash_time "$root/bench-hive-$i.bin")"
    echo "$label hive-up-verified $(hive_time upload-verified "$port" "$share" "$work/src.bin" "bench-hivev-$i.bin")"; sync
    cmp -s "$work/src.bin" "$root/bench-hive-$i.bin" || { echo "hive upload differs" >&2; return 1; }
    if ((i % 2 == 0)); then
      echo "$label smbclient-down $(smbclient_time "$port" "$share" "get bench-sc-$i.bin $work/dl-sc.bin")"; sync
      echo "$label hive-down $(hive_time download "$port" "$share" "$work/dl-hive.bin" "bench-hive-$i.bin")"; sync
    else
      echo "$label hive-down $(hive_time download "$port" "$share" "$work/dl-hive.bin" "bench-hive-$i.bin")"; sync
      echo "$label smbclient-down $(smbclient_time "$port" "$share" "get bench-sc-$i.bin $work/dl-sc.bin")"; sync
    fi
    cmp -s "$work/src.bin" "$work/dl-hive.bin" || { echo "hive download differs" >&2; return 1; }
  done
  rm -f "$root"/bench-*.bin "$work"/dl-*.bin
}

load_before=$(cut -d' ' -f1 /proc/loadavg)
{
  measure default "$HIVE_TEST_SMB_PORT" "$HIVE_TEST_SMB_ADMIN_SHARE" "$HIVE_TEST_SMB_ADMIN_ROOT"
  measure signed "$HIVE_TEST_SMB_STRICT_PORT" "$HIVE_TEST_SMB_SIGNED_SHARE" "$HIVE_TEST_SMB_SIGNED_ROOT"
  measure sealed "$HIVE_TEST_SMB_STRICT_PORT" "$HIVE_TEST_SMB_SEALED_SHARE" "$HIVE_TEST_SMB_SEALED_ROOT"
} > "$work/times.txt"
load_after=$(cut -d' ' -f1 /proc/loadavg)

if [ "${HIVE_BENCH_QUICK:-0}" = 1 ]; then
  # The regression guard: ratios only (hive's advantage, higher is better), no report.
  python3 - "$work/times.txt" >> "${HIVE_BENCH_RATIOS:?}" <<'PY'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    mode, kind, secs = line.split()
    t.setdefault((mode, kind), []).append(float(secs))
med = lambda m, k: statistics.median(t[(m, k)])
for m in ("default", "signed", "sealed"):
    hashed = statistics.median(a + b for a, b in zip(t[(m, "hive-up")], t[(m, "host-hash")]))
    print(f"smb_up_hosthash_{m} {med(m, 'smbclient-up') / hashed:.3f}")
    print(f"smb_up_staged_{m} {med(m, 'smbclient-up') / med(m, 'hive-staged'):.3f}")
    print(f"smb_down_{m} {med(m, 'smbclient-down') / med(m, 'hive-down'):.3f}")
PY
  exit 0
fi

python3 - "$work/times.txt" "$SIZE_MIB" "$RUNS" "$load_before" "$load_after" > "$HIVE_BENCH_OUT/smb.md" <<'PY'
import statistics, sys
path, size_mib, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load_before, load_after = sys.argv[4], sys.argv[5]
t = {}
for line in open(path):
    mode, kind, secs = line.split()
    t.setdefault((mode, kind), []).append(float(secs))
for mode in ("default", "signed", "sealed"):
    t[(mode, "hive-up-hash")] = [a + b for a, b in zip(t[(mode, "hive-up")], t[(mode, "host-hash")])]
mbs = lambda mode, kind: size_mib * 1048576 / statistics.median(t[(mode, kind)]) / 1e6
print(f"## SMB: {size_mib} MiB upload and download, hive-smb vs smbclient")
print()
print(f"Same Samba 4.17 on 127.0.0.1, same run; median of {runs} transfers each, MB/s (10^6 bytes/s) of")
print("connect + logon + transfer + disconnect. hive-smb: release build, 1 MiB requests, 16 in flight.")
print("`hive up` checks the size after the upload (as `smbclient put` does nothing more).")
print("`hive staged` is what a deploy does with an installer, end to end: hive's WinRM + SMB target")
print("(release `stage_bench` example) copies the file to a simulated Windows Server 2019 whose C: drive")
print("is a folder of this share, while the host hashes it as it arrives (hive's follow-hash PowerShell,")
print("run by winsim on the same 2 cores), and stops when the host's SHA-256 is in hand and equals the")
print("file's; WinRM connect, logon and shell are inside the time. This is the like-for-like column for")
print("an installer copy with hive's integrity guarantee (README: \"What the hash on the host proves\").")
print("`hive up + host hash after` adds, run by run, the time the host takes to hash the file after the")
print("copy (`openssl dgst -sha256` on Samba's copy; `certutil -hashfile` on a Windows host): the way")
print("for hosts whose PowerShell cannot follow a copy (none, or 1.0).")
print("`hive up + read-back` reads every byte back over SMB instead (hive-smb's library default,")
print("and the deploy's fallback for a host with neither tool, Windows 2000).")
print("Each timed transfer starts after `sync`; hive and smbclient alternate going first.")
print()
print("| server mode | smbclient up | hive up | ratio | **hive staged** | **ratio** | hive up + host hash after | ratio | hive up + read-back | smbclient down | hive down | ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
names = {"default": "defaults (hive signs, smbclient does not)", "signed": "`server signing = mandatory`",
         "sealed": "`smb encrypt = required`"}
for mode in ("default", "signed", "sealed"):
    su, hu, hs, hh, hv = (mbs(mode, k) for k in ("smbclient-up", "hive-up", "hive-staged", "hive-up-hash", "hive-up-verified"))
    sd, hd = mbs(mode, "smbclient-down"), mbs(mode, "hive-down")
    print(f"| {names[mode]} | {su:.0f} | {hu:.0f} | {hu/su:.2f}x | {hs:.0f} | {hs/su:.2f}x | {hh:.0f} | {hh/su:.2f}x | {hv:.0f} | {sd:.0f} | {hd:.0f} | {hd/sd:.2f}x |")
print()
print(f"Load average of the machine (2 cores): {load_before} before, {load_after} after the run.")
print("Raw seconds per run (mode kind: runs):")
print()
for (mode, kind), v in sorted(t.items()):
    print(f"- {mode} {kind}: " + " ".join(f"{x:.3f}" for x in v))
print()
print("Reproduce: `integration/bench.sh smb` (`HIVE_BENCH_SMB_RUNS=7` for more runs).")
print("Where the time goes, and what limits the ratios: the next section (docs/bench/smb_profile.md).")
PY
cat "$HIVE_BENCH_OUT/smb.md"
