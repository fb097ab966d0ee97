#!/usr/bin/env bash
# .ci/examples.sh: builds the examples and runs them over loopback: the example
# client against the example server, and against a release wsd's /echo. Each
# must get back exactly what it sent. Every process is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --examples --quiet
BIN=target/debug/examples
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { # PORT
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "examples.sh: nothing listens on $1" >&2; return 1
}
expect_echo() { # LABEL PORT [env...]
  local label=$1 port=$2; shift 2
  local got
  got=$(env "$@" timeout 10 "$BIN/core_echo_client" "127.0.0.1:$port" hello "ünïcode text" 2>/dev/null)
  if [ "$got" != $'hello\nünïcode text' ]; then
    echo "examples.sh: $label: unexpected replies: $got" >&2; exit 1
  fi
  echo "examples: $label echoed both messages"
}

timeout 60 "$BIN/core_echo_server" 127.0.0.1:9791 2>/dev/null &
PIDS+=($!)
wait_port 9791
expect_echo "example client -> example server" 9791

timeout 60 target/release/wsd --config autobahn/wsd.toml --listen 127.0.0.1:9792 >/dev/null 2>&1 &
PIDS+=($!)
wait_port 9792
expect_echo "example client -> wsd /echo" 9792 WS_PATH=/echo
