#!/usr/bin/env bash
# .ci/autobahn-wss.sh TOOLS_DIR OUT_DIR: runs the Autobahn|Testsuite fuzzingclient
# (sections 1-10) once over wss:// against a release wsd with a throwaway
# self-signed certificate, and fails on any FAILED case or any difference from
# autobahn/expected-results.json's sections 1-10 (the same verdicts as over ws://). Uses the
# shared tools' virtualenv and summary, with a spec of its own for the wss URL.
set -euo pipefail
TOOLS="${1:?usage: autobahn-wss.sh TOOLS_DIR OUT_DIR}"
OUT="${2:?usage: autobahn-wss.sh TOOLS_DIR OUT_DIR}"
cd "$(dirname "$0")/.."
. .ci/stop-wsd.sh
mkdir -p "$OUT/report"
OUT="$(cd "$OUT" && pwd)"
PORT="${AUTOBAHN_WSS_PORT:-9443}"
VENV="${AUTOBAHN_VENV:-/tmp/autobahn-venv}"

"$TOOLS/install.sh" "$VENV" >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log" >&2; exit 1; }

command -v openssl >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
{ cat autobahn/wsd.toml; printf '\n[tls]\ncert = "%s"\nkey = "%s"\n' "$OUT/cert.pem" "$OUT/key.pem"; } \
    >"$OUT/wsd-tls.toml"

target/release/wsd --config "$OUT/wsd-tls.toml" --listen-tls "127.0.0.1:$PORT" >"$OUT/wsd.log" 2>&1 &
WSD=$!
trap 'kill "$WSD" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.05
done

"$VENV/bin/python" - "$OUT/report" "wss://127.0.0.1:$PORT/echo" <<'PY'
import json, os, sys
outdir, url = sys.argv[1:]
spec = {"outdir": outdir, "servers": [{"agent": "wsd-tls", "url": url}],
        "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*"],
        "exclude-cases": [], "exclude-agent-cases": {}}
json.dump(spec, open(os.path.join(outdir, "fuzzingclient.json"), "w"), indent=2)
PY
rm -f "$OUT/report/index.json"
set +e
( cd "$OUT/report" && timeout 3600 "$VENV/bin/wstest" -m fuzzingclient -s fuzzingclient.json ) \
    >"$OUT/report/wstest.log" 2>&1
RC=$?
set -e
echo "autobahn-wss: wstest exited $RC"

stop_wsd "$WSD" "$OUT/wsd.log" autobahn-wss.sh
trap - EXIT

[ -s "$OUT/report/index.json" ] || { echo "autobahn-wss.sh: no report" >&2; tail -20 "$OUT/report/wstest.log" >&2; exit 1; }
"$VENV/bin/python" "$TOOLS/summarize.py" "$OUT/report" || true
python3 autobahn/compare.py autobahn/expected-results.json "$OUT/report/index.json" --sections=1-10
[ "$RC" -eq 0 ] || { echo "autobahn-wss.sh: the fuzzingclient failed" >&2; exit 1; }
