#!/usr/bin/env bash
# .ci/autobahn.sh TOOLS_DIR OUT_DIR: runs the Autobahn|Testsuite fuzzingclient, all
# sections (1-10, and 12-13 for permessage-deflate), against a release wsd on
# loopback twice: on a route with compression = "shared" and on one with
# "dedicated". Prints each summary and fails on any FAILED case or any difference
# from autobahn/expected-results.json.
set -euo pipefail
TOOLS="${1:?usage: autobahn.sh TOOLS_DIR OUT_DIR}"
OUT="${2:?usage: autobahn.sh TOOLS_DIR OUT_DIR}"
cd "$(dirname "$0")/.."
. .ci/stop-wsd.sh
mkdir -p "$OUT"
PORT="${AUTOBAHN_PORT:-9001}"

"$TOOLS/install.sh" "${AUTOBAHN_VENV:-/tmp/autobahn-venv}" >"$OUT/install.log" 2>&1 || {
  cat "$OUT/install.log" >&2; exit 1; }

target/release/wsd --config autobahn/wsd.toml --listen "127.0.0.1:$PORT" >"$OUT/wsd.log" 2>&1 &
WSD=$!
trap 'kill "$WSD" 2>/dev/null || true' EXIT

# The two runs go side by side: the suite's Python client, not wsd, is what
# takes the time (about 10 minutes for sections 12-13), and there are two cores.
MODES=(shared dedicated)
PIDS=()
for MODE in "${MODES[@]}"; do
  "$TOOLS/run.sh" 127.0.0.1 "$PORT" "$OUT/report-$MODE" --path="/echo-$MODE" --agent=wsd \
    >"$OUT/run-$MODE.log" 2>&1 &
  PIDS+=($!)
  sleep 5 # let the first run's venv check finish before the second one's
done
FAILED=0
for i in "${!MODES[@]}"; do
  MODE=${MODES[$i]}
  RC=0
  wait "${PIDS[$i]}" || RC=$?
  echo "---- compression = \"$MODE\" ----"
  cat "$OUT/run-$MODE.log"
  [ "$RC" -eq 0 ] || { echo "autobahn.sh: the fuzzingclient reported failures ($MODE)" >&2; FAILED=1; }
  python3 autobahn/compare.py autobahn/expected-results.json "$OUT/report-$MODE/index.json" || FAILED=1
done

stop_wsd "$WSD" "$OUT/wsd.log" autobahn.sh
trap - EXIT
exit "$FAILED"
