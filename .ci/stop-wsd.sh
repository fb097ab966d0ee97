# Sourced by the CI scripts: stop_wsd PID LOG NAME sends SIGTERM to the wsd they
# started, waits at most 10 s for it to exit, and fails (printing the end of LOG)
# unless it exited 0 in time. It stops only the PID it is given.
stop_wsd() {
  local pid=$1 log=$2 name=$3 status=0
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name: wsd did not exit within 10 s of SIGTERM" >&2
    return 1
  fi
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "$name: wsd exited with status $status" >&2
    tail -20 "$log" >&2
    return 1
  fi
}
