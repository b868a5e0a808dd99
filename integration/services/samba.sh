# Real Samba smbd on 127.0.0.1 for hive's SMB tests and benchmarks (sourced by integration/lib.sh).
#
# Two smbd instances, because `server signing` is a global setting:
#   - the default instance (HIVE_TEST_SMB_PORT) runs Samba's default settings — in particular the
#     default aio sizes, so reads and writes that wait on the disk answer with STATUS_PENDING interim
#     responses, the case that made the published `smb` crate hang. Shares:
#       admin  stands in for ADMIN$/C$; the Samba user is a plain unix user there, so permission
#              checks (e.g. GENERIC_ALL on a 0644 file) behave as on a real server;
#       fleet  the per-host C$ roots of the simulated Windows fleet (fleet/<host>/...); the Samba user
#              is an `admin users` member there, as an Administrator is on C$, because the fleet
#              simulator writes those files as root;
#       synced every write is flushed to disk before it is answered (`sync always`), so writes
#              outlast Samba's 0.5 ms and are answered STATUS_PENDING first, as on a busy server;
#       full   a share on a small filesystem of its own (tmpfs, HIVE_TEST_SMB_FULL_BYTES), so
#              "disk full" is the server's real ENOSPC, not a simulated one.
#   - the strict instance (HIVE_TEST_SMB_STRICT_PORT) has `server signing = mandatory`; its share
#     `signed` is a plain share, its share `sealed` has `smb encrypt = required` (per-share
#     encryption), so one instance covers both strict modes.
#
# Exports: HIVE_TEST_SMB_HOST, HIVE_TEST_SMB_PORT, HIVE_TEST_SMB_STRICT_PORT, HIVE_TEST_SMB_USER,
# HIVE_TEST_SMB_PASSWORD, HIVE_TEST_SMB_NT_HASH, HIVE_TEST_SMB_UID, HIVE_TEST_SMB_GID and, for each
# share NAME in ADMIN FLEET FULL SYNCED SIGNED SEALED, HIVE_TEST_SMB_<NAME>_SHARE (share name) and
# HIVE_TEST_SMB_<NAME>_ROOT (its local path).
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(samba smbclient)

# The unix/Samba account the tests log on as. Created when missing (as root); without root the login
# user itself is the Samba user.
HIVE_SMB_ACCOUNT=${HIVE_SMB_ACCOUNT:-hivesmb}

# Size of the "disk full" share's filesystem.
HIVE_SMB_FULL_BYTES=$((16 * 1024 * 1024))

_samba_conf() {
  # $1 = instance dir, $2 = port, $3 = extra global lines, $4 = share sections
  local dir=$1 port=$2 extra_global=$3 shares=$4
  cat > "$dir/smb.conf" <<EOF
[global]
  smb ports = $port
  interfaces = lo
  bind interfaces only = yes
  disable netbios = yes
  server role = standalone server
  security = user
  map to guest = never
  ntlm auth = ntlmv2-only
  server min protocol = SMB2_02
  server max protocol = SMB3_11
  lock directory = $dir/lock
  state directory = $dir/state
  cache directory = $dir/cache
  private dir = $dir/private
  pid directory = $dir/pid
  ncalrpc dir = $dir/ncalrpc
  passdb backend = tdbsam:$HIVE_TEST_RUN/samba/passdb.tdb
  log file = $dir/log.%m
  max log size = 1000
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
$extra_global
$shares
EOF
  mkdir -p "$dir"/{lock,state,cache,private,pid,ncalrpc}
  testparm -s "$dir/smb.conf" > "$dir/testparm.out" 2>&1 || {
    cat "$dir/testparm.out" >&2
    return 1
  }
}

_samba_share() {
  # $1 = name, $2 = path, $3 = extra lines
  printf '[%s]\n  path = %s\n  read only = no\n  valid users = %s\n%s\n' "$1" "$2" "$HIVE_TEST_SMB_USER" "${3:-}"
}

_samba_user() {
  local conf=$1
  if [ "$(id -u)" -eq 0 ]; then
    HIVE_TEST_SMB_USER=$HIVE_SMB_ACCOUNT
    id -u "$HIVE_TEST_SMB_USER" > /dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$HIVE_TEST_SMB_USER"
  else
    HIVE_TEST_SMB_USER=$(id -un)
  fi
  HIVE_TEST_SMB_UID=$(id -u "$HIVE_TEST_SMB_USER")
  HIVE_TEST_SMB_GID=$(id -g "$HIVE_TEST_SMB_USER")
  HIVE_TEST_SMB_PASSWORD="Hive-$(python3 -c 'import secrets; print(secrets.token_hex(10))')"
  if [ "$(id -u)" -eq 0 ]; then
    printf '%s\n%s\n' "$HIVE_TEST_SMB_PASSWORD" "$HIVE_TEST_SMB_PASSWORD" |
      smbpasswd -c "$conf" -s -a "$HIVE_TEST_SMB_USER" > /dev/null
  else
    printf '%s\n%s\n' "$HIVE_TEST_SMB_PASSWORD" "$HIVE_TEST_SMB_PASSWORD" |
      pdbedit -s "$conf" -a -t -u "$HIVE_TEST_SMB_USER" > /dev/null
  fi
  # The NT hash as Samba stored it (`user:uid:LM:NT:flags:lct`), for the pass-the-hash logon tests.
  HIVE_TEST_SMB_NT_HASH=$(pdbedit -s "$conf" -L -w -u "$HIVE_TEST_SMB_USER" | cut -d: -f4 | tr 'A-F' 'a-f')
}

# The "disk full" share's root: a tmpfs of HIVE_SMB_FULL_BYTES. Mounting needs root (CI runs as root);
# without it the start fails rather than pretending the disk can fill.
_samba_mount_full() {
  local root=$1
  mkdir -p "$root"
  if [ "$(id -u)" -ne 0 ]; then
    log "samba: the disk-full share needs root to mount a small tmpfs"
    return 1
  fi
  mount -t tmpfs -o "size=$HIVE_SMB_FULL_BYTES,mode=0755" hive-smb-full "$root"
  HIVE_SMB_FULL_MOUNTED=$root
}

# smbd runs as its own process-group leader: on shutdown it signals its whole process group, which
# must not be the harness's.
_samba_run() {
  # $1 = instance dir, $2 = port
  smbd --foreground --debug-stdout -d1 -s "$1/smb.conf" > "$1/smbd.log" 2>&1 &
  echo $! > "$1/smbd.pid"
  if ! wait_port 127.0.0.1 "$2" 30; then
    tail -20 "$1/smbd.log" >&2
    return 1
  fi
}

samba_start() {
  local base=$HIVE_TEST_RUN/samba
  mkdir -p "$base"/{default,strict,admin,fleet,synced,signed,sealed}
  HIVE_TEST_SMB_HOST=127.0.0.1
  HIVE_TEST_SMB_PORT=$(free_port)
  HIVE_TEST_SMB_STRICT_PORT=$(free_port)
  while [ "$HIVE_TEST_SMB_STRICT_PORT" = "$HIVE_TEST_SMB_PORT" ]; do HIVE_TEST_SMB_STRICT_PORT=$(free_port); done

  # A minimal config first, so smbpasswd knows where the passdb lives.
  _samba_conf "$base/default" "$HIVE_TEST_SMB_PORT" "" ""
  _samba_user "$base/default/smb.conf"
  _samba_mount_full "$base/full"
  chown "$HIVE_TEST_SMB_UID:$HIVE_TEST_SMB_GID" "$base"/{admin,fleet,full,synced,signed,sealed}

  _samba_conf "$base/default" "$HIVE_TEST_SMB_PORT" "" "$(
    _samba_share admin "$base/admin"
    _samba_share fleet "$base/fleet" "  admin users = $HIVE_TEST_SMB_USER"
    _samba_share full "$base/full"
    _samba_share synced "$base/synced" "  strict sync = yes
  sync always = yes"
  )"
  _samba_conf "$base/strict" "$HIVE_TEST_SMB_STRICT_PORT" "  server signing = mandatory" "$(
    _samba_share signed "$base/signed"
    _samba_share sealed "$base/sealed" "  smb encrypt = required"
  )"
  _samba_run "$base/default" "$HIVE_TEST_SMB_PORT"
  _samba_run "$base/strict" "$HIVE_TEST_SMB_STRICT_PORT"

  export HIVE_TEST_SMB_HOST HIVE_TEST_SMB_PORT HIVE_TEST_SMB_STRICT_PORT HIVE_TEST_SMB_USER \
    HIVE_TEST_SMB_PASSWORD HIVE_TEST_SMB_NT_HASH HIVE_TEST_SMB_UID HIVE_TEST_SMB_GID
  export HIVE_TEST_SMB_ADMIN_SHARE=admin HIVE_TEST_SMB_ADMIN_ROOT=$base/admin
  export HIVE_TEST_SMB_FLEET_SHARE=fleet HIVE_TEST_SMB_FLEET_ROOT=$base/fleet
  export HIVE_TEST_SMB_FULL_SHARE=full HIVE_TEST_SMB_FULL_ROOT=$base/full
  export HIVE_TEST_SMB_FULL_BYTES=$HIVE_SMB_FULL_BYTES
  export HIVE_TEST_SMB_SYNCED_SHARE=synced HIVE_TEST_SMB_SYNCED_ROOT=$base/synced
  export HIVE_TEST_SMB_SIGNED_SHARE=signed HIVE_TEST_SMB_SIGNED_ROOT=$base/signed
  export HIVE_TEST_SMB_SEALED_SHARE=sealed HIVE_TEST_SMB_SEALED_ROOT=$base/sealed
  log "samba: default on 127.0.0.1:$HIVE_TEST_SMB_PORT, strict (signing mandatory) on :$HIVE_TEST_SMB_STRICT_PORT"
}

samba_stop() {
  local base=$HIVE_TEST_RUN/samba inst pid
  for inst in strict default; do
    [ -f "$base/$inst/smbd.pid" ] || continue
    pid=$(cat "$base/$inst/smbd.pid")
    kill "$pid" 2> /dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2> /dev/null || true
  done
  if [ -n "${HIVE_SMB_FULL_MOUNTED:-}" ]; then
    umount "$HIVE_SMB_FULL_MOUNTED" || umount -l "$HIVE_SMB_FULL_MOUNTED" || true
    HIVE_SMB_FULL_MOUNTED=
  fi
}
