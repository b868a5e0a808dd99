# Real MIT Kerberos KDC on 127.0.0.1 for hive's Kerberos tests (sourced by integration/lib.sh).
#
# One realm, HIVE.TEST, whose database, stash, krb5.conf and kdc.conf all live in the run folder:
# nothing under /etc is read or changed (KRB5_CONFIG and KRB5_KDC_PROFILE point at ours), and no DNS
# is needed (`rdns = false`, `dns_canonicalize_hostname = false`, the KDC is named by address).
# The KDC listens on one free loopback port for both UDP and TCP; `udp_preference_limit = 1` makes
# clients use TCP, so a free TCP port is all we need to find.
#
# Principals: the admin the tests log on as (HIVE_TEST_KDC_USER / HIVE_TEST_KDC_PASSWORD) and
# HTTP/<name> for each name in HIVE_KDC_HOSTS, whose keys are exported to one keytab
# (HIVE_TEST_KDC_KEYTAB) for the simulated hosts' acceptors. Tests that need more principals (an
# SPN of their own fleet, a re-keyed service for the wrong-kvno case) run
# `$HIVE_TEST_KDC_KADMIN -q '...'`, which edits the database directly (kadmin.local), so no
# kadmind has to run.
#
# Exports: HIVE_TEST_KDC_REALM, HIVE_TEST_KDC_PORT, HIVE_TEST_KDC_CONFIG (the krb5.conf clients
# use; also exported as KRB5_CONFIG for every process the harness starts), HIVE_TEST_KDC_USER,
# HIVE_TEST_KDC_PASSWORD, HIVE_TEST_KDC_KEYTAB (also KRB5_KTNAME, the acceptors' default keytab),
# HIVE_TEST_KDC_KADMIN, HIVE_TEST_KDC_DIR.
# shellcheck shell=bash

# libkrb5-dev, libclang-dev, pkg-config: hive-winrm links MIT GSSAPI through libgssapi (bindgen).
# python3-dev, gcc: the venv builds python-gssapi, krb5 and pykerberos (pywinrm's Kerberos) from source.
# faketime: the clock-skew test runs hive ten minutes ahead of the KDC and the hosts.
HIVE_APT_PACKAGES+=(krb5-kdc krb5-admin-server krb5-user libkrb5-dev libclang-dev pkg-config python3-dev gcc faketime)

# The simulated hosts that get an HTTP/ principal in the shared keytab.
HIVE_KDC_HOSTS=${HIVE_KDC_HOSTS:-"winsim.hive.test localhost"}

_kdc_conf() {
  # $1 = dir, $2 = port, $3 = realm
  cat > "$1/krb5.conf" <<CONF
[libdefaults]
  default_realm = $3
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
  default_ccache_name = FILE:$1/ccache-default
  clockskew = 300
[realms]
  $3 = {
    kdc = 127.0.0.1:$2
  }
[domain_realm]
  .hive.test = $3
  hive.test = $3
CONF
  cat > "$1/kdc.conf" <<CONF
[kdcdefaults]
  kdc_listen = 127.0.0.1:$2
  kdc_tcp_listen = 127.0.0.1:$2
[realms]
  $3 = {
    database_name = $1/db/principal
    acl_file = $1/kadm5.acl
    key_stash_file = $1/db/stash
    max_life = 10h
    max_renewable_life = 1d
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$1/kdc.log
CONF
  : > "$1/kadm5.acl"
}

kdc_start() {
  local base=$HIVE_TEST_RUN/kdc port realm=HIVE.TEST master h cmds
  mkdir -p "$base/db"
  chmod 700 "$base/db"
  port=$(free_port)
  _kdc_conf "$base" "$port" "$realm"
  export KRB5_CONFIG=$base/krb5.conf KRB5_KDC_PROFILE=$base/kdc.conf
  master="master-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
  kdb5_util create -s -r "$realm" -P "$master" > "$base/kdb5_util.log" 2>&1 || {
    cat "$base/kdb5_util.log" >&2
    return 1
  }
  HIVE_TEST_KDC_USER=hiveadmin
  HIVE_TEST_KDC_PASSWORD="krb-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
  # One kadmin.local for every principal: each start of it opens the database, which is what costs.
  cmds="addprinc -pw $HIVE_TEST_KDC_PASSWORD $HIVE_TEST_KDC_USER@$realm"
  for h in $HIVE_KDC_HOSTS; do
    cmds+=$'\n'"addprinc -randkey HTTP/$h@$realm"$'\n'"ktadd -k $base/http.keytab HTTP/$h@$realm"
  done
  printf '%s\n' "$cmds" | kadmin.local -r "$realm" > "$base/kadmin.log" 2>&1 || {
    cat "$base/kadmin.log" >&2
    return 1
  }
  chmod 600 "$base/http.keytab"
  # -n keeps krb5kdc in the foreground, so it is ours to stop by pid.
  krb5kdc -n -r "$realm" -P "$base/krb5kdc.pid" > "$base/stdout.log" 2>&1 &
  echo $! > "$base/run.pid"
  wait_port 127.0.0.1 "$port" 10 || {
    cat "$base/stdout.log" "$base/kdc.log" >&2 2>/dev/null
    return 1
  }
  export HIVE_TEST_KDC_REALM=$realm HIVE_TEST_KDC_PORT=$port HIVE_TEST_KDC_CONFIG=$base/krb5.conf
  export HIVE_TEST_KDC_USER HIVE_TEST_KDC_PASSWORD HIVE_TEST_KDC_KEYTAB=$base/http.keytab
  export HIVE_TEST_KDC_KADMIN="kadmin.local -r $realm" HIVE_TEST_KDC_DIR=$base
  # The acceptors' default keytab, as /etc/krb5.keytab is a real host's.
  export KRB5_KTNAME=FILE:$base/http.keytab
}

kdc_stop() {
  local f=$HIVE_TEST_RUN/kdc/run.pid
  [ -e "$f" ] || return 0
  kill "$(cat "$f")" 2>/dev/null || true
}
