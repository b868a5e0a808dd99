# Real PostgreSQL on 127.0.0.1 for hive's shared run state (sourced by integration/lib.sh).
#
# A cluster of its own: initdb into $HIVE_TEST_RUN/postgres/data, run as an unprivileged user (the
# `postgres` account Debian's package creates, or the caller when not root), on a free loopback
# port with trust authentication for loopback only, no Unix socket of the system's touched.
# Stopped (fast shutdown) afterwards; no system cluster is started, stopped or changed.
#
# Exports: HIVE_TEST_PG_URL (postgres://hive@127.0.0.1:PORT/hive?sslmode=disable — loopback only,
# so TLS is off here; hive verifies TLS whenever the URL does not say so),
# HIVE_TEST_PG_CTL (a command that takes `stop`/`start`, for the test that restarts the database
# mid-run), HIVE_TEST_PG_PORT.
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(postgresql)

_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && echo "$d"; done | sort -V | tail -1
}

_pg_as() {
  # Run as the cluster's owner: postgres refuses to run as root.
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_start() {
  local base=$HIVE_TEST_RUN/postgres bin port
  bin=$(_pg_bin)
  [ -n "$bin" ] || { log "no PostgreSQL server binaries under /usr/lib/postgresql"; return 1; }
  port=$(free_port)
  mkdir -p "$base/sock"
  [ "$(id -u)" -eq 0 ] && chown -R postgres "$base"
  _pg_as "$bin/initdb" -D "$base/data" -U hive --auth=trust -E UTF8 --no-sync >"$base/initdb.log" 2>&1 || {
    cat "$base/initdb.log" >&2
    return 1
  }
  cat >> "$base/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base/sock'
max_connections = 100
fsync = on
logging_collector = off
CONF
  cat > "$base/ctl" <<CTL
#!/usr/bin/env bash
# \$1 = start | stop: the test cluster only.
set -e
if [ "\$(id -u)" -eq 0 ]; then as="runuser -u postgres --"; else as=""; fi
case "\$1" in
  start) \$as "$bin/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 30 start >/dev/null ;;
  stop) \$as "$bin/pg_ctl" -D "$base/data" -m fast -w -t 30 stop >/dev/null ;;
  *) echo "usage: \$0 start|stop" >&2; exit 2 ;;
esac
CTL
  chmod 755 "$base/ctl"
  "$base/ctl" start || { cat "$base/server.log" >&2; return 1; }
  _pg_as "$bin/createdb" -h 127.0.0.1 -p "$port" -U hive hive
  export HIVE_TEST_PG_URL="postgres://hive@127.0.0.1:$port/hive?sslmode=disable"
  export HIVE_TEST_PG_CTL="$base/ctl"
  export HIVE_TEST_PG_PORT=$port
}

postgres_stop() {
  local base=$HIVE_TEST_RUN/postgres
  [ -x "$base/ctl" ] || return 0
  "$base/ctl" stop 2>/dev/null || true
}
