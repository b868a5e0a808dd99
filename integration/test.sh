#!/usr/bin/env bash
# hive's one test command. On a fresh Debian machine it installs what the tests need (Debian packages,
# a Python venv with pywinrm/pypsrp/pyspnego), starts real servers on loopback (Samba, OpenSSH, a
# proxy, ... — see integration/services/), runs every test of the workspace, and stops the servers
# whatever happens. Tests that need a server read its HIVE_TEST_* variables and fail loudly, naming
# this script, when they are missing: nothing is skipped silently.
#
# Usage: integration/test.sh [SERVICE...] [-- extra args for cargo test]
#   HIVE_KEEP_RUN=1 keeps the run folder (configs, logs) for a post-mortem.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$HIVE_ROOT"

services=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do services+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift

install_packages
setup_venv
setup_syntax_gate
start_services "${services[@]}"

log "running the test suite"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
