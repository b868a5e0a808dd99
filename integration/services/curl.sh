# curl as an independent WinRM peer for the simulated fleet (sourced by integration/lib.sh): its own
# NTLM (`--ntlm`, OEM strings only) and SPNEGO through GSS-API with gss-ntlmssp (`--negotiate`)
# against the HTTPS listeners. Nothing runs.
#
# Exports: HIVE_TEST_CURL (the curl binary).
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(curl gss-ntlmssp)

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
