#!/usr/bin/env bash
# Idle scale: how many open, idle WebSockets one machine holds, and what they
# cost. Starts wsd with enough SO_REUSEPORT workers (each holds at most ~19,900
# sockets under a 20,000-fd limit), then `wsd load idle -n N`, which spreads
# itself over processes bound to 127.0.0.2, 127.0.0.3, ... (19,000 each) and
# holds every connection idle for HOLD seconds.
#
# Reports: connections established, handshakes/s, server RSS in total (the
# supervisor and its workers, from /proc/PID/status) and per connection, and the
# kernel's side: /proc/meminfo Slab and /proc/net/sockstat (TCP sockets and
# their memory pages), before and during the hold. Loopback only; the load
# generator's own memory is on the same machine and is not counted.
#
# Usage: benches/idle-scale.sh [N]            N: connections (default 200000)
# Environment: HOLD (seconds, default 10), PER_WORKER (server connections per
#              worker, default 19000), OUT (default: a new temp dir),
#              WSD (a built binary; default: cargo build --release),
#              MIN_AVAILABLE_MIB (default 2048: the run is stopped, and says so,
#              if MemAvailable falls below this).
# Never run in CI: it needs minutes, GiBs of memory and every core.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
HOLD="${HOLD:-10}"
PER_WORKER="${PER_WORKER:-19000}"
OUT="${OUT:-$(mktemp -d /tmp/wsd-idle-scale.XXXXXX)}"
mkdir -p "$OUT"
if [ -z "${WSD:-}" ]; then
  cargo build --release --quiet
  WSD="$(pwd)/target/release/wsd"
fi
WORKERS=$(( (N + PER_WORKER - 1) / PER_WORKER ))
PORT="${PORT:-9301}"
MIN_AVAILABLE_MIB="${MIN_AVAILABLE_MIB:-2048}"

cat >"$OUT/wsd.toml" <<EOF
[server]
listen = ["127.0.0.1:$PORT"]
workers = $WORKERS
backlog = 65535
[log]
level = "warn"
[static]
enabled = false
[timeouts]
ping_interval = "0s"
handshake = "60s"
[[route]]
path = "/echo"
kind = "echo"
EOF

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# The server's processes: the supervisor and its children.
server_rss_kib() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
tcp_line() { grep '^TCP:' /proc/net/sockstat; }

echo "starting wsd with $WORKERS workers for $N connections (output in $OUT)"
"$WSD" --config "$OUT/wsd.toml" 2>"$OUT/wsd.log" &
SERVER=$!
pids+=("$SERVER")
for _ in $(seq 1 100); do
  [ "$(pgrep -P "$SERVER" | wc -l)" -ge "$WORKERS" ] && break
  sleep 0.1
done
sleep 1
rss0=$(server_rss_kib "$SERVER"); slab0=$(slab_kib); tcp0=$(tcp_line)

# The load generator reports while holding; sample the server meanwhile.
"$WSD" load idle --url "ws://127.0.0.1:$PORT/echo" -n "$N" --duration "$HOLD" \
  --per-process 19000 --max-pending 1024 --json --progress 5 \
  >"$OUT/load.json" 2>"$OUT/load.log" &
LOAD=$!
pids+=("$LOAD")
peak_rss=0; peak_slab=0; tcp_peak=""; stopped=""
while kill -0 "$LOAD" 2>/dev/null; do
  avail=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
  if [ "$avail" -lt "$MIN_AVAILABLE_MIB" ]; then
    stopped="stopped: MemAvailable fell to $avail MiB"
    echo "$stopped" >&2
    kill -TERM "$LOAD" 2>/dev/null || true
    break
  fi
  r=$(server_rss_kib "$SERVER"); s=$(slab_kib)
  [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  if [ "$s" -gt "$peak_slab" ]; then peak_slab=$s; tcp_peak=$(tcp_line); fi
  sleep 1
done
wait "$LOAD" || true

established=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("successes", 0))' "$OUT/load.json" 2>/dev/null || echo "?")
rate=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d.get("handshakes_per_sec", 0)))' "$OUT/load.json" 2>/dev/null || echo "?")
held=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("held", 0))' "$OUT/load.json" 2>/dev/null || echo "?")
per_conn="?"
if [[ "$established" =~ ^[0-9]+$ ]] && [ "$established" -gt 0 ]; then
  per_conn=$(( (peak_rss - rss0) * 1024 / established ))
fi
{
  echo "# Idle scale: $N connections, $WORKERS workers ($(date -u +%FT%TZ))"
  echo
  echo "| figure | value |"
  echo "|---|---:|"
  echo "| connections established (successes) | $established |"
  echo "| still open at the end of the hold | $held |"
  echo "| handshakes/s (ramp) | $rate |"
  echo "| server RSS before / peak (KiB, all processes) | $rss0 / $peak_rss |"
  echo "| server RSS per connection (B) | $per_conn |"
  echo "| kernel Slab before / peak (KiB) | $slab0 / $peak_slab |"
  echo "| sockstat TCP before | \`$tcp0\` |"
  echo "| sockstat TCP at peak | \`$tcp_peak\` |"
  [ -n "$stopped" ] && echo "| run | $stopped |"
  echo
  echo "Commands: \`wsd --config wsd.toml\` (workers = $WORKERS), then"
  echo "\`wsd load idle --url ws://127.0.0.1:$PORT/echo -n $N --duration $HOLD --per-process 19000 --max-pending 1024 --json\`."
  echo "Load generator log: $OUT/load.log; server log: $OUT/wsd.log."
} | tee "$OUT/idle-scale.md"
