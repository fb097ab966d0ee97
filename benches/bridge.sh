#!/usr/bin/env bash
# Bridge benchmarks: wsd's bridge routes against the tools people use for the
# same job, side by side in one run, over loopback only.
#
#   tcp1k, tcp64k   A `kind = "tcp"` route to a TCP echo backend
#                   (benches/tcp-echo-backend) vs websockify (Python) in front of
#                   the same backend: C connections each with one binary message
#                   of 1 KiB / 64 KiB in flight (`wsd load echo --stream`: TCP
#                   keeps no message boundaries, so the echoed bytes are
#                   reassembled into the sent messages and still checked byte for
#                   byte). Figures: messages/s, p99 round trip, and messages per
#                   server CPU-second.
#   spawn           A `kind = "process"` route running /bin/cat per connection vs
#                   websocketd (Go) running /bin/cat: `wsd load idle` opens N
#                   connections as fast as it can (each starts a cat), holds them
#                   briefly and closes them. Figures: handshakes/s, the peak count
#                   of live cats, connections per server CPU-second, and how many
#                   processes were left behind (must be 0).
#
# How: the server runs on SERVER_CPU and the load generator (and the echo
# backend) on LOAD_CPU, pinned with taskset. Each run starts a fresh server.
# The server's CPU time is read from /proc/PID/stat before and after the load:
# utime+stime+cutime+cstime of the server and of its live descendants, taken
# after waiting (bounded) for its children to exit and be reaped, so the CPU of
# websockify's forked per-connection handlers and of every cat is counted.
# Every scenario runs RUNS times, alternating servers, and the table gives
# medians, with the wsd/peer ratio of each figure.
#
# Usage: benches/bridge.sh [scenario...]      scenarios: tcp1k tcp64k spawn (default: all)
# Environment: RUNS (3), DURATION (10: seconds of echo), CONNS (50: echo connections),
#              SPAWN_N (2000: connections, so cats, in the spawn scenario),
#              SPAWN_HOLD (2: seconds they are held), SERVER_CPU (0), LOAD_CPU (1),
#              OUT (default: a new temp dir), CARGO_TARGET_DIR (where to build;
#              default $ROOT/target/bench-bridge), SKIP_BUILD=1 (reuse $OUT/bin),
#              WEBSOCKIFY (websockify on PATH, else /tmp/wsd-test-venv/bin/websockify;
#              install with `python3 -m venv V && V/bin/pip install websockify`),
#              WEBSOCKETD (websocketd on PATH).
# Output: the markdown table, with the exact commands, in $OUT/bridge.md (and on
# stdout); JSON of every run in $OUT/runs, server logs in $OUT/logs.
# Needs: cargo, taskset, timeout, pgrep, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
SPAWN_N=${SPAWN_N:-2000}
SPAWN_HOLD=${SPAWN_HOLD:-2}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/wsd-bridge.XXXXXX")}
BUILD=${CARGO_TARGET_DIR:-$ROOT/target/bench-bridge}
PORT=${PORT:-9760}
BACKEND_PORT=${BACKEND_PORT:-9759}
WEBSOCKIFY=${WEBSOCKIFY:-$(command -v websockify || echo /tmp/wsd-test-venv/bin/websockify)}
WEBSOCKETD=${WEBSOCKETD:-$(command -v websocketd || echo websocketd)}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(tcp1k tcp64k spawn)

mkdir -p "$OUT/bin" "$OUT/runs" "$OUT/logs"
ulimit -n "$(ulimit -Hn)"
TICKS=$(getconf CLK_TCK)
WSD=$OUT/bin/wsd
BACKEND=$OUT/bin/tcp-echo-backend

# --- build -------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building wsd (release) into $BUILD ..." >&2
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --target-dir "$BUILD"
    cp "$BUILD/release/wsd" "$WSD"
    echo "building tcp-echo-backend (release) ..." >&2
    cargo build --release --quiet --manifest-path "$ROOT/benches/tcp-echo-backend/Cargo.toml" \
        --target-dir "$BUILD/tcp-echo-backend"
    cp "$BUILD/tcp-echo-backend/release/tcp-echo-backend" "$BACKEND"
fi
[ -x "$WEBSOCKIFY" ] || echo "no websockify ($WEBSOCKIFY): its figures will be missing" >&2
command -v "$WEBSOCKETD" >/dev/null || echo "no websocketd: its figures will be missing" >&2

cat >"$OUT/wsd.toml" <<EOF
# Bridge benchmark config: no static files, no server pings, quiet logs.
[server]
backlog = 4096
[log]
level = "warn"
[timeouts]
ping_interval = "0s"
[static]
enabled = false
[[route]]
path = "/tcp"
kind = "tcp"
backend = "127.0.0.1:$BACKEND_PORT"
[[route]]
path = "/cat"
kind = "process"
command = ["/bin/cat"]
mode = "binary"
max_processes = $((SPAWN_N + 100))
EOF

# --- processes -----------------------------------------------------------------
# Every process this script starts is in STARTED; cleanup ends them and whatever
# they started (websockify's handlers, cats), by pid.
STARTED=()
descendants() { # PID -> its descendants' pids, deepest last
    local child
    for child in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$child"
        descendants "$child"
    done
}
end_tree() { # PID: TERM it (and its descendants), wait up to 5 s, then KILL what is left
    local pid=$1 all
    all="$pid $(descendants "$pid" | tr '\n' ' ')"
    kill -TERM $pid 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    # shellcheck disable=SC2086
    kill -KILL $all 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
forget() { # PID: no longer ours to clean up (it has been ended)
    local kept=() p
    for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    STARTED=("${kept[@]}")
}
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        end_tree "$pid"
    done
    STARTED=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_listening() { # PORT PID: up to 10 s for PORT to accept while PID lives
    for _ in $(seq 200); do
        kill -0 "$2" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# CPU ticks of PID and its live descendants, each with its reaped children's.
tree_ticks() {
    local total=0 p t
    for p in "$1" $(descendants "$1"); do
        # Fields after "pid (comm) ": utime stime cutime cstime are 12..15.
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# Up to SECS for PID to have no children left (handlers and cats exit once their
# connection is closed, and must be reaped to be counted in cutime).
wait_childless() { # PID SECS
    for _ in $(seq $(($2 * 20))); do
        [ -z "$(pgrep -P "$1" 2>/dev/null || true)" ] && return 0
        sleep 0.05
    done
    return 1
}

SERVER_PID=
SERVER_CMD=()
start_server() { # KIND: wsd-tcp wsd-cat websockify websocketd
    PORT=$((PORT + 1))
    case $1 in
    wsd-*) SERVER_CMD=("$WSD" --config "$OUT/wsd.toml" --listen "127.0.0.1:$PORT") ;;
    websockify) SERVER_CMD=("$WEBSOCKIFY" "127.0.0.1:$PORT" "127.0.0.1:$BACKEND_PORT") ;;
    websocketd) SERVER_CMD=("$WEBSOCKETD" --port="$PORT" --address=127.0.0.1 --binary --loglevel=error /bin/cat) ;;
    esac
    taskset -c "$SERVER_CPU" "${SERVER_CMD[@]}" >>"$OUT/logs/$1.log" 2>&1 &
    SERVER_PID=$!
    STARTED+=("$SERVER_PID")
    if ! wait_listening "$PORT" "$SERVER_PID"; then
        echo "$1 did not listen on $PORT (see $OUT/logs/$1.log)" >&2
        stop_server
        return 1
    fi
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    end_tree "$SERVER_PID"
    forget "$SERVER_PID"
    SERVER_PID=
}

# The echo backend, shared by every tcp run (on the load generator's cpu).
start_backend() {
    [ -n "${BACKEND_PID:-}" ] && return 0
    taskset -c "$LOAD_CPU" "$BACKEND" "127.0.0.1:$BACKEND_PORT" >>"$OUT/logs/backend.log" 2>&1 &
    BACKEND_PID=$!
    STARTED+=("$BACKEND_PID")
    wait_listening "$BACKEND_PORT" "$BACKEND_PID" || { echo "the echo backend did not start" >&2; exit 1; }
}

# --- one measured run --------------------------------------------------------
# run_one SCENARIO SERVER-KIND LABEL I -- LOAD ARGS (@URL@ is the server's base URL)
# Appends one JSON line to $OUT/runs.jsonl: the load's result plus server_ticks,
# peak_children, leftover, and the commands.
run_one() {
    local scenario=$1 kind=$2 label=$3 i=$4
    shift 5
    local file="$OUT/runs/$scenario-$label-$i.json"
    start_server "$kind" || return 0
    local args=("${@//@URL@/ws://127.0.0.1:$PORT}")
    local load=(taskset -c "$LOAD_CPU" timeout 300 "$WSD" load "${args[@]}" --json --progress 0)
    local before after peak=0 n leftover=0 rc=0
    before=$(tree_ticks "$SERVER_PID")
    "${load[@]}" >"$file" 2>>"$OUT/logs/load.log" &
    local load_pid=$!
    STARTED+=("$load_pid")
    # While the load runs (at most its own timeout), note the most children seen.
    while kill -0 "$load_pid" 2>/dev/null; do
        n=$(pgrep -c -P "$SERVER_PID" 2>/dev/null || true)
        [ "${n:-0}" -gt "$peak" ] && peak=$n
        sleep 0.1
    done
    wait "$load_pid" || rc=$?
    forget "$load_pid"
    [ "$rc" = 0 ] || echo "  run $scenario/$label/$i: the load exited $rc (see $OUT/logs/load.log)" >&2
    wait_childless "$SERVER_PID" 15 || echo "  $label still has children 15 s after the load" >&2
    after=$(tree_ticks "$SERVER_PID")
    # Whatever the server started and has not ended is left over (then killed).
    local left
    left=$(descendants "$SERVER_PID" | tr '\n' ' ')
    stop_server
    for n in $left; do
        if kill -0 "$n" 2>/dev/null; then
            leftover=$((leftover + 1))
            kill -KILL "$n" 2>/dev/null || true
        fi
    done
    python3 - "$file" "$scenario" "$label" "$i" "$((after - before))" "$TICKS" "$peak" "$leftover" "$rc" \
        "${SERVER_CMD[*]}" "${load[*]}" >>"$OUT/runs.jsonl" <<'EOF'
import json, sys
f, scenario, label, i, ticks, hz, peak, leftover, rc, server_cmd, load_cmd = sys.argv[1:]
try:
    result = json.load(open(f))
except ValueError:
    result = {}
result.update(scenario=scenario, server=label, run=int(i), server_cpu_s=int(ticks) / int(hz),
              peak_children=int(peak), leftover=int(leftover), load_exit=int(rc),
              server_cmd=server_cmd, load_cmd=load_cmd)
print(json.dumps(result))
EOF
}

# measure SCENARIO "KIND:LABEL ..." -- LOAD ARGS: RUNS runs of each server, alternating.
measure() {
    local scenario=$1 servers=$2
    shift 3
    for i in $(seq "$RUNS"); do
        for s in $servers; do
            local kind=${s%%:*} label=${s#*:}
            case $kind in
            websockify) [ -x "$WEBSOCKIFY" ] || continue ;;
            websocketd) command -v "$WEBSOCKETD" >/dev/null || continue ;;
            esac
            echo "  $scenario on $label, run $i/$RUNS ..." >&2
            run_one "$scenario" "$kind" "$label" "$i" -- "$@"
        done
    done
}

: >"$OUT/runs.jsonl"
for s in "${SCENARIOS[@]}"; do
    echo "scenario $s" >&2
    case $s in
    tcp1k | tcp64k)
        size=1024
        [ "$s" = tcp64k ] && size=65536
        start_backend
        measure "$s" "wsd-tcp:wsd websockify:websockify" -- \
            echo --url @URL@/tcp -c "$CONNS" -p 1 -s "$size" --binary --stream --duration "$DURATION"
        ;;
    spawn)
        measure spawn "wsd-cat:wsd websocketd:websocketd" -- \
            idle --url @URL@/cat -n "$SPAWN_N" --duration "$SPAWN_HOLD"
        ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done
cleanup

# --- report ------------------------------------------------------------------
python3 - "$OUT/runs.jsonl" "$RUNS" "$SERVER_CPU" "$LOAD_CPU" <<'EOF' | tee "$OUT/bridge.md"
import json, os, platform, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# wsd bridges vs websockify / websocketd\n")
print(f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, {cpu_model}; "
      f"median of {sys.argv[2]} run(s); server on cpu {sys.argv[3]}, load generator "
      f"and echo backend on cpu {sys.argv[4]}. Server CPU counts its reaped children "
      f"(websockify's per-connection processes, the cats). Ratios are wsd / peer: "
      f"higher is better, except for round trip and CPU seconds.\n")

def per_cpu(count_key):
    return lambda r: (r.get(count_key, 0) / r["server_cpu_s"]) if r["server_cpu_s"] > 0 else None

ECHO = [  # header, how to get it from a run, format
    ("msg/s", lambda r: r.get("messages_per_sec"), "{:,.0f}"),
    ("MB/s each way", lambda r: r.get("bytes_per_sec", 0) / 1e6, "{:,.1f}"),
    ("p99 round trip (µs)", lambda r: r.get("latency", {}).get("p99_us"), "{:,.0f}"),
    ("server CPU (s)", lambda r: r["server_cpu_s"], "{:.2f}"),
    ("msg per server CPU-s", per_cpu("received"), "{:,.0f}"),
    ("mismatches", lambda r: r.get("mismatches"), "{:.0f}"),
    ("unexpected + unanswered", lambda r: r.get("unexpected", 0) + r.get("unanswered", 0), "{:.0f}"),
    ("failed connections", lambda r: r.get("connections", 0) - r.get("successes", 0), "{:.0f}"),
]
SPAWN = [
    ("handshakes/s", lambda r: r.get("handshakes_per_sec"), "{:,.0f}"),
    ("established", lambda r: r.get("successes"), "{:.0f}"),
    ("peak live children", lambda r: r["peak_children"], "{:.0f}"),
    ("server CPU incl. children (s)", lambda r: r["server_cpu_s"], "{:.2f}"),
    ("connections per server CPU-s", per_cpu("successes"), "{:,.0f}"),
    ("left over after close", lambda r: r["leftover"], "{:.0f}"),
]

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def fmt(f, v):
    return "-" if v is None else f.format(v)

scenarios = list(dict.fromkeys(r["scenario"] for r in runs))
commands = []
for sc in scenarios:
    rows = [r for r in runs if r["scenario"] == sc]
    servers = list(dict.fromkeys(r["server"] for r in rows))
    cols = SPAWN if sc == "spawn" else ECHO
    first = rows[0]
    print(f"## {sc}\n")
    print("| server | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    med = {}
    for s in servers:
        mine = [r for r in rows if r["server"] == s]
        med[s] = [median([c[1](r) for r in mine]) for c in cols]
        bad = sum(r["load_exit"] != 0 for r in mine)
        note = f" ({bad} run(s) with failures)" if bad else ""
        print(f"| {s}{note} | " + " | ".join(fmt(c[2], v) for c, v in zip(cols, med[s])) + " |")
        commands.append((sc, s, mine[0]["server_cmd"], mine[0]["load_cmd"]))
    if len(servers) == 2:
        a, b = med[servers[0]], med[servers[1]]
        ratio = ["-" if x is None or not y else f"{x / y:.2f}" for x, y in zip(a, b)]
        print(f"| ratio {servers[0]}/{servers[1]} | " + " | ".join(ratio) + " |")
    print()
print("## Commands (first run of each; ports differ per run)\n")
for sc, s, server_cmd, load_cmd in commands:
    print(f"- {sc}, {s}:\n  - server: `taskset -c {sys.argv[3]} {server_cmd}`\n  - load: `{load_cmd}`")
EOF
echo "results: $OUT/bridge.md" >&2
