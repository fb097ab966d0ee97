#!/usr/bin/env bash
# .ci/browser-test.sh: runs the real-browser tests (tests/browser/: the chat page, and the
# status page under a small `wsd load`) against the release
# binary, over http/ws and then over https/wss. Installs what is missing (Debian's
# chromium, the test's npm packages), makes a throwaway certificate, starts
# target/release/wsd on free loopback ports (plain and TLS) from the repository root, runs
# `node --test tests/browser/` for each, stops that server by its PID and exits with the
# tests' status.
# It must never build wsd (the caller does), never download a browser other than Debian's
# chromium package, never listen beyond loopback, and never stop a process it did not start.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
OUT="$ROOT/tests/browser/out"
WSD=${WSD_BIN:-"$ROOT/target/release/wsd"} # WSD_BIN: another build to test
mkdir -p "$OUT"

log() { printf 'browser-test: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1
  fi
}

# ---- what the test needs ----------------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium"
  as_root timeout 600 apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y chromium
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "node and npm are required (Node >= 20)"
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  log "Node >= 20 is required, found $(node --version)"
  exit 1
fi

(cd tests/browser && timeout 600 npm ci --no-audit --no-fund --loglevel=error)

if [ ! -x "$WSD" ]; then
  log "$WSD is missing: run 'cargo build --release' first"
  exit 1
fi

# ---- the server -------------------------------------------------------------------------
PORT=${WSD_BROWSER_PORT:-$(node -e '
  const s = require("net").createServer();
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')}
ADDR="127.0.0.1:$PORT"
TLS_PORT=${WSD_BROWSER_TLS_PORT:-$(node -e '
  const s = require("net").createServer();
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')}
TLS_ADDR="127.0.0.1:$TLS_PORT"

# The shipped config plus a throwaway certificate, for the https/wss run.
command -v openssl >/dev/null ||
  { as_root timeout 600 apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq openssl >/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
{ cat config.toml; printf '\n[tls]\ncert = "%s"\nkey = "%s"\n' "$OUT/cert.pem" "$OUT/key.pem"; } \
  >"$OUT/config-tls.toml"

"$WSD" --config "$OUT/config-tls.toml" --listen "$ADDR" --listen-tls "$TLS_ADDR" \
  >"$OUT/wsd.log" 2>&1 </dev/null &
WSD_PID=$!
log "started wsd (pid $WSD_PID) on $ADDR"

stop_server() {
  if kill -0 "$WSD_PID" 2>/dev/null; then
    kill -TERM "$WSD_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$WSD_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$WSD_PID" 2>/dev/null; then
      log "wsd did not stop on SIGTERM within 5 s; killing it"
      kill -KILL "$WSD_PID" 2>/dev/null || true
    fi
  fi
  wait "$WSD_PID" 2>/dev/null || true
}
trap stop_server EXIT

ready=0
for _ in $(seq 1 150); do # 15 s
  if ! kill -0 "$WSD_PID" 2>/dev/null; then
    log "wsd exited before listening; its log:"
    cat "$OUT/wsd.log" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" -ne 1 ]; then
  log "wsd did not listen on $ADDR within 15 s; its log:"
  cat "$OUT/wsd.log" >&2
  exit 1
fi

# ---- the test ---------------------------------------------------------------------------
status=0
export WSD_LOAD_BIN="$WSD" # the status test runs a small load with it
WSD_URL="http://$ADDR" timeout 180 node --test tests/browser/ || status=$?
if [ "$status" -eq 0 ]; then
  log "the same over https:// and wss://"
  WSD_URL="https://$TLS_ADDR" SCREENSHOT="$OUT/chat-https.png" \
    STATUS_SCREENSHOT="$OUT/status-https.png" \
    timeout 180 node --test tests/browser/ || status=$?
fi

if [ "$status" -ne 0 ]; then
  log "test failed ($status); last lines of the wsd log:"
  tail -n 40 "$OUT/wsd.log" >&2 || true
else
  log "screenshots: tests/browser/out/chat.png, tests/browser/out/status.png (and -https)"
fi
exit "$status"
