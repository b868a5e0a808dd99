#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md. Each part integration/bench/<name>.sh runs against the same
# loopback servers as the tests, measures hive against a peer in the same run (smbclient, scp, ssh,
# pywinrm, ...) and writes its section to $HIVE_BENCH_OUT/<name>.md; this script then writes
# BENCHMARKS.md from the sections, in name order.
#
# Usage: integration/bench.sh [PART...]   (all parts when none is named; other parts keep their text)
#        integration/bench.sh --assemble  (only rewrite BENCHMARKS.md from the sections already there)
#        integration/bench.sh --quick     (the regression guard: a small run of the parts that
#                                          compare hive with a peer, each ratio checked against its
#                                          floor in integration/bench/floors.txt; writes nothing)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$HIVE_ROOT"

if [ "${1:-}" = "--quick" ]; then
  install_packages
  setup_venv
  start_services samba sshd
  cargo build --release --workspace --bins --examples
  export HIVE_BENCH_QUICK=1
  export HIVE_BENCH_OUT="$HIVE_TEST_RUN/bench-quick"
  export HIVE_BENCH_RATIOS="$HIVE_TEST_RUN/ratios.txt"
  mkdir -p "$HIVE_BENCH_OUT"
  : > "$HIVE_BENCH_RATIOS"
  quick_start=$(date +%s)
  for p in smb ssh scan winrm; do
    log "quick part $p"
    bash "integration/bench/$p.sh" > "$HIVE_BENCH_OUT/$p.log" 2>&1 ||
      { cat "$HIVE_BENCH_OUT/$p.log" >&2; log "quick part $p failed"; exit 1; }
  done
  quick_s=$(($(date +%s) - quick_start))
  # Each ratio is hive's advantage over its peer (higher is better); a missing one fails too.
  python3 - "$HIVE_BENCH_RATIOS" integration/bench/floors.txt "$quick_s" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import sys
got = dict(l.split() for l in open(sys.argv[1]) if l.strip())
failed = []
print(f"{'ratio':<28} {'measured':>9} {'floor':>7}")
for line in open(sys.argv[2]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, floor = line.split()
    value = got.get(name)
    ok = value is not None and float(value) >= float(floor)
    print(f"{name:<28} {value or 'missing':>9} {floor:>7} {'' if ok else '  BELOW FLOOR'}")
    if not ok:
        failed.append(name)
print(f"quick run: {sys.argv[3]} s of measurement, load average {sys.argv[4]}")
if failed:
    sys.exit(f"below floor: {', '.join(failed)}")
PY
  exit 0
fi

export HIVE_BENCH_OUT="$HIVE_ROOT/docs/bench"
mkdir -p "$HIVE_BENCH_OUT"

suite_start=$(date +%s)
if [ "${1:-}" != "--assemble" ]; then
  install_packages
  setup_venv
  start_services
  # What the parts run, built once; the parts repeat the same two calls (no-ops then). Any other
  # selection (-p X, or --bin without the examples, which drops the dev-dependencies) unifies
  # features differently, gives shared crates (tokio...) other hashes and rebuilds them inside the
  # timed parts.
  build_kind="incremental: an earlier release build was there"
  [ -d "${CARGO_TARGET_DIR:-$HIVE_ROOT/target}/release" ] || build_kind="cold: no release build before"
  build_start=$(date +%s)
  cargo build --release --workspace --bins --examples
  cargo test --release --workspace --test rollout_fleet --no-run
  build_s=$(($(date +%s) - build_start))
  log "release build took ${build_s} s"

  parts=("$@")
  if [ ${#parts[@]} -eq 0 ]; then
    for p in integration/bench/*.sh; do parts+=("$(basename "$p" .sh)"); done
  fi
  timings=()
  for p in "${parts[@]}"; do
    log "benchmark part $p"
    part_start=$(date +%s)
    bash "integration/bench/$p.sh"
    timings+=("$p $(($(date +%s) - part_start))")
    log "benchmark part $p took $(($(date +%s) - part_start)) s"
  done
  # A full run records how long the suite took (the issue's budget: under 15 minutes).
  if [ $# -eq 0 ]; then
    {
      echo "## The suite's own run time"
      echo
      echo "Last full \`integration/bench.sh\` run: $(($(date +%s) - suite_start)) s in all, of which the"
      echo "release build of what the parts run (${build_kind}) took ${build_s} s and the parts:"
      echo
      echo "| part | seconds |"
      echo "|---|---|"
      for t in "${timings[@]}"; do echo "| ${t% *} | ${t##* } |"; done
    } > "$HIVE_BENCH_OUT/zz_suite.md"
  fi
fi

{
  echo "# hive benchmarks"
  echo
  echo "Every figure here is reproduced by \`integration/bench.sh\` (one part: \`integration/bench.sh NAME\`),"
  echo "measured on the project's 2-core machine against a peer run in the same script."
  echo "Machine of the last run: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)."
  for f in "$HIVE_BENCH_OUT"/*.md; do
    [ -e "$f" ] || continue
    echo
    cat "$f"
  done
} > BENCHMARKS.md
log "wrote BENCHMARKS.md"
