#!/usr/bin/env bash
# Load benchmarks of wsd against the tokio-tungstenite peer (benches/peer-tokio),
# over loopback only. Builds both in release mode, pins the server and the load
# generator to different cores with taskset, runs every scenario RUNS times on a
# fresh server and prints medians: our figure, the peer's, and the ratio.
#
# Usage: benches/load.sh [scenario...]     scenarios: idle echo16 echo4k chat1k chat10k,
#        and for permessage-deflate (run only when named): idle-deflate (idle with
#        --deflate on a shared-compression route), deflate-shared, deflate-dedicated
#        (echo of 1 KiB JSON-like text, wsd's default level 1 vs uWS's
#        --deflate-shared / --deflate-dedicated, which use zlib's level 6; wsd's
#        dedicated routes use uWS's 4 KB preset, window 9 and memory level 2), and
#        deflate-shared-l6, deflate-dedicated-l6 (wsd at level 6 too).
# Environment: RUNS (default 3), SERVER_CPU (0), LOAD_CPU (1), IDLE_N (19000),
#              ECHO_SECS (5), HOLD_SECS (5), OUT (target/bench-load), SKIP_BUILD=1,
#              WSD_EXTRA_CONFIG (TOML appended to wsd's config: limits, [metrics], ...),
#              BEFORE=/path/to/an/older/wsd (adds a "before" column: that binary runs
#              every scenario beside this tree's build, in the same run, alternating),
#              PEER=0 (leave the peer out), PEER=uws (the peer is uWebSockets, built
#              by ../shared/tools/peers/uws/build.sh into UWS_DIR, default /tmp/uws),
#              TLS=1 (every scenario over wss://: a throwaway self-signed certificate
#              made with openssl, wsd on --listen-tls, uws_echo_tls, the load generator
#              with --insecure), CHAT_SCALE (1: 2000 messages to 1,000
#              members, 200 to 10,000; raise it for longer, less noisy chat runs).
# Every run also writes its time series (--report-json, with the server's RSS and
# CPU) beside its JSON result in OUT/runs; when a scenario ran on wsd and on the
# peer, the first run of each is charted against the other with `wsd load
# compare` in OUT/SCENARIO-vs-PEER.html (its table in OUT/SCENARIO-vs-PEER.txt).
# Needs: cargo, taskset, python3 (to read the JSON results).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
IDLE_N=${IDLE_N:-19000}
ECHO_SECS=${ECHO_SECS:-5}
HOLD_SECS=${HOLD_SECS:-5}
CHAT_SCALE=${CHAT_SCALE:-1}
OUT=${OUT:-$ROOT/target/bench-load}
PORT=${PORT:-9701}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(idle echo16 echo4k chat1k chat10k)

mkdir -p "$OUT/bin" "$OUT/runs"
ulimit -n "$(ulimit -Hn)"

# --- build -------------------------------------------------------------------
# A private target dir: the shared one may be rebuilt by other jobs mid-run.
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building wsd (release) ..." >&2
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --target-dir "$OUT/build"
    cp "$OUT/build/release/wsd" "$OUT/bin/wsd"
    echo "building peer-tokio (release) ..." >&2
    if [ "${PEER:-1}" = 0 ] || [ "${PEER:-1}" = uws ]; then
        rm -f "$OUT/bin/peer-tokio"
    elif cargo build --release --quiet --manifest-path "$ROOT/benches/peer-tokio/Cargo.toml" \
        --target-dir "$OUT/build-peer"; then
        cp "$OUT/build-peer/release/peer-tokio" "$OUT/bin/peer-tokio"
    else
        echo "peer-tokio did not build; peer figures will be missing" >&2
        rm -f "$OUT/bin/peer-tokio"
    fi
fi
WSD=$OUT/bin/wsd
TLS=${TLS:-0}
PEER_KIND=tokio
case "${PEER:-1}" in
0) PEER=/nonexistent ;;
uws)
    PEER_KIND=uws
    PEER=${UWS_DIR:-/tmp/uws}/uws_echo
    [ "$TLS" = 1 ] && PEER=${UWS_DIR:-/tmp/uws}/uws_echo_tls
    [ -x "$PEER" ] || echo "no $PEER: run ../shared/tools/peers/uws/build.sh first" >&2
    ;;
*) PEER=$OUT/bin/peer-tokio ;;
esac
BEFORE=${BEFORE:-}
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
start_server() { # wsd|before|peer
    PORT=$((PORT + 1))
    if [ "$1" = wsd ] || [ "$1" = before ]; then
        local bin=$WSD listen=(--listen "127.0.0.1:$PORT")
        [ "$1" = before ] && bin=$BEFORE
        [ "$TLS" = 1 ] && listen=(--listen-tls "127.0.0.1:$PORT")
        taskset -c "$SERVER_CPU" "$bin" --config "$OUT/bench.toml" "${listen[@]}" \
            >>"$OUT/server.log" 2>&1 &
    elif [ "$PEER_KIND" = uws ]; then
        local tls=()
        [ "$TLS" = 1 ] && tls=(--tls "$OUT/cert.pem" "$OUT/key.pem")
        taskset -c "$SERVER_CPU" "$PEER" "$PORT" "${PEER_FLAGS[@]}" "${tls[@]}" >>"$OUT/server.log" 2>&1 &
    else
        taskset -c "$SERVER_CPU" "$PEER" "127.0.0.1:$PORT" >>"$OUT/server.log" 2>&1 &
    fi
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

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

fmt() { [ -z "$1" ] && { echo -; return; }; awk -v v="$1" 'BEGIN { if (v >= 100 || v <= -100) printf "%.0f", v; else printf "%.2f", v }'; }
median() { printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# run SERVER NAME -- LOAD ARGS...: one measured run on a fresh server; prints the JSON file.
run_one() {
    local server=$1 name=$2 i=$3
    shift 4
    local file="$OUT/runs/$name-$server-$i.json"
    rm -f "${file%.json}.report.json"
    start_server "$server" || { echo ""; return; }
    local url_base="$SCHEME://127.0.0.1:$PORT"
    local args=("${@//@URL@/$url_base}")
    args=("${args[@]//@PID@/$SERVER_PID}")
    local before after
    before=$(cpu_ticks "$SERVER_PID")
    local timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "%U %S" -o "$file.loadcpu")
    if ! "${timer[@]}" taskset -c "$LOAD_CPU" timeout 300 "$WSD" load "${args[0]}" --json --progress 0 \
        --report-json "${file%.json}.report.json" --server-pid "$SERVER_PID" "${args[@]:1}" "${LOAD_TLS[@]}" \
        >"$file" 2>>"$OUT/load.log"; then
        echo "run $name/$server/$i reported failures (see $OUT/load.log)" >&2
    fi
    after=$(cpu_ticks "$SERVER_PID")
    stop_server
    echo "$((after - before))" >"$file.cpu"
    echo "$file"
}

declare -A RESULT
# measure NAME SERVERS METRIC... -- LOAD ARGS
measure() {
    local name=$1 servers=$2
    shift 2
    local metrics=()
    while [ "$1" != -- ]; do metrics+=("$1"); shift; done
    shift
    local active=()
    for server in $servers; do
        if [ "$server" = peer ] && [ ! -x "$PEER" ]; then continue; fi
        if [ "$server" = before ] && [ -z "$BEFORE" ]; then continue; fi
        active+=("$server")
    done
    # Runs alternate between servers, so slow drift of the machine hits both alike.
    declare -A files=()
    for i in $(seq "$RUNS"); do
        for server in "${active[@]}"; do
            echo "  $name on $server, run $i/$RUNS ..." >&2
            files[$server]+="$(run_one "$server" "$name" "$i" -- "$@") "
        done
    done
    for server in "${active[@]}"; do
        local files_of=(${files[$server]})
        for m in "${metrics[@]}" cpu loadcpu; do
            local vals=()
            for f in "${files_of[@]}"; do
                [ -s "$f" ] || continue
                case $m in
                cpu) vals+=("$(cat "$f.cpu")") ;;
                per_cpu_s:*)
                    # A count from the JSON divided by the server's CPU seconds in that run.
                    local count ticks
                    count=$(json "$f" "${m#per_cpu_s:}")
                    ticks=$(cat "$f.cpu")
                    [ -n "$count" ] && [ "$ticks" -gt 0 ] &&
                        vals+=("$(awk -v c="$count" -v t="$ticks" 'BEGIN { printf "%.0f", c * 100 / t }')") ;;
                loadcpu) [ -s "$f.loadcpu" ] && vals+=("$(awk '{printf "%.0f", ($1 + $2) * 100}' "$f.loadcpu")") ;;
                *) vals+=("$(json "$f" "$m")") ;;
                esac
            done
            RESULT["$name|$server|$m"]=$(median "${vals[@]}")
            echo "    $m: ${vals[*]} -> median ${RESULT["$name|$server|$m"]}" >&2
        done
    done
    # The first run on wsd and on the peer, charted on the same axes.
    local ours="$OUT/runs/$name-wsd-1.report.json" theirs="$OUT/runs/$name-peer-1.report.json"
    local cmp="$OUT/$name-vs-$PEER_KIND"
    if [ -s "$ours" ] && [ -s "$theirs" ]; then
        if "$WSD" load compare "$ours" "$theirs" --labels "wsd,$PEER_KIND" --report "$cmp.html" \
            >"$cmp.txt" 2>>"$OUT/load.log"; then
            echo "    charts: $cmp.html" >&2
        else
            echo "    wsd load compare failed for $name (see $OUT/load.log)" >&2
        fi
    fi
}

for s in "${SCENARIOS[@]}"; do
    echo "scenario $s" >&2
    case $s in
    idle)
        measure idle "wsd before peer" bytes_per_connection idle.handshakes_per_sec per_cpu_s:idle.successes idle.successes -- \
            rss --pid @PID@ idle --url @URL@/echo -n "$IDLE_N" --duration "$HOLD_SECS"
        ;;
    idle-deflate)
        PEER_FLAGS=(--deflate-shared)
        measure idle-deflate "wsd before peer" bytes_per_connection idle.handshakes_per_sec per_cpu_s:idle.successes idle.successes -- \
            rss --pid @PID@ idle --url @URL@/echo-shared -n "$IDLE_N" --duration "$HOLD_SECS" --deflate
        PEER_FLAGS=()
        ;;
    deflate-shared | deflate-dedicated | deflate-shared-l6 | deflate-dedicated-l6)
        mode=${s#deflate-}
        PEER_FLAGS=(--deflate-"${mode%-l6}")
        measure "$s" "wsd before peer" messages_per_sec per_cpu_s:received latency.p99_us mismatches -- \
            echo --url "@URL@/echo-$mode" -c 100 -p 16 -s 1024 --json-like --deflate --duration "$ECHO_SECS"
        PEER_FLAGS=()
        ;;
    echo16)
        measure echo16 "wsd before peer" messages_per_sec per_cpu_s:received latency.p99_us mismatches -- \
            echo --url @URL@/echo -c 100 -p 16 -s 16 --binary --duration "$ECHO_SECS"
        ;;
    echo4k)
        measure echo4k "wsd before peer" messages_per_sec per_cpu_s:received bytes_per_sec latency.p99_us mismatches -- \
            echo --url @URL@/echo -c 100 -p 16 -s 4096 --binary --duration "$ECHO_SECS"
        ;;
    chat1k)
        measure chat1k "wsd before" deliveries_per_sec per_cpu_s:deliveries latency.p50_us latency.p99_us lost -- \
            broadcast --url "@URL@/chat?room=bench" -c 1000 -m $((2000 * CHAT_SCALE)) --window 32
        ;;
    chat10k)
        measure chat10k "wsd before" deliveries_per_sec per_cpu_s:deliveries latency.p50_us latency.p99_us lost -- \
            broadcast --url "@URL@/chat?room=bench" -c 10000 -m $((200 * CHAT_SCALE)) --window 32
        ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done

# --- report ------------------------------------------------------------------
ratio_of() { # A B -> A/B with 2 decimals, empty if either is missing
    [ -n "$1" ] && [ -n "$2" ] || return 0
    awk -v a="$1" -v b="$2" 'BEGIN { if (b != 0) printf "%.2f", a / b }'
}
{
    echo "machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "runs per figure: $RUNS (median); server on cpu $SERVER_CPU, load generator on cpu $LOAD_CPU; scheme $SCHEME"
    echo
    printf '%-8s %-34s %14s %14s %8s %14s %8s\n' scenario metric wsd before ratio "peer-$PEER_KIND" ratio
    for key in $(printf '%s\n' "${!RESULT[@]}" | grep '|wsd|' | sort); do
        name=${key%%|*}
        metric=${key##*|}
        ours=${RESULT[$key]}
        peer=${RESULT["$name|peer|$metric"]:-}
        before=${RESULT["$name|before|$metric"]:-}
        ratio=$(ratio_of "$ours" "$peer")
        bratio=$(ratio_of "$ours" "$before")
        [ "$metric" = cpu ] && metric="server cpu (1/100 s)"
        [ "$metric" = loadcpu ] && metric="load generator cpu (1/100 s)"
        [ "${metric%%:*}" = per_cpu_s ] && metric="${metric#per_cpu_s:} per server cpu-second"
        printf '%-8s %-34s %14s %14s %8s %14s %8s\n' "$name" "$metric" "$(fmt "$ours")" \
            "$(fmt "$before")" "${bratio:--}" "$(fmt "$peer")" "${ratio:--}"
    done
} | tee "$OUT/results-$SCHEME.txt"
