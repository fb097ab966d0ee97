#!/usr/bin/env bash
# Echo 16 B binary, 100 connections x 16 in flight, 5 s, three rounds: wsd with
# workers = 1, wsd with workers = 2, and uWebSockets, unpinned (workers need both
# cores). Server CPU is utime+stime of the server and its children from /proc.
# Usage: benches/echo-workers.sh (after cargo build --release). Loopback only.
set -u
WSD="${WSD:-target/release/wsd}"
UWS="${UWS:-/tmp/uws/uws_echo}"   # bash ../shared/tools/peers/uws/build.sh /tmp/uws
cpu_of_tree() { # utime+stime (ticks) of pid and children
  local t=0 p
  for p in "$1" $(pgrep -P "$1"); do
    t=$(( t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0) ))
  done; echo $t; }
run() { # name port start-cmd...
  local name=$1 port=$2; shift 2
  "$@" >"${TMPDIR:-/tmp}"/ew-$name.log 2>&1 & local pid=$!
  sleep 1.5
  local c0=$(cpu_of_tree $pid)
  local out=$($WSD load echo --url ws://127.0.0.1:$port/echo -c 100 -p 16 -s 16 --binary --duration 5 --json --progress 0 2>/dev/null)
  local c1=$(cpu_of_tree $pid)
  kill -TERM $pid; wait $pid 2>/dev/null
  local rate=$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["messages_per_sec"]))')
  local secs=$(python3 -c "print(($c1-$c0)/100)")
  echo "$name rate=$rate server_cpu_s=$secs per_cpu_s=$(python3 -c "print(round(($rate*5.0)/max(($c1-$c0)/100,0.01)))")"
}
for i in 1 2 3; do
  printf '[server]\nlisten=["127.0.0.1:9411"]\n[log]\nlevel="warn"\n[static]\nenabled=false\n[[route]]\npath="/echo"\nkind="echo"\n' > "${TMPDIR:-/tmp}"/ew1.toml
  printf '[server]\nlisten=["127.0.0.1:9412"]\nworkers=2\n[log]\nlevel="warn"\n[static]\nenabled=false\n[[route]]\npath="/echo"\nkind="echo"\n' > "${TMPDIR:-/tmp}"/ew2.toml
  run wsd-w1 9411 $WSD --config "${TMPDIR:-/tmp}"/ew1.toml
  run wsd-w2 9412 $WSD --config "${TMPDIR:-/tmp}"/ew2.toml
  run uws 9413 $UWS 9413
done
