#!/usr/bin/env bash
# Chat fan-out across processes: one room of 1,000 members on one wsd (single),
# on two wsd daemons sharing the room through a real redis-server, 500 members on
# each (redis2), and on uWebSockets' `uws_echo PORT --broadcast` (uws). Loopback
# only. Every scenario runs RUNS times, alternating (single, redis2, uws, single,
# ...), each on fresh servers; the table gives medians with the per-run values.
#
# Usage: benches/backplane.sh
# Environment: RUNS (3), SERVER_CPU (0), LOAD_CPU (1), MEMBERS (1000), WINDOW (32),
#   SIZE (64, payload bytes), SINGLE_M / REDIS2_M / UWS_M (messages published per
#   run: 20000 each, 20 M deliveries, about 5-10 s each on the 2-core VM),
#   OUT (a new temp dir), PORT (first port, 9760; each run takes the next ones),
#   WSD (a built wsd: skips the build), CARGO_TARGET_DIR (where the build goes,
#   default ROOT/target/bench-backplane), REDIS_SERVER (redis-server),
#   UWS_DIR (/tmp/uws; built with ../shared/tools/peers/uws/build.sh if missing),
#   SCENARIOS ("single redis2 uws").
#
# Pinning: every server process is on SERVER_CPU, in redis2 both wsd daemons AND
# redis-server share that one core; the load generator is alone on LOAD_CPU.
# Server CPU is utime+stime from /proc/PID/stat before/after the load command
# (connect phase and settle included); in redis2 it is wsd A + wsd B + redis.
# The load generator's CPU comes from /usr/bin/time when installed.
# Writes $OUT/backplane.md (also printed), the JSON results in $OUT/runs, logs in $OUT.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MEMBERS=${MEMBERS:-1000}
WINDOW=${WINDOW:-32}
SIZE=${SIZE:-64}
SINGLE_M=${SINGLE_M:-20000}
REDIS2_M=${REDIS2_M:-20000}
UWS_M=${UWS_M:-20000}
PORT=${PORT:-9760}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
UWS_DIR=${UWS_DIR:-/tmp/uws}
read -r -a SCENARIOS <<<"${SCENARIOS:-single redis2 uws}"
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/wsd-backplane.XXXXXX")}
mkdir -p "$OUT/bin" "$OUT/runs"
HZ=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)"

# --- processes we start: killed (by pid) on exit -----------------------------
STARTED=()
stop_pid() { # PID: TERM, wait at most 5 s, then KILL
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_all() { # newest first: the wsd daemons go before the redis-server they use
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[i]}"; done
    STARTED=()
}
forget() { # PID: no longer ours to stop (it was waited for)
    local keep=() p
    for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# --- binaries ------------------------------------------------------------------
if [ -z "${WSD:-}" ]; then
    echo "building wsd (release) ..." >&2
    target=${CARGO_TARGET_DIR:-$ROOT/target/bench-backplane}
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --target-dir "$target"
    # A copy: the build dir may be rebuilt by other jobs during the run.
    cp "$target/release/wsd" "$OUT/bin/wsd"
    WSD=$OUT/bin/wsd
fi
[ -x "$WSD" ] || { echo "no wsd binary at $WSD" >&2; exit 1; }
command -v "$REDIS_SERVER" >/dev/null || { echo "no $REDIS_SERVER" >&2; exit 1; }
UWS=$UWS_DIR/uws_echo
if [[ " ${SCENARIOS[*]} " == *" uws "* ]] && [ ! -x "$UWS" ]; then
    echo "building uWebSockets into $UWS_DIR ..." >&2
    bash "$ROOT/../shared/tools/peers/uws/build.sh" "$UWS_DIR" >"$OUT/uws-build.log" 2>&1 ||
        echo "uws build failed (see $OUT/uws-build.log): uws left out" >&2
fi
TIMER=()
if [ -x /usr/bin/time ]; then TIMER=(/usr/bin/time -f "%U %S" -o); fi

config() { # FILE [REDIS_PORT METRICS_PORT]
    cat >"$1" <<'EOF'
# Benchmark config: no static files, no server pings, quiet logs, one big silent room.
[server]
backlog = 4096
[log]
level = "warn"
[timeouts]
ping_interval = "0s"
[static]
enabled = false
[[route]]
path = "/chat"
kind = "chat"
max_members = 20000
announce = false
echo_to_sender = false
EOF
    if [ $# -eq 3 ]; then
        printf '[backplane]\nredis = "redis://127.0.0.1:%s"\n[metrics]\nlisten = "127.0.0.1:%s"\n' \
            "$2" "$3" >>"$1"
    fi
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_listen() { # PORT PID NAME
    for _ in $(seq 200); do
        listening "$1" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    echo "$3 did not listen on $1" >&2
    return 1
}
# metric PORT NAME [LABELS]: a value from wsd's /metrics (empty if absent)
metric() {
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" |
        awk -v n="$2${3:-}" '$1 == n { print $2; exit }'
}
wait_backplane_up() { # METRICS_PORT
    for _ in $(seq 100); do
        [ "$(metric "$1" wsd_backplane_up)" = 1 ] && return 0
        sleep 0.05
    done
    echo "the backplane behind metrics port $1 did not come up" >&2
    return 1
}
start() { # NAME LOG CMD...: starts CMD pinned to SERVER_CPU; sets LAST_PID
    local name=$1 log=$2
    shift 2
    taskset -c "$SERVER_CPU" "$@" >>"$log" 2>&1 &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
}
ticks() { # utime + stime of PID in clock ticks (fields 14, 15; comm may hold spaces)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    awk '{ print $12 + $13 }' <<<"$s"
}

# load NAME URL...: one load run on CPU LOAD_CPU; writes runs/NAME.json and .loadcpu
load() {
    local name=$1 m=$2
    shift 2
    local urls=() u
    for u in "$@"; do urls+=(--url "$u"); done
    local file=$OUT/runs/$name.json
    local timer=()
    if [ ${#TIMER[@]} -gt 0 ]; then timer=("${TIMER[@]}" "$file.loadcpu"); fi
    local t0 t1
    t0=$(date +%s.%N)
    # timeout outermost: stopping it (trap) signals its whole process group.
    timeout 120 "${timer[@]}" taskset -c "$LOAD_CPU" "$WSD" load broadcast --json --progress 0 \
        "${urls[@]}" -c "$MEMBERS" -m "$m" -s "$SIZE" --window "$WINDOW" --duration 60 \
        >"$file" 2>>"$OUT/load.log" &
    local pid=$!
    STARTED+=("$pid")
    local rc=0
    wait "$pid" || rc=$?
    t1=$(date +%s.%N)
    forget "$pid"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >"$file.wall"
    [ "$rc" = 0 ] || echo "  $name: the load generator exited $rc (see $OUT/load.log)" >&2
    echo "$rc" >"$file.rc"
}

run_single() { # I
    local port=$((PORT += 1))
    config "$OUT/single.toml"
    start wsd "$OUT/wsd.log" "$WSD" --config "$OUT/single.toml" --listen "127.0.0.1:$port"
    local pid=$LAST_PID
    wait_listen "$port" "$pid" wsd || { stop_all; return 0; }
    local b a
    b=$(ticks "$pid")
    load "single-$1" "$SINGLE_M" "ws://127.0.0.1:$port/chat?room=bench"
    a=$(ticks "$pid")
    echo "$((a - b))" >"$OUT/runs/single-$1.json.cpu"
    stop_all
}

run_redis2() { # I
    local rport=$((PORT += 1)) pa=$((PORT += 1)) pb=$((PORT += 1))
    local ma=$((PORT += 1)) mb=$((PORT += 1))
    start redis "$OUT/redis.log" "$REDIS_SERVER" --port "$rport" --bind 127.0.0.1 --save "" \
        --appendonly no
    local rpid=$LAST_PID
    wait_listen "$rport" "$rpid" redis-server || { stop_all; return 0; }
    config "$OUT/redis2-a.toml" "$rport" "$ma"
    config "$OUT/redis2-b.toml" "$rport" "$mb"
    start wsd-a "$OUT/wsd.log" "$WSD" --config "$OUT/redis2-a.toml" --listen "127.0.0.1:$pa"
    local apid=$LAST_PID
    start wsd-b "$OUT/wsd.log" "$WSD" --config "$OUT/redis2-b.toml" --listen "127.0.0.1:$pb"
    local bpid=$LAST_PID
    if ! { wait_listen "$pa" "$apid" wsd-a && wait_listen "$pb" "$bpid" wsd-b &&
        wait_backplane_up "$ma" && wait_backplane_up "$mb"; }; then
        stop_all
        return 0
    fi
    local ba bb br aa ab ar f=$OUT/runs/redis2-$1.json
    ba=$(ticks "$apid")
    bb=$(ticks "$bpid")
    br=$(ticks "$rpid")
    load "redis2-$1" "$REDIS2_M" "ws://127.0.0.1:$pa/chat?room=bench" "ws://127.0.0.1:$pb/chat?room=bench"
    aa=$(ticks "$apid")
    ab=$(ticks "$bpid")
    ar=$(ticks "$rpid")
    echo "$((aa - ba))" >"$f.cpu-a"
    echo "$((ab - bb))" >"$f.cpu-b"
    echo "$((ar - br))" >"$f.cpu-redis"
    echo "$((aa - ba + ab - bb + ar - br))" >"$f.cpu"
    # What the daemons counted: relayed, received, dropped (queue full / Redis down).
    # Presence (a join and a leave per member) is relayed too, even with announce
    # off; the members' leaves are still on their way when the load command ends.
    sleep 0.5
    local side port
    for side in a b; do
        port=$ma
        [ "$side" = b ] && port=$mb
        {
            echo "published $(metric "$port" wsd_backplane_published_total)"
            echo "received $(metric "$port" wsd_backplane_received_total)"
            echo "dropped_queue $(metric "$port" wsd_backplane_dropped_total '{reason="queue"}')"
            echo "dropped_down $(metric "$port" wsd_backplane_dropped_total '{reason="down"}')"
            echo "outages $(metric "$port" wsd_backplane_outages_total)"
        } >"$f.metrics-$side"
    done
    stop_all
}

run_uws() { # I
    [ -x "$UWS" ] || return 0
    local port=$((PORT += 1))
    start uws "$OUT/uws.log" "$UWS" "$port" --broadcast
    local pid=$LAST_PID
    wait_listen "$port" "$pid" uws_echo || { stop_all; return 0; }
    local b a
    b=$(ticks "$pid")
    load "uws-$1" "$UWS_M" "ws://127.0.0.1:$port/"
    a=$(ticks "$pid")
    echo "$((a - b))" >"$OUT/runs/uws-$1.json.cpu"
    stop_all
}

echo "results in $OUT" >&2
for i in $(seq "$RUNS"); do
    for s in "${SCENARIOS[@]}"; do
        echo "$s, run $i/$RUNS ..." >&2
        case $s in
        single) run_single "$i" ;;
        redis2) run_redis2 "$i" ;;
        uws) run_uws "$i" ;;
        *) echo "unknown scenario $s" >&2; exit 2 ;;
        esac
        sleep 1 # let the closed connections' TIME_WAIT and the CPU settle
    done
done

# --- report ------------------------------------------------------------------
# json FILE KEY.PATH (list indexes allowed: per_url.1.lost) -> value, empty if missing
json() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    d = None
for k in sys.argv[2].split("."):
    if isinstance(d, dict):
        d = d.get(k)
    elif isinstance(d, list) and k.isdigit() and int(k) < len(d):
        d = d[int(k)]
    else:
        d = None
print("" if d is None else d)
EOF
}
median() { printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# human NUMBER KIND: M/k for counts, fixed decimals for the rest
human() {
    [ -z "$1" ] && { echo -; return; }
    awk -v v="$1" -v k="$2" 'BEGIN {
        if (k == "count") {
            if (v >= 1e6) printf "%.2f M", v / 1e6
            else if (v >= 1e4) printf "%.0f k", v / 1e3
            else printf "%.0f", v
        } else if (k == "int") printf "%.0f", v
        else if (k == "s") printf "%.2f", v
        else if (k == "ms") printf "%.2f", v / 1000
        else if (k == "pct") printf "%.0f%%", v
        else printf "%s", v
    }'
}
# value SCENARIO I WHAT: one run's figure, empty when the run is missing
value() {
    local f=$OUT/runs/$1-$2.json w=$3
    [ -s "$f" ] && [ -s "$f.wall" ] || return 0
    case $w in
    cpu | cpu-a | cpu-b | cpu-redis) [ -s "$f.$w" ] && awk -v t="$(cat "$f.$w")" -v hz="$HZ" 'BEGIN { print t / hz }' ;;
    loadcpu) [ -s "$f.loadcpu" ] && awk '{ print $1 + $2 }' "$f.loadcpu" ;;
    wall) cat "$f.wall" ;;
    server_pct) [ -s "$f.cpu" ] && awk -v t="$(cat "$f.cpu")" -v hz="$HZ" -v w="$(cat "$f.wall")" 'BEGIN { if (w > 0) print 100 * t / hz / w }' ;;
    load_pct) [ -s "$f.loadcpu" ] && awk -v w="$(cat "$f.wall")" '{ if (w > 0) print 100 * ($1 + $2) / w }' "$f.loadcpu" ;;
    per_cpu | per_cpu-a | per_cpu-b | per_cpu-redis)
        # deliveries per CPU-second of the whole server side, or of one part:
        # wsd A / B: the deliveries to its own members; redis: A's PUBLISHes.
        local part=${w#per_cpu} key=deliveries
        [ "$part" = -a ] && key=per_url.0.deliveries
        [ "$part" = -b ] && key=per_url.1.deliveries
        local n t
        if [ "$part" = -redis ]; then
            n=$(awk '$1 == "published" { print $2 }' "$f.metrics-a" 2>/dev/null)
        else
            n=$(json "$f" "$key")
        fi
        t=$(cat "$f.cpu$part" 2>/dev/null || echo 0)
        [ -n "$n" ] && [ "$t" -gt 0 ] && awk -v n="$n" -v t="$t" -v hz="$HZ" 'BEGIN { print n * hz / t }'
        ;;
    metric-a:* | metric-b:*)
        local side=${w%%:*}
        awk -v k="${w#*:}" '$1 == k { print $2 }' "$f.metrics-${side#metric-}" 2>/dev/null
        ;;
    *) json "$f" "$w" ;;
    esac
    return 0
}
# cell SCENARIO WHAT KIND: "median (run1 / run2 / ...)"
cell() {
    local vals=() shown=() v i
    for i in $(seq "$RUNS"); do
        v=$(value "$1" "$i" "$2") || v=
        vals+=("$v")
        shown+=("$(human "$v" "$3")")
    done
    local med joined
    med=$(median "${vals[@]}")
    if [ -z "$med" ]; then
        echo -
    elif [ "$RUNS" -gt 1 ]; then
        joined=$(printf ' / %s' "${shown[@]}")
        echo "$(human "$med" "$3") (${joined:3})"
    else
        human "$med" "$3"
    fi
}
have() { [[ " ${SCENARIOS[*]} " == *" $1 "* ]] && ls "$OUT/runs/$1-"*.json >/dev/null 2>&1; }
row() { # LABEL WHAT KIND: one row over the scenarios that ran
    local line="| $1 |" s
    for s in "${COLS[@]}"; do line+=" $(cell "$s" "$2" "$3") |"; done
    echo "$line"
}
COLS=()
for s in single redis2 uws; do have "$s" && COLS+=("$s"); done
U=ws://127.0.0.1
COMMON="--json --progress 0 -c $MEMBERS -s $SIZE --window $WINDOW --duration 60"
{
    echo "# Chat fan-out across processes: one wsd, two wsd on a Redis backplane, uWebSockets"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -sr)."
    echo "$("$WSD" --version 2>/dev/null | head -1) at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes in the tree)'); $("$REDIS_SERVER" --version | cut -d' ' -f1-3); uWebSockets from ../shared/tools/peers/uws."
    echo "Medians of $RUNS runs (per-run values in parentheses); runs alternate between the scenarios, each on fresh servers."
    echo "Servers pinned to CPU $SERVER_CPU (in redis2 both wsd daemons and redis-server share that one core), the load generator to CPU $LOAD_CPU."
    echo "$MEMBERS members and one publisher in one room; $SIZE-byte text messages, at most $WINDOW not yet delivered to every member."
    echo
    echo "| scenario | command (PORT, PORT_A, PORT_B filled in per run) |"
    echo "|---|---|"
    for s in "${COLS[@]}"; do
        case $s in
        single) echo "| single | \`wsd load broadcast $COMMON -m $SINGLE_M --url '$U:PORT/chat?room=bench'\` against \`wsd --config single.toml --listen 127.0.0.1:PORT\` |" ;;
        redis2) echo "| redis2 | \`wsd load broadcast $COMMON -m $REDIS2_M --url '$U:PORT_A/chat?room=bench' --url '$U:PORT_B/chat?room=bench'\` against two \`wsd --config redis2-X.toml --listen 127.0.0.1:PORT_X\` (same config plus \`[backplane] redis\` and a \`[metrics]\` listener) and \`redis-server --port P --bind 127.0.0.1 --save \"\" --appendonly no\` |" ;;
        uws) echo "| uws | \`wsd load broadcast $COMMON -m $UWS_M --url '$U:PORT/'\` against \`uws_echo PORT --broadcast\` |" ;;
        esac
    done
    echo
    head="| metric |"
    sep="|---|"
    for s in "${COLS[@]}"; do head+=" $s |"; sep+="---:|"; done
    echo "$head"
    echo "$sep"
    row "deliveries/s" deliveries_per_sec count
    row "deliveries per server-CPU-second (redis2: wsd A + wsd B + redis-server)" per_cpu count
    row "server CPU, s (user + system, whole load command)" cpu s
    row "load generator CPU, s" loadcpu s
    row "load command wall time, s" wall s
    row "server CPU / wall" server_pct pct
    row "load generator CPU / wall" load_pct pct
    row "publishing span (first publish to last receipt), s" duration_secs s
    row "delivery latency p50, ms" latency.p50_us ms
    row "delivery latency p99, ms" latency.p99_us ms
    row "messages sent" sent count
    row "lost deliveries" lost count
    row "out of order" out_of_order count
    row "connection failures / drops" dropped count
    if have redis2; then
        echo
        echo "redis2 by part (A: the daemon of the first URL, with the publisher; B: the other)."
        echo "A's and B's deliveries per CPU-second count the deliveries to their own 500 members;"
        echo "redis-server's figure is A's PUBLISH commands (each one message to two subscribers, A and B) per its CPU-second."
        echo
        echo "| redis2 part | value |"
        echo "|---|---:|"
        echo "| wsd A CPU, s | $(cell redis2 cpu-a s) |"
        echo "| wsd B CPU, s | $(cell redis2 cpu-b s) |"
        echo "| redis-server CPU, s | $(cell redis2 cpu-redis s) |"
        echo "| wsd A: its members' deliveries per its CPU-second | $(cell redis2 per_cpu-a count) |"
        echo "| wsd B: its members' deliveries per its CPU-second | $(cell redis2 per_cpu-b count) |"
        echo "| redis-server: PUBLISHes per its CPU-second | $(cell redis2 per_cpu-redis count) |"
        echo "| A's members: latency p50 / p99, ms | $(cell redis2 per_url.0.latency.p50_us ms) / $(cell redis2 per_url.0.latency.p99_us ms) |"
        echo "| B's members (through Redis): latency p50 / p99, ms | $(cell redis2 per_url.1.latency.p50_us ms) / $(cell redis2 per_url.1.latency.p99_us ms) |"
        echo "| lost at A / at B | $(cell redis2 per_url.0.lost count) / $(cell redis2 per_url.1.lost count) |"
        echo "| A: relayed to Redis, messages + join/leave presence (wsd_backplane_published_total) | $(cell redis2 metric-a:published int) |"
        echo "| B: received from Redis, the same kinds (wsd_backplane_received_total, 0.5 s after the run) | $(cell redis2 metric-b:received int) |"
        echo "| dropped by A, queue full / Redis down | $(cell redis2 metric-a:dropped_queue int) / $(cell redis2 metric-a:dropped_down int) |"
    fi
    echo
    echo "Server CPU is utime+stime from /proc/PID/stat before and after the load command"
    echo "(connect, settle, publish, drain, close); the load generator's is /usr/bin/time's user+sys"
    echo "of the whole command. CPU / wall near 100% means that side's core was saturated."
} | tee "$OUT/backplane.md"
echo "wrote $OUT/backplane.md" >&2
