#!/usr/bin/env bash
# .ci/autobahn.sh TOOLS_DIR OUT_DIR: runs the Autobahn|Testsuite fuzzingclient
# (sections 1-10) against a release wsd on loopback, prints its summary, and fails
# on any FAILED case or any difference from autobahn/expected-results.json.
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

set +e
"$TOOLS/run.sh" 127.0.0.1 "$PORT" "$OUT/report" --no-compression --path=/echo --agent=wsd
RC=$?
set -e

stop_wsd "$WSD" "$OUT/wsd.log" autobahn.sh
trap - EXIT

python3 autobahn/compare.py autobahn/expected-results.json "$OUT/report/index.json"
[ "$RC" -eq 0 ] || { echo "autobahn.sh: the fuzzingclient reported failures" >&2; exit 1; }
