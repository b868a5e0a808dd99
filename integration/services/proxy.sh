# Real tinyproxy on 127.0.0.1 for hive's catalog fetch tests (sourced by integration/lib.sh).
#
# Two instances:
#   - the auth instance (HIVE_TEST_PROXY_URL) requires BasicAuth and lets CONNECT reach any port,
#     so a test can tunnel HTTPS to its own origin server on a random loopback port;
#   - the refusing instance (HIVE_TEST_PROXY_REFUSING_URL) allows CONNECT to port 443 only, so a
#     CONNECT to the test origin gets tinyproxy's own "403 Access violation" — a proxy that refuses.
#
# Exports: HIVE_TEST_PROXY_URL (http://127.0.0.1:PORT, no credentials), HIVE_TEST_PROXY_USER,
# HIVE_TEST_PROXY_PASSWORD, HIVE_TEST_PROXY_REFUSING_URL, HIVE_TEST_PROXY_LOG (the auth
# instance's log, so a test can prove its request went through the proxy).
# shellcheck shell=bash

# openssl: tests/catalog_signature.rs signs a catalog with OpenSSL's ed25519 as an independent peer.
HIVE_APT_PACKAGES+=(tinyproxy openssl)

_proxy_conf() {
  # $1 = dir, $2 = port, $3 = extra lines
  cat > "$1/tinyproxy.conf" <<CONF
Port $2
Listen 127.0.0.1
Timeout 30
LogFile "$1/tinyproxy.log"
LogLevel Info
PidFile "$1/tinyproxy.pid"
MaxClients 20
Allow 127.0.0.1
DisableViaHeader Yes
$3
CONF
}

_proxy_start_one() {
  # $1 = dir, $2 = port; tinyproxy -d stays in the foreground, so it is ours to kill by pid.
  tinyproxy -d -c "$1/tinyproxy.conf" > "$1/stdout.log" 2>&1 &
  echo $! > "$1/run.pid"
  wait_port 127.0.0.1 "$2" 10 || {
    cat "$1/stdout.log" "$1/tinyproxy.log" >&2 2>/dev/null
    return 1
  }
}

proxy_start() {
  local base=$HIVE_TEST_RUN/proxy port refusing_port
  mkdir -p "$base/auth" "$base/refusing"
  chmod 777 "$base/auth" "$base/refusing" # tinyproxy drops to its own user when started as root
  port=$(free_port)
  refusing_port=$(free_port)
  HIVE_TEST_PROXY_USER=hive
  HIVE_TEST_PROXY_PASSWORD="proxy-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')"
  _proxy_conf "$base/auth" "$port" "BasicAuth $HIVE_TEST_PROXY_USER $HIVE_TEST_PROXY_PASSWORD"
  _proxy_conf "$base/refusing" "$refusing_port" "ConnectPort 443"
  _proxy_start_one "$base/auth" "$port"
  _proxy_start_one "$base/refusing" "$refusing_port"
  export HIVE_TEST_PROXY_URL="http://127.0.0.1:$port"
  export HIVE_TEST_PROXY_REFUSING_URL="http://127.0.0.1:$refusing_port"
  export HIVE_TEST_PROXY_USER HIVE_TEST_PROXY_PASSWORD
  export HIVE_TEST_PROXY_LOG="$base/auth/tinyproxy.log"
}

proxy_stop() {
  local f
  for f in "$HIVE_TEST_RUN"/proxy/*/run.pid; do
    [ -e "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
  done
}
