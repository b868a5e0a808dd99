#!/usr/bin/env bash
# hive's one test command. On a fresh Debian machine it installs what the tests need (Debian packages,
# a Python venv with pywinrm/pypsrp/pyspnego), starts real servers on loopback (Samba, OpenSSH, a
# proxy, ... — see integration/services/), runs every test of the workspace, and stops the servers
# whatever happens. Tests that need a server read its HIVE_TEST_* variables and fail loudly, naming
# this script, when they are missing: nothing is skipped silently.
#
# Before any of that it runs the static checks, fastest first so a slip fails in seconds: the
# format check, clippy with warnings denied, and the API docs with warnings denied.
#
# Usage: integration/test.sh [SERVICE...] [-- extra args for cargo test]
#   HIVE_KEEP_RUN=1 keeps the run folder (configs, logs) for a post-mortem.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$HIVE_ROOT"

services=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do services+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift

static_checks() {
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    log "adding the rustfmt and clippy components"
    rustup component add rustfmt clippy
  fi
  log "format check"
  cargo fmt --all --check
  log "clippy (warnings denied)"
  cargo clippy --workspace --all-targets -- -D warnings
  log "API docs (warnings denied)"
  RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps
}

# Packages first: clippy builds hive-winrm, which links MIT GSSAPI (libkrb5-dev, libclang).
install_packages
static_checks
setup_venv
setup_syntax_gate
start_services "${services[@]}"

log "running the test suite"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
