# Shared by integration/test.sh and integration/bench.sh: loads every service in integration/services,
# installs what they need, starts them on loopback and stops them whatever happens.
#
# A service file integration/services/<name>.sh appends its Debian packages to HIVE_APT_PACKAGES and
# defines <name>_start and <name>_stop. A start picks free loopback ports (so two runs never collide),
# keeps all its state under $HIVE_TEST_RUN/<name>, and exports the HIVE_TEST_* variables its tests read.
# shellcheck shell=bash

HIVE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HIVE_ROOT

HIVE_TEST_RUN=$(mktemp -d /tmp/hive-test.XXXXXX)
export HIVE_TEST_RUN
chmod 755 "$HIVE_TEST_RUN"

log() { printf '[hive-harness] %s\n' "$*" >&2; }

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until something accepts TCP connections on host:port, or fail after $3 seconds (default 20).
wait_port() {
  local host=$1 port=$2 limit=${3:-20} i
  for ((i = 0; i < limit * 10; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing listens on $host:$port after ${limit}s"
  return 1
}

HIVE_APT_PACKAGES=(python3-venv)
HIVE_SERVICES=()
for svc in "$HIVE_ROOT"/integration/services/*.sh; do
  [ -e "$svc" ] || continue
  # shellcheck source=/dev/null
  source "$svc"
  HIVE_SERVICES+=("$(basename "$svc" .sh)")
done

install_packages() {
  local missing=() p
  for p in "${HIVE_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The Python venv holds the independent protocol peers (pywinrm, pypsrp, pyspnego) that cross-check
# hive's WinRM code. It lives in the repository's .venv (ignored by git), built from requirements.txt.
setup_venv() {
  local venv="$HIVE_ROOT/.venv"
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$HIVE_ROOT/integration/requirements.txt" "$venv/.hive-requirements"; then
    log "building the Python venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$HIVE_ROOT/integration/requirements.txt"
    cp "$HIVE_ROOT/integration/requirements.txt" "$venv/.hive-requirements"
  fi
  export HIVE_TEST_PYTHON="$venv/bin/python"
}

# The PowerShell syntax gate (tests/powershell_syntax.rs): the tree-sitter PowerShell grammar's .wasm
# run by node through web-tree-sitter, installed with npm from integration/syntax-gate/package-lock.json
# (pinned, with integrity hashes) into integration/syntax-gate/node_modules (ignored by git). No
# install scripts run: the grammar's native build is not needed, only its bundled .wasm.
setup_syntax_gate() {
  local dir="$HIVE_ROOT/integration/syntax-gate"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing Debian packages: nodejs npm"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.hive-lock"; then
    log "installing the PowerShell syntax gate (npm ci)"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$dir/package-lock.json" "$dir/node_modules/.hive-lock"
  fi
  export HIVE_TEST_PS_GATE="$dir/check-powershell.cjs"
}

HIVE_STARTED=()
stop_services() {
  local i
  for ((i = ${#HIVE_STARTED[@]} - 1; i >= 0; i--)); do
    "${HIVE_STARTED[$i]}_stop" || log "stopping ${HIVE_STARTED[$i]} failed"
  done
  HIVE_STARTED=()
  if [ "${HIVE_KEEP_RUN:-0}" = 1 ]; then log "run folder kept: $HIVE_TEST_RUN"; else rm -rf "$HIVE_TEST_RUN"; fi
}

# Start the named services (all of them when none is named).
start_services() {
  local svc
  [ $# -gt 0 ] || set -- "${HIVE_SERVICES[@]}"
  for svc in "$@"; do
    log "starting $svc"
    HIVE_STARTED+=("$svc")
    "${svc}_start"
  done
}

on_exit() {
  local rc=$?
  stop_services
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM
