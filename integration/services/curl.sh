# curl as an independent WinRM peer for the simulated fleet: its own NTLM (`--ntlm`, OEM strings
# only) against the HTTPS listeners (sourced by integration/lib.sh). Nothing runs.
#
# Exports: HIVE_TEST_CURL (the curl binary).
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(curl)

curl_start() {
  HIVE_TEST_CURL=$(command -v curl) || {
    log "curl is not installed"
    return 1
  }
  export HIVE_TEST_CURL
}

curl_stop() {
  :
}
