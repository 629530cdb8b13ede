#!/usr/bin/env bash
# The Rust browser tests (`make test-wasm`): one wasm-pack run per context,
# window, dedicated worker and service worker, in headless Chromium.
#
# A test that fails fails the run, at once. A run whose harness reports no
# result at all (the browser or the driver never started the tests, or the
# page never printed back) is tried once more, and says so: that is the
# machine, not the code, and a second silence fails the run.
#
# CI shows only the end of what a run prints, so a failing run ends with
# its own summary: the lines that say which test failed and why.
set -uo pipefail
cd "$(dirname "$0")/.."

# The runner's 20 s default once timed out loading the debug build into a
# service worker on a loaded machine; the tests themselves take seconds.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-120}"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
# The runner's errors are anyhow errors: without this, RUST_BACKTRACE adds
# a backtrace of the runner itself that pushes the cause out of sight.
export RUST_LIB_BACKTRACE=0

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

summary() {
  echo
  echo "== wasm tests, $1: what went wrong =="
  grep -E 'FAILED|panicked at|assertion|left:|right:|failures:|^    [a-z_:]+$|Failed to detect|timed out|Error:|error:|Caused by' "$log" | grep -v '^\s*[0-9]*: ' | head -60
}

for context in window worker service_worker; do
  for attempt in 1 2; do
    wasm-pack test --headless --chrome --test "$context" 2>&1 | tee "$log"
    if [ "${PIPESTATUS[0]}" -eq 0 ]; then
      break
    fi
    if grep -q '^test result: ' "$log" || [ "$attempt" -eq 2 ]; then
      summary "$context"
      exit 1
    fi
    echo "== wasm tests, $context: the harness reported no result; trying once more =="
  done
done
