# Real OpenSSH sshd on 127.0.0.1 for hive's SSH tests and benchmarks (sourced by integration/lib.sh).
#
# One instance, started by `sshd_launch` (reusable: the simulated Windows fleet can start another
# instance with its own port, user and extra lines such as a ForceCommand), with:
#   - its own config, ed25519 host key, authorized_keys, pid and log under $HIVE_TEST_RUN/sshd/<name>;
#   - password and public-key authentication for the unix user HIVE_SSH_ACCOUNT (default hivessh),
#     and nobody else (AllowUsers);
#   - MaxStartups/MaxSessions high enough for the 200-concurrent-sessions test;
#   - `Subsystem sftp internal-sftp`, and a directory the user may write to for SFTP uploads.
#
# Exports: HIVE_TEST_SSH_HOST, HIVE_TEST_SSH_PORT, HIVE_TEST_SSH_USER, HIVE_TEST_SSH_PASSWORD,
# HIVE_TEST_SSH_KEY (client ed25519 private key, OpenSSH format, no passphrase),
# HIVE_TEST_SSH_KEY_RSA (client RSA 3072 private key, PEM format, no passphrase; both keys are
# authorized, on the main and the simulated fleet's sshd),
# HIVE_TEST_SSH_HOSTKEY_SHA256 (`SHA256:...`, as `ssh-keygen -l` prints it),
# HIVE_TEST_SSH_KNOWN_HOSTS (a known_hosts file for OpenSSH's own `ssh`/`scp`, used by the bench),
# HIVE_TEST_SSH_UPLOAD_DIR (writable by the user, readable by the tests: same machine),
# HIVE_TEST_SSH_FULL_DIR (writable by the user, on an 8 MiB tmpfs: uploads there hit a full disk).
# Also starts the simulated fleet's SSH face (winsim_sshd_start below, HIVE_TEST_WINSIM_SSH_*).
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(openssh-server openssh-client)

HIVE_SSH_ACCOUNT=${HIVE_SSH_ACCOUNT:-hivessh}

# The account's password is made once per machine and kept in a root-only file: sshd checks unix
# passwords against /etc/shadow, which all concurrent runs share, so a fresh password per run would
# break a run started a moment earlier by someone else.
HIVE_SSH_PASSWORD_FILE=${HIVE_SSH_PASSWORD_FILE:-/var/lib/hive-test/$HIVE_SSH_ACCOUNT.password}

HIVE_SSHD_PIDS=()

# Size of the "disk full" upload directory's filesystem.
HIVE_SSH_FULL_BYTES=$((8 * 1024 * 1024))

# Make sure the unix account $1 exists and has the machine's test password; prints the password.
sshd_ensure_user() {
  local user=$1 pwfile
  pwfile=$(dirname "$HIVE_SSH_PASSWORD_FILE")/$user.password
  if [ "$(id -u)" -ne 0 ]; then
    log "sshd: creating the test account $user needs root (CI runs as root)"
    return 1
  fi
  mkdir -p "$(dirname "$pwfile")"
  chmod 700 "$(dirname "$pwfile")"
  (
    flock 9
    id -u "$user" > /dev/null 2>&1 || useradd -m -s /bin/sh "$user"
    if [ ! -s "$pwfile" ]; then
      (umask 077 && python3 -c 'import secrets; print("Hive-" + secrets.token_urlsafe(15))' > "$pwfile")
    fi
    # Set it every time: cheap, and repairs an account whose password someone changed.
    printf '%s:%s\n' "$user" "$(cat "$pwfile")" | chpasswd
  ) 9> "$pwfile.lock"
  cat "$pwfile"
}

# Start one sshd instance.
#   $1 = instance name (state in $HIVE_TEST_RUN/sshd/$1), $2 = port, $3 = the user allowed in,
#   $4 = authorized public key file, remaining args = extra sshd_config lines (e.g. ForceCommand).
# Sets SSHD_HOSTKEY_SHA256 and SSHD_DIR for the caller.
sshd_launch() {
  local name=$1 port=$2 user=$3 authorized=$4
  shift 4
  local dir="$HIVE_TEST_RUN/sshd/$name"
  mkdir -p "$dir"
  chmod 755 "$HIVE_TEST_RUN/sshd" "$dir"
  # sshd's privilege-separation directory; absent on machines where sshd never ran.
  mkdir -p /run/sshd
  chmod 755 /run/sshd
  ssh-keygen -q -t ed25519 -N '' -C "hive-test-$name" -f "$dir/ssh_host_ed25519_key"
  cp "$authorized" "$dir/authorized_keys"
  chmod 644 "$dir/authorized_keys"
  cat > "$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $user
PermitRootLogin no
StrictModes no
UsePAM no
UseDNS no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitEmptyPasswords no
MaxAuthTries 6
LoginGraceTime 30
MaxStartups 2000
MaxSessions 1000
ClientAliveInterval 0
LogLevel INFO
Subsystem sftp internal-sftp
EOF
  local line
  for line in "$@"; do printf '%s\n' "$line" >> "$dir/sshd_config"; done
  # OpenSSH 9.8+ penalises a source address that fails auth or drops connections (the wrong-password
  # and timeout tests do both, all from 127.0.0.1); older sshd does not know the option.
  if /usr/sbin/sshd -t -f "$dir/sshd_config" -o PerSourcePenalties=no 2> /dev/null; then
    echo "PerSourcePenalties no" >> "$dir/sshd_config"
  fi
  if ! /usr/sbin/sshd -t -f "$dir/sshd_config" 2> "$dir/sshd-t.err"; then
    cat "$dir/sshd-t.err" >&2
    return 1
  fi
  # -D: stay in the foreground so $! is sshd itself; -E: log to a file. sshd insists on an absolute path.
  /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
  HIVE_SSHD_PIDS+=($!)
  if ! wait_port 127.0.0.1 "$port" 20; then
    tail -20 "$dir/sshd.log" >&2
    return 1
  fi
  SSHD_DIR=$dir
  SSHD_HOSTKEY_SHA256=$(ssh-keygen -l -E sha256 -f "$dir/ssh_host_ed25519_key.pub" | awk '{print $2}')
}

sshd_start() {
  local dir="$HIVE_TEST_RUN/sshd"
  mkdir -p "$dir"
  chmod 755 "$dir"
  HIVE_TEST_SSH_USER=$HIVE_SSH_ACCOUNT
  HIVE_TEST_SSH_PASSWORD=$(sshd_ensure_user "$HIVE_TEST_SSH_USER")
  HIVE_TEST_SSH_HOST=127.0.0.1
  HIVE_TEST_SSH_PORT=$(free_port)

  HIVE_TEST_SSH_KEY="$dir/client_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C hive-test-client -f "$HIVE_TEST_SSH_KEY"
  HIVE_TEST_SSH_KEY_RSA="$dir/client_rsa"
  ssh-keygen -q -t rsa -b 3072 -m PEM -N '' -C hive-test-client-rsa -f "$HIVE_TEST_SSH_KEY_RSA"
  HIVE_SSH_AUTHORIZED="$dir/client_keys.pub"
  cat "$HIVE_TEST_SSH_KEY.pub" "$HIVE_TEST_SSH_KEY_RSA.pub" > "$HIVE_SSH_AUTHORIZED"

  sshd_launch main "$HIVE_TEST_SSH_PORT" "$HIVE_TEST_SSH_USER" "$HIVE_SSH_AUTHORIZED"
  HIVE_TEST_SSH_HOSTKEY_SHA256=$SSHD_HOSTKEY_SHA256

  HIVE_TEST_SSH_KNOWN_HOSTS="$dir/known_hosts"
  printf '[%s]:%s %s\n' "$HIVE_TEST_SSH_HOST" "$HIVE_TEST_SSH_PORT" \
    "$(cut -d' ' -f1,2 "$SSHD_DIR/ssh_host_ed25519_key.pub")" > "$HIVE_TEST_SSH_KNOWN_HOSTS"

  HIVE_TEST_SSH_UPLOAD_DIR="$dir/upload"
  mkdir -p "$HIVE_TEST_SSH_UPLOAD_DIR"
  chown "$HIVE_TEST_SSH_USER" "$HIVE_TEST_SSH_UPLOAD_DIR"
  chmod 755 "$HIVE_TEST_SSH_UPLOAD_DIR"

  # A small filesystem of its own, so "disk full" during an upload is the server's real ENOSPC.
  HIVE_TEST_SSH_FULL_DIR="$dir/full"
  mkdir -p "$HIVE_TEST_SSH_FULL_DIR"
  mount -t tmpfs -o "size=$HIVE_SSH_FULL_BYTES,mode=0755" hive-ssh-full "$HIVE_TEST_SSH_FULL_DIR"
  HIVE_SSH_FULL_MOUNTED=$HIVE_TEST_SSH_FULL_DIR
  chown "$HIVE_TEST_SSH_USER" "$HIVE_TEST_SSH_FULL_DIR"

  export HIVE_TEST_SSH_HOST HIVE_TEST_SSH_PORT HIVE_TEST_SSH_USER HIVE_TEST_SSH_PASSWORD \
    HIVE_TEST_SSH_KEY HIVE_TEST_SSH_KEY_RSA HIVE_TEST_SSH_HOSTKEY_SHA256 HIVE_TEST_SSH_KNOWN_HOSTS HIVE_TEST_SSH_UPLOAD_DIR \
    HIVE_TEST_SSH_FULL_DIR
  log "sshd on $HIVE_TEST_SSH_HOST:$HIVE_TEST_SSH_PORT (user $HIVE_TEST_SSH_USER, host key $HIVE_TEST_SSH_HOSTKEY_SHA256)"

  winsim_sshd_start
}

# The simulated Windows fleet's SSH face (integration/winsim/src/ssh.rs): a second sshd whose
# ForceCommand is winsim-shell. A test's fleet opens a front door on each simulated host's own
# 127.x.y.z address and connects through to this sshd from that address; winsim-shell finds the
# host's unix socket in the registry folder by that address and hands it the command. The `sftp`
# subsystem reaches winsim-shell as SSH_ORIGINAL_COMMAND=internal-sftp and becomes the real
# OpenSSH sftp-server.
#
# winsim-shell is std-only and compiled here with a bare rustc (a second or two): no cargo build
# lock, no feature unification with the workspace build, and the binary lives where the sshd user
# can run it.
#
# Exports: HIVE_TEST_WINSIM_SSH_PORT (sshd on 127.0.0.1), HIVE_TEST_WINSIM_SSH_HOSTS (the registry
# folder for the fleet's sockets), HIVE_TEST_WINSIM_SSH_HOSTKEY_SHA256 and
# HIVE_TEST_WINSIM_SSH_HOSTKEY (the public key line, for an OpenSSH known_hosts file). The account
# is HIVE_TEST_SSH_USER with HIVE_TEST_SSH_PASSWORD, HIVE_TEST_SSH_KEY or HIVE_TEST_SSH_KEY_RSA.
winsim_sshd_start() {
  local dir="$HIVE_TEST_RUN/sshd/winsim-shell" sftp_server
  mkdir -p "$dir/hosts"
  chmod 755 "$dir" "$dir/hosts"
  rustc --edition 2024 -O -o "$dir/winsim-shell" \
    "$HIVE_ROOT/integration/winsim/src/bin/winsim-shell.rs"
  chmod 755 "$dir/winsim-shell"
  for sftp_server in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/libexec/sftp-server ""; do
    [ -x "$sftp_server" ] && break
  done
  if [ -z "$sftp_server" ]; then
    log "sshd: no OpenSSH sftp-server binary found for the simulated fleet's SFTP"
    return 1
  fi
  HIVE_TEST_WINSIM_SSH_PORT=$(free_port)
  while [ "$HIVE_TEST_WINSIM_SSH_PORT" = "$HIVE_TEST_SSH_PORT" ]; do HIVE_TEST_WINSIM_SSH_PORT=$(free_port); done
  sshd_launch winsim "$HIVE_TEST_WINSIM_SSH_PORT" "$HIVE_TEST_SSH_USER" "$HIVE_SSH_AUTHORIZED" \
    "ForceCommand $dir/winsim-shell --hosts $dir/hosts --sftp-server $sftp_server"
  HIVE_TEST_WINSIM_SSH_HOSTKEY_SHA256=$SSHD_HOSTKEY_SHA256
  HIVE_TEST_WINSIM_SSH_HOSTKEY=$(cut -d' ' -f1,2 "$SSHD_DIR/ssh_host_ed25519_key.pub")
  HIVE_TEST_WINSIM_SSH_HOSTS="$dir/hosts"
  export HIVE_TEST_WINSIM_SSH_PORT HIVE_TEST_WINSIM_SSH_HOSTS HIVE_TEST_WINSIM_SSH_HOSTKEY_SHA256 \
    HIVE_TEST_WINSIM_SSH_HOSTKEY
  log "winsim sshd on 127.0.0.1:$HIVE_TEST_WINSIM_SSH_PORT (ForceCommand winsim-shell, registry $dir/hosts)"
}

# Stops every listener sshd_launch started. Each connection has an sshd child of its own that ends
# when its client goes (the tests have exited by then), so only the listeners need stopping; killing
# the account's processes would also hit a concurrent run's sessions.
sshd_stop() {
  local pid
  for pid in "${HIVE_SSHD_PIDS[@]}"; do
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  HIVE_SSHD_PIDS=()
  if [ -n "${HIVE_SSH_FULL_MOUNTED:-}" ]; then
    umount "$HIVE_SSH_FULL_MOUNTED" || umount -l "$HIVE_SSH_FULL_MOUNTED" || true
    HIVE_SSH_FULL_MOUNTED=
  fi
}
