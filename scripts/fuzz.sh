#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each one, one after another
# with a single libFuzzer job, for a bounded time (default 60 s per target),
# starting from the committed seeds in fuzz/seeds/<target>/ plus whatever
# fuzz/corpus/<target>/ has kept from earlier runs, with fuzz/<target>.dict as
# libFuzzer's dictionary when there is one. Prints, per target, the
# executions, exec/s, coverage and any finding; exits non-zero on a finding.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). It never touches the network
# and never writes outside fuzz/ (corpus/, artifacts/ and target/ are git-ignored).
set -euo pipefail

secs="${1:-60}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/../fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz'" >&2
  exit 2
fi
# cargo-fuzz passes -Z flags (sanitizers); the stable toolchain accepts them with this.
export RUSTC_BOOTSTRAP=1

cargo fuzz build -O

found=0
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="artifacts/$target/run.log"
  stamp="artifacts/$target/.started"
  touch "$stamp"
  echo "== $target: fuzzing for ${secs}s (log: fuzz/$log)"
  set +e
  dict=()
  if [ -f "$target.dict" ]; then dict=(-dict="$target.dict"); fi
  cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
  echo "   executions: ${execs:-?}  exec/s: ${rate:-?}  ${cov:-cov: ?}  peak RSS: ${rss:-?} MB"
  new=$(find "artifacts/$target" -type f -newer "$stamp" ! -name run.log ! -name .started)
  if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
    found=1
    echo "   FINDING (exit $rc); new artifacts:"
    printf '     fuzz/%s\n' $new
    grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY)' "$log" | head -n 5 | sed 's/^/     /'
    echo "   reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O $target artifacts/$target/<file>)"
  else
    echo "   no findings"
  fi
done
exit "$found"
