# Debian's Chromium, headless, for the report's browser test (tests/report_browser.rs): it loads
# hive's HTML report from a file:// address and dumps the DOM its script drew, or a screenshot.
# Nothing runs between tests: "start" writes a wrapper that always passes the headless flags and
# keeps the browser off the network (no background or component updates, no metrics, a proxy
# that refuses and a resolver that finds no name), with a fresh profile for each call under the run folder.
#
# Exports: HIVE_TEST_CHROMIUM (the wrapper; pass --dump-dom or --screenshot=FILE, then the address).
# shellcheck shell=bash

HIVE_APT_PACKAGES+=(chromium)

chromium_start() {
  local dir=$HIVE_TEST_RUN/chromium bin
  bin=$(command -v chromium) || {
    log "chromium is not installed"
    return 1
  }
  mkdir -p "$dir"
  # A profile per call: two tests running at once would otherwise share one and the second
  # Chromium would hand its address to the first and exit.
  cat > "$dir/headless" <<WRAPPER
#!/bin/sh
profile=\$(mktemp -d "$dir/profile.XXXXXX") || exit 1
"$bin" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \\
  --no-first-run --no-default-browser-check --disable-extensions --disable-default-apps \\
  --disable-background-networking --disable-component-update --disable-sync \\
  --disable-domain-reliability --disable-client-side-phishing-detection --disable-breakpad \\
  --metrics-recording-only --safebrowsing-disable-auto-update --no-pings \\
  --proxy-server=127.0.0.1:9 --host-resolver-rules="MAP * ~NOTFOUND" \\
  --user-data-dir="\$profile" "\$@"
rc=\$?
rm -rf "\$profile"
exit \$rc
WRAPPER
  chmod +x "$dir/headless"
  export HIVE_TEST_CHROMIUM="$dir/headless"
}

chromium_stop() {
  :
}
