# The Go WinRM client of Packer and Terraform (masterzen/winrm over Azure/go-ntlmssp, Debian's
# packages, unmodified) as an independent peer for the simulated fleet (sourced by
# integration/lib.sh). Nothing runs: "start" builds integration/winrm_go offline against the
# packaged sources in /usr/share/gocode.
#
# Exports: HIVE_TEST_GO_WINRM (the built winrm-go binary).
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(golang-go golang-github-masterzen-winrm-dev)

goclient_start() {
  local dir=$HIVE_TEST_RUN/goclient
  mkdir -p "$dir"
  # GOPATH mode over the Debian sources; no module proxy, no network. The build cache lives with
  # cargo's target/ so a rerun does not recompile the library.
  (
    cd "$HIVE_ROOT/integration/winrm_go" &&
      GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
        GOCACHE="$HIVE_ROOT/target/go-cache" go build -o "$dir/winrm-go" .
  ) > "$dir/build.log" 2>&1 || {
    cat "$dir/build.log" >&2
    return 1
  }
  export HIVE_TEST_GO_WINRM="$dir/winrm-go"
}

goclient_stop() {
  :
}
