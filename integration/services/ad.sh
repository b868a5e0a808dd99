# A real Active Directory for hive's directory-sourced targets (issue #24): a Samba AD DC provisioned
# into $HIVE_TEST_RUN/ad with a realm of its own, listening on one loopback address only (its ports
# are fixed by AD — 389, 636, 88 — so it takes an address of its own instead of free ports, and the
# file-server Samba on 127.0.0.1 keeps working beside it). Sourced by integration/lib.sh.
#
# LDAPS uses a certificate the harness issues for the DC's address from a CA of its own, so the
# tests verify the chain and the name as they would against a real DC.
#
# The directory, under OU=Servers,DC=hive,DC=test:
#   OU=Web     WEB01..WEB04 (Windows Server 2019), DIS01 (disabled), LNX01 (operatingSystem Ubuntu)
#   OU=Db      DB01, DB02 (Windows Server 2019)
#   (direct)   APP01 (Windows Server 2019)
#   OU=NoDns   NODNS01, a computer without dNSHostName (kept outside the fleet OUs)
#   group Patch-Canary (CN=Users): WEB01 and DB01
# Each Windows computer's dNSHostName is a loopback address of HIVE_TEST_AD_FLEET_NET (there is
# no DNS on loopback), where the tests start simulated hosts.
#
# Exports: HIVE_TEST_AD_HOST (DC address), HIVE_TEST_AD_URL (ldaps://), HIVE_TEST_AD_STARTTLS_URL
# (ldap://, for StartTLS), HIVE_TEST_AD_CA_FILE, HIVE_TEST_AD_BASE (OU=Servers,...),
# HIVE_TEST_AD_DOMAIN_DN, HIVE_TEST_AD_BIND_DN, HIVE_TEST_AD_PASSWORD, HIVE_TEST_AD_FLEET_NET
# (127.a.b) and HIVE_TEST_AD_FLEET (NAME=ADDRESS:GROUPS;... of the computers that should resolve).
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind ldb-tools openssl)

# A loopback address whose port 636 is free (AD's ports cannot be moved).
_ad_pick_address() {
  local a b addr
  for _ in $(seq 50); do
    a=$((200 + RANDOM % 50)) b=$((RANDOM % 250))
    addr="127.$a.$b.1"
    if ! (exec 3<> "/dev/tcp/$addr/636") 2> /dev/null && ! (exec 3<> "/dev/tcp/$addr/389") 2> /dev/null; then
      HIVE_TEST_AD_HOST=$addr
      HIVE_TEST_AD_FLEET_NET="127.$a.$((b + 1))"
      return 0
    fi
  done
  log "ad: no free loopback address for the domain controller"
  return 1
}

_ad_certs() {
  local tls=$1
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=hive test AD CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.hive.test" \
    -keyout "$tls/key.pem" -out "$tls/dc.csr" 2> /dev/null
  printf 'subjectAltName=IP:%s,DNS:dc1.hive.test\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
    "$HIVE_TEST_AD_HOST" > "$tls/ext.cnf"
  openssl x509 -req -in "$tls/dc.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/ext.cnf" -out "$tls/cert.pem" 2> /dev/null
  chmod 600 "$tls/key.pem" "$tls/ca.key"
}

# ldbmodify against the DC's own database (before the DC starts, so nothing else writes it).
_ad_modify() {
  ldbmodify -H "$HIVE_AD_DIR/private/sam.ldb" > /dev/null
}

_ad_computer() {
  # $1 = name, $2 = OU path below the domain (empty for none), $3 = dNSHostName (empty: none),
  # $4 = operatingSystem
  local name=$1 ou=$2 dns=$3 os=$4 dn
  if [ -n "$ou" ]; then
    samba-tool computer create "$name" --computerou="$ou" -s "$HIVE_AD_CONF" > /dev/null
    dn="CN=$name,$ou,$HIVE_TEST_AD_DOMAIN_DN"
  else
    samba-tool computer create "$name" -s "$HIVE_AD_CONF" > /dev/null
    dn="CN=$name,CN=Computers,$HIVE_TEST_AD_DOMAIN_DN"
  fi
  {
    printf 'dn: %s\nchangetype: modify\n' "$dn"
    # samba-tool leaves a computer without dNSHostName, and disabled (no password set yet):
    # enabled here, as a joined server is.
    [ -z "$dns" ] || printf 'replace: dNSHostName\ndNSHostName: %s\n-\n' "$dns"
    printf 'replace: userAccountControl\nuserAccountControl: 4096\n-\n'
    printf 'replace: operatingSystem\noperatingSystem: %s\n-\n' "$os"
    printf 'replace: operatingSystemVersion\noperatingSystemVersion: 10.0 (17763)\n'
  } | _ad_modify
}

ad_start() {
  HIVE_AD_DIR=$HIVE_TEST_RUN/ad
  mkdir -p "$HIVE_AD_DIR"
  _ad_pick_address || return 1
  HIVE_TEST_AD_DOMAIN_DN="DC=hive,DC=test"
  HIVE_TEST_AD_PASSWORD="Hive-Ad1-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
  _ad_certs "$HIVE_AD_DIR/tls" || return 1
  samba-tool domain provision --targetdir="$HIVE_AD_DIR" --realm=HIVE.TEST --domain=HIVE \
    --server-role=dc --dns-backend=NONE --host-name=dc1 --adminpass="$HIVE_TEST_AD_PASSWORD" \
    --option="interfaces = $HIVE_TEST_AD_HOST/8" --option="bind interfaces only = yes" \
    --option="server services = ldap cldap kdc" --option="disable netbios = yes" \
    --option="tls enabled = yes" --option="tls keyfile = $HIVE_AD_DIR/tls/key.pem" \
    --option="tls certfile = $HIVE_AD_DIR/tls/cert.pem" --option="tls cafile = $HIVE_AD_DIR/tls/ca.pem" \
    > "$HIVE_AD_DIR/provision.log" 2>&1 || {
    tail -20 "$HIVE_AD_DIR/provision.log" >&2
    return 1
  }
  HIVE_AD_CONF=$HIVE_AD_DIR/etc/smb.conf

  samba-tool ou create "OU=Servers" -s "$HIVE_AD_CONF" > /dev/null
  samba-tool ou create "OU=Web,OU=Servers" -s "$HIVE_AD_CONF" > /dev/null
  samba-tool ou create "OU=Db,OU=Servers" -s "$HIVE_AD_CONF" > /dev/null
  samba-tool ou create "OU=NoDns" -s "$HIVE_AD_CONF" > /dev/null
  samba-tool group add Patch-Canary -s "$HIVE_AD_CONF" > /dev/null

  local net=$HIVE_TEST_AD_FLEET_NET ws="Windows Server 2019 Datacenter" i
  HIVE_TEST_AD_FLEET=""
  for i in 1 2 3 4; do
    _ad_computer "WEB0$i" "OU=Web,OU=Servers" "$net.1$i" "$ws"
  done
  _ad_computer DB01 "OU=Db,OU=Servers" "$net.21" "$ws"
  _ad_computer DB02 "OU=Db,OU=Servers" "$net.22" "$ws"
  # APP01 sits directly in OU=Servers (samba-tool puts it there with the OU path).
  _ad_computer APP01 "OU=Servers" "$net.31" "$ws"
  _ad_computer DIS01 "OU=Web,OU=Servers" "$net.41" "$ws"
  _ad_computer LNX01 "OU=Web,OU=Servers" "$net.42" "Ubuntu"
  _ad_computer NODNS01 "OU=NoDns" "" "$ws"
  printf 'dn: CN=DIS01,OU=Web,OU=Servers,%s\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 4098\n' \
    "$HIVE_TEST_AD_DOMAIN_DN" | _ad_modify
  samba-tool group addmembers Patch-Canary 'WEB01$,DB01$' -s "$HIVE_AD_CONF" > /dev/null
  HIVE_TEST_AD_FLEET="WEB01=$net.11:web,canary;WEB02=$net.12:web;WEB03=$net.13:web;WEB04=$net.14:web;DB01=$net.21:db,canary;DB02=$net.22:db;APP01=$net.31:"

  samba -i -s "$HIVE_AD_CONF" > "$HIVE_AD_DIR/samba.log" 2>&1 &
  echo $! > "$HIVE_AD_DIR/samba.pid"
  if ! wait_port "$HIVE_TEST_AD_HOST" 636 60; then
    tail -30 "$HIVE_AD_DIR/samba.log" >&2
    return 1
  fi
  HIVE_TEST_AD_URL="ldaps://$HIVE_TEST_AD_HOST"
  HIVE_TEST_AD_STARTTLS_URL="ldap://$HIVE_TEST_AD_HOST"
  HIVE_TEST_AD_CA_FILE=$HIVE_AD_DIR/tls/ca.pem
  HIVE_TEST_AD_BASE="OU=Servers,$HIVE_TEST_AD_DOMAIN_DN"
  HIVE_TEST_AD_BIND_DN="CN=Administrator,CN=Users,$HIVE_TEST_AD_DOMAIN_DN"
  export HIVE_TEST_AD_HOST HIVE_TEST_AD_URL HIVE_TEST_AD_STARTTLS_URL HIVE_TEST_AD_CA_FILE \
    HIVE_TEST_AD_BASE HIVE_TEST_AD_DOMAIN_DN HIVE_TEST_AD_BIND_DN HIVE_TEST_AD_PASSWORD \
    HIVE_TEST_AD_FLEET_NET HIVE_TEST_AD_FLEET
  log "ad: Samba AD DC for HIVE.TEST on $HIVE_TEST_AD_HOST (LDAPS 636, StartTLS 389)"
}

ad_stop() {
  local pid
  [ -f "${HIVE_AD_DIR:-}/samba.pid" ] || return 0
  pid=$(cat "$HIVE_AD_DIR/samba.pid")
  kill "$pid" 2> /dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2> /dev/null || true
}
