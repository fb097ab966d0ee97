#!/usr/bin/env bash
# Load benchmarks of wsd beside uWebSockets and tokio-tungstenite, over loopback
# only, every scenario on every server in one run. Builds wsd and the tokio peer
# (benches/peer-tokio: the idiomatic, untuned tokio-tungstenite echo, split +
# forward on a current_thread runtime; it has no broadcast and no TLS) in release
# mode; uWebSockets is optional: uws_echo built by the user with
# `bash ../shared/tools/peers/uws/build.sh /tmp/uws` (UWS_DIR, default /tmp/uws).
# Pins the server to SERVER_CPU and the load generator (`wsd load ...`) to LOAD_CPU
# with taskset, runs every scenario RUNS times on a fresh server, alternating
# servers run by run so slow drift of the machine hits all alike, and prints
# medians: a column per server and the ratios wsd/before, wsd/uWS and wsd/tokio.
# Every throughput figure comes with its rate per server CPU-second, the server's
# CPU and the load generator's CPU (1/100 s), so the reader sees which side saturated.
#
# Usage: benches/load.sh [scenario...]
#   default: idle echo16 echo16t echo4k echo64k fanout100 fanout1k fanout10k handshakes
#   idle        IDLE_N (19,000) idle connections held HOLD_SECS: server bytes per
#               connection (VmRSS growth) and handshakes/s.
#   echo16      100 connections x 16 in flight, 16 B binary, ECHO_SECS seconds;
#   echo16t     the same with 16 B text; echo4k: 4 KiB binary;
#   echo64k     64 KiB binary, 100 connections x 4 in flight, plus the server's RSS
#               idle before the run, its peak during it (VmHWM) and ~1 s after the
#               load generator exits (VmRSS, before the server is stopped).
#   fanout100, fanout1k, fanout10k
#               one room of 100 / 1,000 / 10,000 members and one publisher
#               (`wsd load broadcast`, window 32): wsd's chat route (announce and
#               echo_to_sender off) and `uws_echo PORT --broadcast` (every message to
#               every connection, the publisher included: the generator ignores what
#               the publisher receives, so both count members' receipts only);
#               deliveries/s. No tokio column (no broadcast). chat1k and chat10k are
#               the old names of fanout1k and fanout10k.
#   handshakes  HS_N (16,000) connections opened as fast as the generator can, by
#               HS_N/HS_PER_PROCESS generator processes (HS_PER_PROCESS 4,000; each
#               from its own source address 127.0.0.x, all on LOAD_CPU), then closed:
#               handshakes/s and handshakes per server CPU-second, the server's CPU
#               counted over the ramp only (from the run's --report-json series,
#               sampled every 100 ms); "server cpu" is the whole run, closes included.
#   Run only when named (permessage-deflate; wsd and uWS only, tokio's peer has none):
#   idle-deflate (idle with --deflate on a shared-compression route), deflate-shared,
#   deflate-dedicated (echo of 1 KiB JSON-like text, wsd's default level 1 vs uWS's
#   --deflate-shared / --deflate-dedicated, which use zlib's level 6; wsd's dedicated
#   routes use uWS's 4 KB preset, window 9 and memory level 2), and
#   deflate-shared-l6, deflate-dedicated-l6 (wsd at level 6 too).
# Environment: RUNS (default 3), SERVER_CPU (0), LOAD_CPU (1), IDLE_N (19000),
#              ECHO_SECS (5), HOLD_SECS (5), HS_N (16000), HS_PER_PROCESS (4000),
#              FANOUT_SCALE (1: messages per fanout run 60,000 / 5,000 / 500 for
#              100 / 1k / 10k members, a few seconds each; raise for longer runs),
#              OUT (target/bench-load), SKIP_BUILD=1 (use OUT/bin as it is),
#              WSD_EXTRA_CONFIG (TOML appended to wsd's config: limits, [metrics], ...),
#              BEFORE=/path/to/an/older/wsd (adds a "before" column: that binary runs
#              every scenario beside this tree's build, in the same run, alternating),
#              PEERS="uws tokio" (the peers to run; default: those present; "" for
#              wsd alone), PEER=0 / PEER=uws / PEER=tokio (older spelling: no peer /
#              that peer only),
#              TLS=1 (every scenario over wss://: a throwaway self-signed certificate
#              made with openssl, wsd on --listen-tls, uws_echo_tls, the load generator
#              with --insecure; the tokio peer has no TLS and is skipped).
# Every run also writes its time series (--report-json, with the server's RSS and
# CPU) beside its JSON result in OUT/runs; the first run of wsd and of each peer
# are charted against each other with `wsd load compare` in
# OUT/SCENARIO-vs-uws.html and OUT/SCENARIO-vs-tokio.html (tables in .txt beside).
# The final table is printed and saved to OUT/results-SCHEME.txt.
# Needs: cargo, taskset, timeout, /usr/bin/time (for the generator's CPU), python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
IDLE_N=${IDLE_N:-19000}
ECHO_SECS=${ECHO_SECS:-5}
HOLD_SECS=${HOLD_SECS:-5}
HS_N=${HS_N:-16000}
HS_PER_PROCESS=${HS_PER_PROCESS:-4000}
FANOUT_SCALE=${FANOUT_SCALE:-${CHAT_SCALE:-1}}
OUT=${OUT:-$ROOT/target/bench-load}
PORT=${PORT:-9701}
TLS=${TLS:-0}
BEFORE=${BEFORE:-}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(idle echo16 echo16t echo4k echo64k fanout100 fanout1k fanout10k handshakes)

# Which peers: PEERS wins; the older PEER=0|uws|tokio still means none / that one.
if [ -z "${PEERS+set}" ]; then
    case "${PEER:-}" in
    0) PEERS="" ;;
    uws) PEERS="uws" ;;
    tokio | peer-tokio) PEERS="tokio" ;;
    *) PEERS="uws tokio" ;;
    esac
fi
wants() { [[ " $PEERS " == *" $1 "* ]]; }

mkdir -p "$OUT/bin" "$OUT/runs"
ulimit -n "$(ulimit -Hn)"

# --- build -------------------------------------------------------------------
# A private target dir: the shared one may be rebuilt by other jobs mid-run.
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building wsd (release) ..." >&2
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --target-dir "$OUT/build"
    cp "$OUT/build/release/wsd" "$OUT/bin/wsd"
    rm -f "$OUT/bin/peer-tokio"
    if wants tokio; then
        echo "building peer-tokio (release) ..." >&2
        if cargo build --release --quiet --manifest-path "$ROOT/benches/peer-tokio/Cargo.toml" \
            --target-dir "$OUT/build-peer"; then
            cp "$OUT/build-peer/release/peer-tokio" "$OUT/bin/peer-tokio"
        else
            echo "peer-tokio did not build; its figures will be missing" >&2
        fi
    fi
fi
WSD=$OUT/bin/wsd
[ -x "$WSD" ] || { echo "no $WSD: run without SKIP_BUILD=1 first" >&2; exit 1; }
UWS_BIN=${UWS_DIR:-/tmp/uws}/uws_echo
[ "$TLS" = 1 ] && UWS_BIN=${UWS_DIR:-/tmp/uws}/uws_echo_tls
TOKIO_BIN=$OUT/bin/peer-tokio
if wants uws && [ ! -x "$UWS_BIN" ]; then
    echo "no $UWS_BIN (build it with ../shared/tools/peers/uws/build.sh): no uWS column" >&2
fi
if wants tokio && [ "$TLS" = 1 ]; then
    echo "TLS=1: the tokio peer has no TLS, no tokio column" >&2
fi
# available SERVER: is this server to be run at all?
available() {
    case $1 in
    wsd) return 0 ;;
    before) [ -n "$BEFORE" ] ;;
    uws) wants uws && [ -x "$UWS_BIN" ] ;;
    tokio) wants tokio && [ "$TLS" != 1 ] && [ -x "$TOKIO_BIN" ] ;;
    *) return 1 ;;
    esac
}
[ -x /usr/bin/time ] || echo "no /usr/bin/time: the load generator's CPU will be missing" >&2
SCHEME=ws
LOAD_TLS=()
if [ "$TLS" = 1 ]; then
    SCHEME=wss
    LOAD_TLS=(--insecure)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE \
        -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
fi

cat >"$OUT/bench.toml" <<'EOF'
# Benchmark config: no static files, no server pings, quiet logs, big silent rooms.
[server]
backlog = 4096
[log]
level = "warn"
[timeouts]
ping_interval = "0s"
[static]
enabled = false
[[route]]
path = "/echo"
kind = "echo"
[[route]]
path = "/chat"
kind = "chat"
max_members = 20000
announce = false
echo_to_sender = false
[[route]]
path = "/echo-shared"
kind = "echo"
compression = "shared"
[[route]]
path = "/echo-dedicated"
kind = "echo"
compression = "dedicated"
compression_window_bits = 9
compression_memory_level = 2
[[route]]
path = "/echo-shared-l6"
kind = "echo"
compression = "shared"
compression_level = 6
[[route]]
path = "/echo-dedicated-l6"
kind = "echo"
compression = "dedicated"
compression_window_bits = 9
compression_memory_level = 2
compression_level = 6
EOF

if [ "$TLS" = 1 ]; then
    printf '[tls]\ncert = "%s"\nkey = "%s"\n' "$OUT/cert.pem" "$OUT/key.pem" >>"$OUT/bench.toml"
fi
# WSD_EXTRA_CONFIG: TOML appended to wsd's benchmark config (e.g. limits or [metrics]).
if [ -n "${WSD_EXTRA_CONFIG:-}" ]; then
    printf '\n%s\n' "$WSD_EXTRA_CONFIG" >>"$OUT/bench.toml"
fi

# --- servers -----------------------------------------------------------------
SERVER_PID=
PEER_FLAGS=() # per scenario: what uws_echo is started with
start_server() { # wsd|before|uws|tokio
    PORT=$((PORT + 1))
    case $1 in
    wsd | before)
        local bin=$WSD listen=(--listen "127.0.0.1:$PORT")
        [ "$1" = before ] && bin=$BEFORE
        [ "$TLS" = 1 ] && listen=(--listen-tls "127.0.0.1:$PORT")
        taskset -c "$SERVER_CPU" "$bin" --config "$OUT/bench.toml" "${listen[@]}" \
            >>"$OUT/server.log" 2>&1 &
        ;;
    uws)
        local tls=()
        [ "$TLS" = 1 ] && tls=(--tls "$OUT/cert.pem" "$OUT/key.pem")
        taskset -c "$SERVER_CPU" "$UWS_BIN" "$PORT" "${PEER_FLAGS[@]}" "${tls[@]}" >>"$OUT/server.log" 2>&1 &
        ;;
    tokio)
        taskset -c "$SERVER_CPU" "$TOKIO_BIN" "127.0.0.1:$PORT" >>"$OUT/server.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "server $1 did not listen on $PORT" >&2
    stop_server
    return 1
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# status_kb PID FIELD -> a /proc/PID/status figure in kB (VmRSS, VmHWM), empty if gone
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# json FILE KEY.PATH -> number (empty if missing)
json() {
    python3 -c 'import json,sys
try:
    d=json.load(open(sys.argv[1]))
except ValueError:
    d=None
for k in sys.argv[2].split("."):
    d=d.get(k) if isinstance(d,dict) else None
print("" if d is None else d)' "$1" "$2"
}
# series_cpu REPORT.json FIELD -> the server's CPU (1/100 s) summed over the run's
# --report-json samples whose FIELD (a rate, e.g. handshakes_per_sec or
# messages_per_sec) is above 0: the server's CPU in the phase that rate measures.
series_cpu() {
    python3 -c 'import json,sys
try:
    s=json.load(open(sys.argv[1]))["samples"]
except (ValueError, KeyError, OSError):
    sys.exit(0)
prev, total = 0.0, 0.0
for x in s:
    if x.get(sys.argv[2], 0) > 0:
        total += x.get("server_cpu_percent", 0) * (x["t_secs"] - prev)
    prev = x["t_secs"]
print("%.1f" % total)' "$1" "$2"
}

fmt() { [ -z "$1" ] && { echo -; return; }; awk -v v="$1" 'BEGIN { if (v >= 100 || v <= -100 || v == int(v)) printf "%.0f", v; else printf "%.2f", v }'; }
median() { printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# run_one SERVER NAME I -- LOAD ARGS...: one measured run on a fresh server; prints
# the JSON file. Beside it: .cpu (server CPU ticks over the run), .loadcpu (the
# generator's user and system seconds, its worker processes included), .rss0 (VmRSS
# before the load), .hwm (VmHWM when the load ended) and, with RSS_AFTER=1, .rss1
# (VmRSS ~1 s after the load generator exited).
RSS_AFTER=0
run_one() {
    local server=$1 name=$2 i=$3
    shift 4
    local file="$OUT/runs/$name-$server-$i.json"
    rm -f "$file" "$file".* "${file%.json}.report.json"
    # run_one runs in a command substitution, a subshell the script's own EXIT trap
    # does not cover: stop this run's server here too, on any way out.
    trap stop_server EXIT
    trap 'exit 130' INT TERM
    start_server "$server" || { echo ""; return; }
    local url_base="$SCHEME://127.0.0.1:$PORT"
    local args=("${@//@URL@/$url_base}")
    args=("${args[@]//@PID@/$SERVER_PID}")
    local before after
    status_kb "$SERVER_PID" VmRSS >"$file.rss0"
    before=$(cpu_ticks "$SERVER_PID")
    local timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "%U %S" -o "$file.loadcpu")
    echo "  $server: taskset -c $LOAD_CPU timeout 300 wsd load ${args[0]} --json --progress 0 --report-json FILE --server-pid $SERVER_PID ${args[*]:1} ${LOAD_TLS[*]}" >>"$OUT/commands.log"
    if ! "${timer[@]}" taskset -c "$LOAD_CPU" timeout 300 "$WSD" load "${args[0]}" --json --progress 0 \
        --report-json "${file%.json}.report.json" --server-pid "$SERVER_PID" "${args[@]:1}" "${LOAD_TLS[@]}" \
        >"$file" 2>>"$OUT/load.log"; then
        echo "run $name/$server/$i reported failures (see $OUT/load.log)" >&2
    fi
    after=$(cpu_ticks "$SERVER_PID")
    status_kb "$SERVER_PID" VmHWM >"$file.hwm"
    if [ "$RSS_AFTER" = 1 ]; then
        sleep 1
        status_kb "$SERVER_PID" VmRSS >"$file.rss1"
    fi
    stop_server
    echo "$((after - before))" >"$file.cpu"
    echo "$file"
}

declare -A RESULT
ORDER=() # NAME|METRIC in the order measured
# measure NAME SERVERS METRIC... -- LOAD ARGS
# METRIC: a JSON path of the generator's result, per_cpu_s:PATH (that count per
# server CPU-second of the whole run), per_cpu_s@FIELD:PATH (per server CPU-second
# of the samples where the time series' FIELD is above 0, e.g. only while messages
# flowed), or rss_idle_kb, rss_peak_kb, rss_after_kb; cpu and loadcpu are always added.
measure() {
    local name=$1 servers=$2
    shift 2
    local metrics=()
    while [ "$1" != -- ]; do metrics+=("$1"); shift; done
    shift
    local active=()
    for server in $servers; do
        available "$server" && active+=("$server")
    done
    # Runs alternate between servers, so slow drift of the machine hits all alike.
    declare -A files=()
    for i in $(seq "$RUNS"); do
        for server in "${active[@]}"; do
            echo "  $name on $server, run $i/$RUNS ..." >&2
            files[$server]+="$(run_one "$server" "$name" "$i" -- "$@") "
        done
    done
    for m in "${metrics[@]}" cpu loadcpu; do ORDER+=("$name|$m"); done
    for server in "${active[@]}"; do
        local files_of=(${files[$server]})
        for m in "${metrics[@]}" cpu loadcpu; do
            local vals=()
            for f in "${files_of[@]}"; do
                [ -s "$f" ] || continue
                case $m in
                cpu) vals+=("$(cat "$f.cpu")") ;;
                per_cpu_s*:*)
                    # A count from the JSON divided by the server's CPU seconds in
                    # that run, or with per_cpu_s@FIELD in the samples where FIELD > 0.
                    local count ticks
                    count=$(json "$f" "${m#*:}")
                    if [ "${m%%:*}" = per_cpu_s ]; then
                        ticks=$(cat "$f.cpu")
                    else
                        local field=${m%%:*}
                        ticks=$(series_cpu "${f%.json}.report.json" "${field#per_cpu_s@}")
                    fi
                    [ -n "$count" ] && [ -n "$ticks" ] && awk -v t="$ticks" 'BEGIN { exit !(t > 0) }' &&
                        vals+=("$(awk -v c="$count" -v t="$ticks" 'BEGIN { printf "%.0f", c * 100 / t }')") ;;
                loadcpu) [ -s "$f.loadcpu" ] && vals+=("$(awk '{printf "%.0f", ($1 + $2) * 100}' "$f.loadcpu")") ;;
                rss_idle_kb) vals+=("$(cat "$f.rss0" 2>/dev/null)") ;;
                rss_peak_kb) vals+=("$(cat "$f.hwm" 2>/dev/null)") ;;
                rss_after_kb) vals+=("$(cat "$f.rss1" 2>/dev/null)") ;;
                *) vals+=("$(json "$f" "$m")") ;;
                esac
            done
            RESULT["$name|$server|$m"]=$(median "${vals[@]}")
            echo "    $server $m: ${vals[*]} -> median ${RESULT["$name|$server|$m"]}" >&2
        done
    done
    # The first run on wsd and on each peer, charted on the same axes.
    local ours="$OUT/runs/$name-wsd-1.report.json" peer
    for peer in uws tokio; do
        local theirs="$OUT/runs/$name-$peer-1.report.json" cmp="$OUT/$name-vs-$peer"
        if [ -s "$ours" ] && [ -s "$theirs" ]; then
            if "$WSD" load compare "$ours" "$theirs" --labels "wsd,$peer" --report "$cmp.html" \
                >"$cmp.txt" 2>>"$OUT/load.log"; then
                echo "    charts: $cmp.html" >&2
            else
                echo "    wsd load compare failed for $name vs $peer (see $OUT/load.log)" >&2
            fi
        fi
    done
}

ECHO_METRICS=(messages_per_sec per_cpu_s:received latency.p99_us mismatches)
FANOUT_METRICS=(deliveries_per_sec per_cpu_s:deliveries per_cpu_s@messages_per_sec:deliveries latency.p50_us latency.p99_us lost)
fanout() { # NAME MEMBERS MESSAGES
    PEER_FLAGS=(--broadcast)
    measure "$1" "wsd before uws" "${FANOUT_METRICS[@]}" -- \
        broadcast --url "@URL@/chat?room=bench" -c "$2" -m $(($3 * FANOUT_SCALE)) --window 32 --duration 60
    PEER_FLAGS=()
}
: >"$OUT/commands.log"
for s in "${SCENARIOS[@]}"; do
    echo "scenario $s" >&2
    echo "$s:" >>"$OUT/commands.log"
    case $s in
    idle)
        measure idle "wsd before uws tokio" bytes_per_connection idle.handshakes_per_sec per_cpu_s:idle.successes idle.successes -- \
            rss --pid @PID@ idle --url @URL@/echo -n "$IDLE_N" --duration "$HOLD_SECS"
        ;;
    idle-deflate)
        PEER_FLAGS=(--deflate-shared)
        measure idle-deflate "wsd before uws" bytes_per_connection idle.handshakes_per_sec per_cpu_s:idle.successes idle.successes -- \
            rss --pid @PID@ idle --url @URL@/echo-shared -n "$IDLE_N" --duration "$HOLD_SECS" --deflate
        PEER_FLAGS=()
        ;;
    deflate-shared | deflate-dedicated | deflate-shared-l6 | deflate-dedicated-l6)
        mode=${s#deflate-}
        PEER_FLAGS=(--deflate-"${mode%-l6}")
        measure "$s" "wsd before uws" "${ECHO_METRICS[@]}" -- \
            echo --url "@URL@/echo-$mode" -c 100 -p 16 -s 1024 --json-like --deflate --duration "$ECHO_SECS"
        PEER_FLAGS=()
        ;;
    echo16)
        measure echo16 "wsd before uws tokio" "${ECHO_METRICS[@]}" -- \
            echo --url @URL@/echo -c 100 -p 16 -s 16 --binary --duration "$ECHO_SECS"
        ;;
    echo16t)
        measure echo16t "wsd before uws tokio" "${ECHO_METRICS[@]}" -- \
            echo --url @URL@/echo -c 100 -p 16 -s 16 --duration "$ECHO_SECS"
        ;;
    echo4k)
        measure echo4k "wsd before uws tokio" "${ECHO_METRICS[@]}" bytes_per_sec -- \
            echo --url @URL@/echo -c 100 -p 16 -s 4096 --binary --duration "$ECHO_SECS"
        ;;
    echo64k)
        RSS_AFTER=1
        measure echo64k "wsd before uws tokio" "${ECHO_METRICS[@]}" bytes_per_sec rss_idle_kb rss_peak_kb rss_after_kb -- \
            echo --url @URL@/echo -c 100 -p 4 -s 65536 --binary --duration "$ECHO_SECS"
        RSS_AFTER=0
        ;;
    fanout100) fanout fanout100 100 60000 ;;
    fanout1k | chat1k) fanout fanout1k 1000 5000 ;;
    fanout10k | chat10k) fanout fanout10k 10000 500 ;;
    handshakes)
        measure handshakes "wsd before uws tokio" handshakes_per_sec per_cpu_s@handshakes_per_sec:successes successes -- \
            idle --url @URL@/echo -n "$HS_N" --duration 0 --per-process "$HS_PER_PROCESS" --sample-ms 100
        ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done

# --- report ------------------------------------------------------------------
ratio_of() { # A B -> A/B with 2 decimals, empty if either is missing
    [ -n "$1" ] && [ -n "$2" ] || return 0
    awk -v a="$1" -v b="$2" 'BEGIN { if (b != 0) { r = a / b; printf (r < 0.1 ? "%.3g" : "%.2f"), r } }'
}
label() { # METRIC -> what the table calls it
    case $1 in
    cpu) echo "server cpu (1/100 s)" ;;
    loadcpu) echo "load generator cpu (1/100 s)" ;;
    per_cpu_s:*) echo "${1#*:} per server cpu-s" ;;
    per_cpu_s@messages_per_sec:*) echo "${1#*:} per server cpu-s (sending)" ;;
    per_cpu_s@handshakes_per_sec:*) echo "${1#*:} per server cpu-s (ramp)" ;;
    per_cpu_s@*) echo "${1#*:} per server cpu-s (${1%%:*})" ;;
    rss_idle_kb) echo "server RSS idle before (kB)" ;;
    rss_peak_kb) echo "server RSS peak, VmHWM (kB)" ;;
    rss_after_kb) echo "server RSS 1 s after load (kB)" ;;
    *) echo "$1" ;;
    esac
}
{
    echo "machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "runs per figure: $RUNS (median); server on cpu $SERVER_CPU, load generator on cpu $LOAD_CPU; scheme $SCHEME"
    echo "servers: wsd ($WSD)${BEFORE:+, before ($BEFORE)}$(available uws && echo ", uWS ($UWS_BIN)")$(available tokio && echo ", tokio ($TOKIO_BIN)")"
    echo
    nw=8 # the widest scenario name
    for key in "${ORDER[@]}"; do name=${key%%|*}; [ ${#name} -gt $nw ] && nw=${#name}; done
    printf "%-${nw}s %-40s %10s %10s %7s %10s %7s %10s %7s\n" scenario metric wsd before wsd/bef uWS wsd/uWS tokio wsd/tok
    for key in "${ORDER[@]}"; do
        name=${key%%|*}
        metric=${key#*|}
        ours=${RESULT["$name|wsd|$metric"]:-}
        before=${RESULT["$name|before|$metric"]:-}
        uws=${RESULT["$name|uws|$metric"]:-}
        tokio=${RESULT["$name|tokio|$metric"]:-}
        r_before=$(ratio_of "$ours" "$before")
        r_uws=$(ratio_of "$ours" "$uws")
        r_tokio=$(ratio_of "$ours" "$tokio")
        printf "%-${nw}s %-40s %10s %10s %7s %10s %7s %10s %7s\n" "$name" "$(label "$metric")" "$(fmt "$ours")" \
            "$(fmt "$before")" "${r_before:--}" "$(fmt "$uws")" "${r_uws:--}" "$(fmt "$tokio")" "${r_tokio:--}"
    done
} | tee "$OUT/results-$SCHEME.txt"
