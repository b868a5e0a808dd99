# Real PostgreSQL on 127.0.0.1 for hive's shared run state (sourced by integration/lib.sh).
#
# A cluster of its own: initdb into $HIVE_TEST_RUN/postgres/data, run as an unprivileged user (the
# `postgres` account Debian's package creates, or the caller when not root), on a free loopback
# port with trust authentication for loopback only, no Unix socket of the system's touched.
# Stopped (fast shutdown) afterwards; no system cluster is started, stopped or changed.
#
# The server offers TLS with a certificate of the harness's own CA, issued for `localhost` only
# (not for 127.0.0.1), so a test can reach the same server by a name the certificate names and
# by one it does not. pg_hba's `host` lines accept both TLS and plain connections.
#
# Exports: HIVE_TEST_PG_URL (postgres://hive@127.0.0.1:PORT/hive?sslmode=disable — plain, for the
# tests of everything but TLS; hive verifies TLS whenever the URL does not say so),
# HIVE_TEST_PG_CA (the PEM of the CA that issued the server's certificate),
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
  _pg_certs "$base/data"
  [ "$(id -u)" -eq 0 ] && chown postgres "$base/data/server.key" "$base/data/server.pem"
  cat >> "$base/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base/sock'
max_connections = 100
fsync = on
logging_collector = off
ssl = on
ssl_cert_file = 'server.pem'
ssl_key_file = 'server.key'
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
  export HIVE_TEST_PG_CA="$base/ca.pem"
  export HIVE_TEST_PG_PORT=$port
}

# The CA (its key stays in the run folder) and the server's certificate for DNS:localhost.
_pg_certs() {
  local data=$1 base
  base=$(dirname "$data")
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=hive test PostgreSQL CA" \
    -keyout "$base/ca.key" -out "$base/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$data/server.key" -out "$base/server.csr" 2> /dev/null
  printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > "$base/ext.cnf"
  openssl x509 -req -in "$base/server.csr" -CA "$base/ca.pem" -CAkey "$base/ca.key" -CAcreateserial \
    -days 2 -extfile "$base/ext.cnf" -out "$data/server.pem" 2> /dev/null
  chmod 600 "$data/server.key" "$base/ca.key"
  chmod 644 "$base/ca.pem"
}

postgres_stop() {
  local base=$HIVE_TEST_RUN/postgres
  [ -x "$base/ctl" ] || return 0
  "$base/ctl" stop 2>/dev/null || true
}
